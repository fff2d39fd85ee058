"""Reporting on the real stack: replay rebuild speed beside a raw aiokafka consume of the same
topic, and how soon the live read model shows an imported estate.

Replay: publishes the sample estate's registrations (45,500) plus a migration of part of it
(one update per migrated device) as inventory events to a fresh topic, then in the same run:
1. a raw consume: a plain AIOKafkaConsumer reading every message (no parsing);
2. the replay: the same read, every envelope folded with the live rules, the read model
   written into FerretDB at once.
Targets (issue 9): >= 20,000 events/s and >= 50% of the raw consume.

Live (``--live``): starts the inventory and the reporting services as two processes (uvicorn,
distributed mode, a fresh database), imports the sample estate into inventory over HTTP, and
times the last inventory event reaching Kafka (the topic's end offsets, polled) and the
reporting summary showing every device (polled). Needs an empty ``inventory.devices`` topic
(a fresh broker), since the sample estate's asset tags are fixed. Target: within 5 s.

    ESTATE_TEST_KAFKA=127.0.0.1:49792 ESTATE_TEST_MONGO=mongodb://127.0.0.1:48317/ \
        python benchmarks/replay.py [--migrated 20000] [--live] [--no-replay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from import_35k import RssSampler

from contracts.envelope import Envelope
from contracts.inventory import DEVICES_TOPIC
from services.inventory.sample_estate import generate, write_csv
from services.reporting.domain import projector
from services.reporting.replay import KafkaLog, rebuild
from services.reporting.store import ReadModel
from services.runtime.auth import Role, issue_token
from services.runtime.settings import Mode, Settings
from services.runtime.store.mongo import MongoStore

START = datetime(2014, 4, 8, 9, tzinfo=UTC)


def events(migrated: int) -> list[Envelope]:
    out = []
    specs = list(generate(2014))
    for spec in specs:
        device = {**spec.model_dump(mode="json"), "version": 1, "registered_at": START.isoformat(),
                  "updated_at": START.isoformat()}
        out.append(Envelope(id=str(uuid.uuid4()), type="inventory.device.registered.v1", source="/bench",
                            subject=spec.asset_tag, time=START, data={"device": device}))
    xp = [s for s in specs if s.os.version == "XP"][:migrated]
    for n, spec in enumerate(xp):
        at = START + timedelta(days=1 + n * 600 // max(1, len(xp)))
        device = {**spec.model_dump(mode="json"), "os": {"family": "windows", "version": "8.1"},
                  "state": "migrated", "version": 2, "registered_at": START.isoformat(), "updated_at": at.isoformat()}
        out.append(Envelope(id=str(uuid.uuid4()), type="inventory.device.updated.v1", source="/bench",
                            subject=spec.asset_tag, time=at,
                            data={"asset_tag": spec.asset_tag, "version": 2, "changed_fields": ["os"],
                                  "device": device}))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def publish(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic, e.to_bytes(), key=e.subject.encode()) for e in envelopes]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    async for batch in KafkaLog(bootstrap).batches([topic]):
        count += len(batch)
    return count, time.perf_counter() - started


def start_service(name: str, settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ESTATE_MODE": "distributed", "ESTATE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "ESTATE_MONGO_URL": settings.mongo_url, "ESTATE_MONGO_DATABASE": settings.mongo_database,
           "ESTATE_JWT_SECRET": settings.jwt_secret, "ESTATE_LOG_LEVEL": "WARNING",
           "ESTATE_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix}
    return subprocess.Popen([sys.executable, "-m", "uvicorn", f"services.asgi:{name}", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)


async def wait_ready(http: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"{url} exited during start-up")
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(f"{url}/health/ready")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


async def topic_size(consumer: AIOKafkaConsumer, topic: str) -> int:
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic may be new
        partitions = consumer.partitions_for_topic(topic) or set()
    return sum((await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])).values())


async def live(bootstrap: str, mongo: str) -> None:
    specs = list(generate(2014))
    body = io.StringIO()
    write_csv(specs, body)
    settings = Settings(mode=Mode.DISTRIBUTED, kafka_bootstrap=bootstrap, mongo_url=mongo,
                        mongo_database=f"bench_live_{uuid.uuid4().hex[:8]}", jwt_secret="benchmark-" + "s" * 30,
                        consumer_group_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    now = datetime.now(UTC)
    writer = issue_token(settings, subject="bench", roles=[Role.WRITER], now=now)
    reader = issue_token(settings, subject="bench", roles=[Role.READER], now=now)
    admin = issue_token(settings, subject="bench", roles=[Role.ADMIN], now=now)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    ports = {name: free_port() for name in ("inventory", "reporting")}
    processes = {name: start_service(name, settings, port) for name, port in ports.items()}
    samplers = {name: RssSampler(p.pid) for name, p in processes.items()}
    for sampler in samplers.values():
        sampler.start()
    inventory, reporting = (f"http://127.0.0.1:{ports[n]}" for n in ("inventory", "reporting"))
    try:
        async with httpx.AsyncClient(timeout=600) as http:
            for name, url in (("inventory", inventory), ("reporting", reporting)):
                await wait_ready(http, url, processes[name])
            if (before := await topic_size(consumer, DEVICES_TOPIC)) != 0:
                raise SystemExit(f"{DEVICES_TOPIC} holds {before} events already: run --live on a fresh broker")
            started = time.perf_counter()
            marks: dict[str, float] = {}

            async def last_event() -> None:
                while await topic_size(consumer, DEVICES_TOPIC) < len(specs):
                    await asyncio.sleep(0.05)
                marks["last event"] = time.perf_counter()

            async def whole_estate() -> None:
                while True:
                    answer = await http.get(f"{reporting}/reporting/summary",
                                            headers={"Authorization": f"Bearer {reader}"})
                    if answer.status_code == 200 and answer.json()["devices"] == len(specs):
                        marks["reporting"] = time.perf_counter()
                        return
                    await asyncio.sleep(0.1)

            watchers = asyncio.gather(last_event(), whole_estate())
            answer = await http.post(f"{inventory}/devices/import", content=body.getvalue().encode(),
                                     headers={"Content-Type": "text/csv", "Authorization": f"Bearer {writer}"})
            marks["import answered"] = time.perf_counter()
            if answer.status_code != 200:
                watchers.cancel()
                raise SystemExit(f"the import answered {answer.status_code}: {answer.text[:300]}")
            await asyncio.wait_for(watchers, timeout=900)
            summary = (await http.get(f"{reporting}/reporting/summary",
                                      headers={"Authorization": f"Bearer {reader}"})).json()
            print(f"live: import of {len(specs)} devices answered {answer.status_code} after "
                  f"{marks['import answered'] - started:.1f} s; last inventory event on Kafka at "
                  f"{marks['last event'] - started:.1f} s; reporting showed all {summary['devices']} devices "
                  f"(legacy {summary['legacy_remaining']}) at {marks['reporting'] - started:.1f} s = "
                  f"{marks['reporting'] - marks['last event']:.1f} s after the last event (target: within 5 s)")
            t = time.perf_counter()
            rebuilt = await http.post(f"{reporting}/reporting/replay", headers={"Authorization": f"Bearer {admin}"})
            answer_s = time.perf_counter() - t
            result = rebuilt.json()
            print(f"live: POST /reporting/replay answered {rebuilt.status_code} after {answer_s:.1f} s: "
                  f"{result['report']['events']} events, equal to live: {result['equal_to_live']}")
            print("live: peak RSS " + ", ".join(f"{name} {sampler.peak / 2**20:.0f} MB"
                                                for name, sampler in samplers.items())
                  + " (k8s limit 256Mi each)")
    finally:
        await consumer.stop()
        for sampler in samplers.values():
            sampler.stop.set()
        for process in processes.values():
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()  # a service still busy shutting down (printing came first)
                process.wait(30)
async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--migrated", type=int, default=20_000)
    parser.add_argument("--live", action="store_true", help="also time the live read model after an import")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay measurement")
    args = parser.parse_args()
    bootstrap = os.environ.get("ESTATE_TEST_KAFKA", "127.0.0.1:39092")
    mongo = os.environ.get("ESTATE_TEST_MONGO", "mongodb://127.0.0.1:37017/")
    if args.live:
        await live(bootstrap, mongo)
    if not args.no_replay:
        await replay(bootstrap, mongo, args.migrated)


async def replay(bootstrap: str, mongo: str, migrated: int) -> None:
    topic = f"bench.{uuid.uuid4().hex[:8]}.inventory.devices"
    envelopes = events(migrated)
    t = time.perf_counter()
    await publish(bootstrap, topic, envelopes)
    print(f"published {len(envelopes)} events to {topic} in {time.perf_counter() - t:.1f} s")

    raw_count, raw_s = await raw_consume(bootstrap, topic)
    raw_rate = raw_count / raw_s
    print(f"raw aiokafka consume: {raw_count} events in {raw_s:.2f} s = {raw_rate:,.0f} events/s")

    store = MongoStore(mongo, f"bench_replay_{uuid.uuid4().hex[:6]}")
    try:
        model = ReadModel(store, "reporting_replay")
        report = await rebuild(KafkaLog(bootstrap), [topic], projector(), model)
        estate = await model.dimension("estate")
    finally:
        await store.close()
    total = report.read_s + report.fold_s + report.write_s
    print(f"replay rebuild: {report.events} events in {total:.2f} s = {report.events_per_s:,.0f} events/s "
          f"(read {report.read_s:.2f} s, fold {report.fold_s:.2f} s, write {report.documents} documents "
          f"{report.write_s:.2f} s)")
    print(f"replay / raw consume: {report.events_per_s / raw_rate:.0%}")
    print(f"rebuilt estate: {estate}")


if __name__ == "__main__":
    asyncio.run(main())
