"""Benchmark: the migration service on the real stack (Kafka + FerretDB/MongoDB).

1. Assessment: the 35,000 XP desktops of the sample estate are imported into the inventory
   service (every event published before the answer); then the migration service is started
   and timed until it has assessed every one of them (its consumer group begins where the
   import began, so earlier traffic on the topic does not count). Printed beside a raw
   consume-and-write baseline in the same run: an aiokafka consumer reading the same events
   and upserting one document per device by ``_id`` (PyMongo bulk write per fetched batch).
2. A wave of 5,000 devices ready to upgrade in place, through every saga step with the
   simulated executor at zero step duration: sagas per second from the plan's answer to the
   wave's completion, and the inventory updates (events on ``inventory.devices``) it caused.
3. The migration service process's peak RSS over both.

Needs Kafka and the MongoDB-wire server running (`make infra-up`, or give their addresses):
    .venv/bin/python benchmarks/migration_assess.py [--devices 35000] [--wave 5000]
        [--kafka 127.0.0.1:39092] [--mongo mongodb://127.0.0.1:37017/]
Targets (issue 8): assessment within 20 s; service RSS under 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from import_35k import RssSampler, free_port, wait_ready
from pymongo import AsyncMongoClient, UpdateOne

from contracts.common import LONDON_BOROUGHS
from contracts.envelope import Envelope
from services.inventory.sample_estate import generate, write_csv
from services.runtime.auth import Role, issue_token
from services.runtime.settings import Mode, Settings

INVENTORY_TOPIC = "inventory.devices"
MIGRATION_TOPIC = "migration.devices"
ASSESSED = re.compile(r'^migration_assessments_total\{outcome="(\w+)"\} (\S+)$', re.M)


def start(settings: Settings, service: str, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ESTATE_MODE": "distributed", "ESTATE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "ESTATE_MONGO_URL": settings.mongo_url, "ESTATE_MONGO_DATABASE": settings.mongo_database,
           "ESTATE_JWT_SECRET": settings.jwt_secret, "ESTATE_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
           "ESTATE_LOG_LEVEL": "WARNING", **extra}
    command = [sys.executable, "-m", "uvicorn", f"services.asgi:{service}", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, env=env)


async def stop(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer, letting its tasks begin first (aiokafka 0.14 raises CancelledError from
    ``stop`` when a group-less consumer stops before its commit-reset task ever ran)."""
    await asyncio.sleep(0)
    await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic may be new
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await stop(consumer)


async def begin_group_at(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group`` before its service starts, so it reads from there."""
    if not offsets:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(tp) < offset for tp, offset in end.items()])


async def topic_events(bootstrap: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int]
                       ) -> list[Envelope]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope] = []
    try:
        consumer.assign(list(end))
        for tp in end:
            consumer.seek(tp, start.get(tp, 0))
        while await behind(consumer, end):
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                found += [Envelope.from_bytes(r.value) for r in records if r.offset < end[tp]]
        return found
    finally:
        await stop(consumer)


async def raw_baseline(bootstrap: str, mongo_url: str, start: dict[TopicPartition, int],
                       end: dict[TopicPartition, int]) -> tuple[float, int]:
    """Consume the import's events and upsert one document per device by ``_id``."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    collection = client[f"bench_raw_{uuid.uuid4().hex[:8]}"]["assessed"]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 2**20)
    await consumer.start()
    count = 0
    try:
        consumer.assign(list(end))
        for tp in end:
            consumer.seek(tp, start.get(tp, 0))
        started = time.perf_counter()
        while await behind(consumer, end):
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                writes = []
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    device = Envelope.from_bytes(r.value).data["device"]
                    writes.append(UpdateOne({"_id": device["asset_tag"]}, {"$set": {
                        "os": device["os"], "hardware": device["hardware"], "location": device["location"],
                        "applications": device["applications"], "inventory_version": device["version"]}},
                        upsert=True))
                if writes:
                    await collection.bulk_write(writes, ordered=False)
                    count += len(writes)
        return time.perf_counter() - started, count
    finally:
        await consumer.stop()
        await client.drop_database(collection.database.name)
        await client.close()


async def assessed(http: httpx.AsyncClient, url: str) -> Counter[str]:
    text = (await http.get(f"{url}/metrics")).text
    return Counter({k: int(float(v)) for k, v in ASSESSED.findall(text)})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=35_000)
    parser.add_argument("--wave", type=int, default=5_000)
    parser.add_argument("--failure-rate", type=float, default=0.0, help="simulated step failure rate")
    parser.add_argument("--kafka", default=os.environ.get("ESTATE_TEST_KAFKA", "127.0.0.1:39092"))
    parser.add_argument("--mongo", default=os.environ.get("ESTATE_TEST_MONGO", "mongodb://127.0.0.1:37017/"))
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = Settings(mode=Mode.DISTRIBUTED, kafka_bootstrap=args.kafka, mongo_url=args.mongo,
                        mongo_database=f"bench_migr_{run}", jwt_secret="benchmark-" + "s" * 30,
                        consumer_group_prefix=f"bench-{run}.")
    specs = list(itertools.islice(generate(2014), args.devices))  # the sample estate's XP desktops first
    csv_text = io.StringIO()
    write_csv(specs, csv_text)
    token = issue_token(settings, subject="bench", roles=[Role.ADMIN], now=datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}"}
    inventory_url, migration_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    migration_env = {"ESTATE_WAVE_INTERVAL_S": "0.2", "ESTATE_EXECUTOR_STEP_DURATION_S": "0",
                     "ESTATE_EXECUTOR_FAILURE_RATE": str(args.failure_rate)}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # the inventory group starts at the ends of what it follows: no earlier runs' events
        for topic in (MIGRATION_TOPIC, "procurement.deliveries"):
            await begin_group_at(args.kafka, settings.consumer_group_prefix + "inventory",
                                 await end_offsets(args.kafka, topic))
        inventory = start(settings, "inventory", int(inventory_url.rsplit(":", 1)[1]), {})
        processes.append(inventory)
        await wait_ready(inventory_url, inventory)
        before = await end_offsets(args.kafka, INVENTORY_TOPIC)
        async with httpx.AsyncClient(timeout=600, headers=headers) as http:
            answer = await http.post(f"{inventory_url}/devices/import", content=csv_text.getvalue(),
                                     headers={"Content-Type": "text/csv"})
        assert answer.status_code == 200 and answer.json()["created"] == args.devices, answer.text[:300]
        after = await end_offsets(args.kafka, INVENTORY_TOPIC)
        published = sum(after.values()) - sum(before.get(tp, 0) for tp in after)

        raw_s, raw_n = await raw_baseline(args.kafka, args.mongo, before, after)

        await begin_group_at(args.kafka, settings.consumer_group_prefix + "migration", before)
        migration_before = await end_offsets(args.kafka, MIGRATION_TOPIC)
        spawned = time.perf_counter()
        migration = start(settings, "migration", int(migration_url.rsplit(":", 1)[1]), migration_env)
        processes.append(migration)
        sampler = RssSampler(migration.pid)
        sampler.start()
        await wait_ready(migration_url, migration)
        ready_s = time.perf_counter() - spawned
        async with httpx.AsyncClient(timeout=600, headers=headers) as http:
            while sum((outcomes := await assessed(http, migration_url)).values()) < args.devices:
                if time.perf_counter() - spawned > 900:
                    raise SystemExit(f"assessment not done after 900 s: {sum(outcomes.values())}")
                await asyncio.sleep(0.1)
            assess_s = time.perf_counter() - spawned
            n = args.devices
            print(f"devices imported           {n} (events on {INVENTORY_TOPIC}: {published})")
            print(f"raw baseline               {raw_s:6.2f} s  {raw_n / raw_s:8.0f} events/s "
                  "(aiokafka consume + PyMongo bulk upsert by _id per batch)")
            print(f"migration assessment       {assess_s:6.2f} s  {n / assess_s:8.0f} devices/s from process start "
                  f"(ready after {ready_s:.2f} s; target 20 s)")
            print(f"assessment / baseline      {raw_s / assess_s:6.0%}")
            print(f"verdicts                   {dict(sorted(outcomes.items()))}", flush=True)

            wave_before = await end_offsets(args.kafka, INVENTORY_TOPIC)
            saga_before = await end_offsets(args.kafka, MIGRATION_TOPIC)
            planned_at = time.perf_counter()
            plan = await http.post(f"{migration_url}/migration/waves", json={
                "name": "benchmark", "boroughs": list(LONDON_BOROUGHS), "max_devices": args.wave,
                "start_date": str(datetime.now(UTC).date()), "daily_capacity": args.wave})
            assert plan.status_code == 201, plan.text[:500]
            wave_id, size = plan.json()["wave"]["wave_id"], len(plan.json()["wave"]["devices"])
            plan_s = time.perf_counter() - planned_at
            print(f"wave planned               {size} devices in {plan_s:.2f} s (each scheduled, one write each)",
                  flush=True)
            while True:
                answer = await http.get(f"{migration_url}/migration/waves/{wave_id}")
                if answer.status_code == 200 and (wave := answer.json())["wave"]["state"] == "completed":
                    break
                if time.perf_counter() - planned_at > 1800:  # a 503 (store busy) is asked again
                    raise SystemExit(f"wave not completed after 1800 s: {answer.text[:300]}")
                await asyncio.sleep(0.1)
            wave_s = time.perf_counter() - planned_at
            # inventory follows: wait until every migrated device shows its new state there
            expected = wave["progress"]["migrated"]
            while True:
                inventory_events = await topic_events(args.kafka, wave_before,
                                                      await end_offsets(args.kafka, INVENTORY_TOPIC))
                migrated = {e.subject for e in inventory_events if e.type == "inventory.device.state_changed.v1"
                            and e.data["to_state"] == "migrated"}
                if len(migrated) >= expected or time.perf_counter() - planned_at > 900:
                    break
                await asyncio.sleep(0.5)
            follow_s = time.perf_counter() - planned_at
        sampler.stop.set()
        sampler.join()
        saga_events = await topic_events(args.kafka, saga_before, await end_offsets(args.kafka, MIGRATION_TOPIC))
        await asyncio.sleep(2)  # the relay's last rounds
        all_events = await topic_events(args.kafka, migration_before, await end_offsets(args.kafka, MIGRATION_TOPIC))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(120)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(args.mongo)
        await client.drop_database(settings.mongo_database)
        await client.close()

    print(f"wave through every step    {wave_s:6.2f} s  {size / wave_s:8.0f} sagas/s "
          f"(migrated {wave['progress']['migrated']}, failed {wave['progress']['failed']}; "
          f"failure rate {args.failure_rate})")
    saga_counts = dict(sorted(Counter(e.type.removeprefix("migration.") for e in saga_events).items()))
    print(f"saga events                {saga_counts}")
    print(f"inventory updates caused   {len(inventory_events)} events for {len(migrated)} devices migrated in "
          f"inventory, {follow_s:.2f} s after the plan "
          f"({dict(sorted(Counter(e.type.removeprefix('inventory.device.') for e in inventory_events).items()))})")
    repeated = sum(c - 1 for c in Counter(e.id for e in all_events).values() if c > 1)
    print(f"events on {MIGRATION_TOPIC}    {len(all_events)} from this run, {repeated} of them repeated ids "
          "(published again)")
    print(f"migration peak RSS         {sampler.peak / 2**20:6.0f} MB (target < 250 MB)")


if __name__ == "__main__":
    asyncio.run(main())
