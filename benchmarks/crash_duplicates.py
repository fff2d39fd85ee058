"""Benchmark: how many events a SIGKILL makes the inventory service publish twice.

For each kill point, on the real stack: start the service, import the sample estate over HTTP,
kill the process with SIGKILL at that point, start a new one, wait until every device's
registration is on Kafka and every outbox is cleared, and count the event ids that reached
the topic more than once. Kill points: half way through the import, right after its answer,
and a few seconds after it (while published entries are being cleared).

Needs Kafka and the MongoDB-wire server running (`make bench` starts them):
    .venv/bin/python benchmarks/crash_duplicates.py [--rows 45500] [--points mid,answer,after]
Target (issue 5): no more than the last few seconds of publishing (one relay round: 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from import_35k import TOPIC, free_port, start_service, wait_ready
from pymongo import AsyncMongoClient

from services.inventory.sample_estate import generate, write_csv
from services.runtime.auth import Role, issue_token
from services.runtime.settings import Mode, Settings


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic may be new
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        return await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()


async def events_since(bootstrap: str, start: dict[TopicPartition, int], want: int) -> Counter[str]:
    """Event ids on the topic after ``start``, until ``want`` distinct ones came and then 5 s of quiet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    ids: Counter[str] = Counter()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp, 0))
        quiet_since = time.monotonic()
        while len(ids) < want or time.monotonic() - quiet_since < 5:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    ids[json.loads(record.value)["id"]] += 1
                    quiet_since = time.monotonic()
        return ids
    finally:
        await consumer.stop()


async def outboxes_left(mongo: str, database: str) -> int:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo)
    try:
        return await client[database]["devices"].count_documents({"outbox.0": {"$exists": True}})
    finally:
        await client.close()


async def run_once(point: str, body: bytes, rows: int, kafka: str, mongo: str) -> tuple[int, int, float]:
    settings = Settings(mode=Mode.DISTRIBUTED, kafka_bootstrap=kafka, mongo_url=mongo,
                        mongo_database=f"bench_{uuid.uuid4().hex[:8]}", jwt_secret="benchmark-" + "s" * 30)
    os.environ["ESTATE_OUTBOX_LEASE_S"] = "3"  # the successor takes over 3 s after the kill
    token = issue_token(settings, subject="bench", roles=[Role.WRITER], now=datetime.now(UTC))
    start = await end_offsets(kafka)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = start_service(settings, port)
    try:
        await wait_ready(url, first)
        async with httpx.AsyncClient(timeout=600, headers={"Authorization": f"Bearer {token}"}) as http:
            importing = asyncio.create_task(
                http.post(f"{url}/devices/import", content=body, headers={"Content-Type": "text/csv"}))
            if point == "mid":
                await asyncio.sleep(5)
            else:
                await importing
                if point == "after":
                    await asyncio.sleep(5)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            if not importing.done():
                importing.cancel()
        left_at_kill = await outboxes_left(mongo, settings.mongo_database)
        stored = await count_devices(mongo, settings.mongo_database)
        second = start_service(settings, port)
        try:
            await wait_ready(url, second)
            started = time.perf_counter()
            ids = await events_since(kafka, start, stored)
            while await outboxes_left(mongo, settings.mongo_database):
                await asyncio.sleep(1)
            recovery_s = time.perf_counter() - started
        finally:
            second.terminate()
            second.wait(120)
    finally:
        if first.poll() is None:
            first.kill()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo)
        await client.drop_database(settings.mongo_database)
        await client.close()
    if len(ids) < stored:
        raise SystemExit(f"{point}: only {len(ids)} of {stored} stored devices were announced")
    return left_at_kill, sum(n - 1 for n in ids.values()), recovery_s


async def count_devices(mongo: str, database: str) -> int:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo)
    try:
        return await client[database]["devices"].count_documents({})
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=45_500)
    parser.add_argument("--points", default="mid,answer,after")
    parser.add_argument("--kafka", default=os.environ.get("ESTATE_TEST_KAFKA", "127.0.0.1:39092"))
    parser.add_argument("--mongo", default=os.environ.get("ESTATE_TEST_MONGO", "mongodb://127.0.0.1:37017/"))
    args = parser.parse_args()
    text = io.StringIO()
    write_csv(list(itertools.islice(generate(2014), args.rows)), text)
    body = text.getvalue().encode()
    print(f"{'killed':<34} {'outboxes left':>13} {'published twice':>16} {'recovered in':>13}")
    for point in args.points.split(","):
        left, twice, recovery_s = await run_once(point, body, args.rows, args.kafka, args.mongo)
        label = {"mid": "5 s into the import", "answer": "right after the import's answer",
                 "after": "5 s after the import's answer"}[point]
        print(f"{label:<34} {left:>13} {twice:>16} {recovery_s:>11.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
