"""Benchmark: import 35,000 devices into the inventory service on the real stack.

Prints the service's rate (HTTP bulk import -> FerretDB/MongoDB -> events on Kafka, all
published before the answer) beside a raw baseline measured in the same run: PyMongo bulk
insert of the same device documents plus an aiokafka produce of the same-sized records
(idempotent producer, acks=all). Also prints the service process's peak resident memory.

Needs Kafka and the MongoDB-wire server running (`make bench` starts them):
    .venv/bin/python benchmarks/import_35k.py [--rows 35000]
Targets (issues 2 and 5): whole import with events within 15 s, >= 46% of the baseline's rate,
service RSS under 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient
from versioned_write import device_documents

from services.inventory import domain
from services.inventory.sample_estate import generate, write_csv
from services.runtime.auth import Role, issue_token
from services.runtime.settings import Mode, Settings

TOPIC = "inventory.devices"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def topic_size(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - topic may be new
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def baseline(specs: list[domain.DeviceSpec], mongo_url: str, bootstrap: str) -> float:
    """Raw rate: the same documents inserted with PyMongo, the same-sized records produced."""
    now = datetime.now(UTC)
    devices = device_documents()
    docs = [devices.to_document(domain.register(s, now).value) for s in specs]
    payloads = [json.dumps(d).encode() for d in docs]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    collection = client[f"bench_raw_{uuid.uuid4().hex[:8]}"]["devices"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    started = time.perf_counter()
    for start in range(0, len(docs), 1000):
        await collection.insert_many(docs[start:start + 1000], ordered=False)
    pending = [await producer.send("bench.raw", p, key=d["_id"].encode()) for d, p in zip(docs, payloads, strict=True)]  # type: ignore[union-attr]
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    await producer.stop()
    await client.drop_database(collection.database.name)
    await client.close()
    return elapsed


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


def start_service(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ESTATE_MODE": "distributed", "ESTATE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "ESTATE_MONGO_URL": settings.mongo_url, "ESTATE_MONGO_DATABASE": settings.mongo_database,
           "ESTATE_JWT_SECRET": settings.jwt_secret}
    env["ESTATE_LOG_LEVEL"] = "WARNING"
    command = [sys.executable, "-m", "uvicorn", "services.asgi:inventory", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, env=env)


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit("the inventory service exited during start-up")
            try:
                if (await http.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the inventory service did not become ready")


async def wait_cleared(http: httpx.AsyncClient, url: str) -> float:
    """When the relay has published everything and cleared every published entry."""
    backlog = re.compile(r'^outbox_backlog_events\{collection="(\w+)"\} (\S+)$', re.M)
    uncleared = re.compile(r"^outbox_uncleared_events (\S+)$", re.M)
    while True:
        text = (await http.get(f"{url}/metrics")).text
        waiting = [float(v) for _, v in backlog.findall(text)] + [float(v) for v in uncleared.findall(text)]
        if waiting and not any(waiting):
            return time.perf_counter()
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=35_000)
    parser.add_argument("--kafka", default=os.environ.get("ESTATE_TEST_KAFKA", "127.0.0.1:39092"))
    parser.add_argument("--mongo", default=os.environ.get("ESTATE_TEST_MONGO", "mongodb://127.0.0.1:37017/"))
    args = parser.parse_args()

    specs = list(itertools.islice(generate(2014), args.rows))
    csv_text = io.StringIO()
    write_csv(specs, csv_text)
    body = csv_text.getvalue().encode()

    raw_s = await baseline(specs, args.mongo, args.kafka)

    settings = Settings(mode=Mode.DISTRIBUTED, kafka_bootstrap=args.kafka, mongo_url=args.mongo,
                        mongo_database=f"bench_{uuid.uuid4().hex[:8]}", jwt_secret="benchmark-" + "s" * 30)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_service(settings, port)
    try:
        await wait_ready(url, process)
        before = await topic_size(args.kafka, TOPIC)
        sampler = RssSampler(process.pid)
        sampler.start()
        token = issue_token(settings, subject="bench", roles=[Role.WRITER], now=datetime.now(UTC))
        async with httpx.AsyncClient(timeout=300, headers={"Authorization": f"Bearer {token}"}) as http:
            started = time.perf_counter()
            answer = await http.post(f"{url}/devices/import", content=body, headers={"Content-Type": "text/csv"})
            service_s = time.perf_counter() - started
            clear_s = await wait_cleared(http, url) - started
        sampler.stop.set()
        sampler.join()
        report = answer.json()
        published = await topic_size(args.kafka, TOPIC) - before
    finally:
        process.terminate()
        process.wait(120)
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(args.mongo)
        await client.drop_database(settings.mongo_database)
        await client.close()

    rows = args.rows
    print(f"rows imported            {report['created']} created, {report['rejected']} rejected "
          f"({len(body) / 1e6:.1f} MB CSV)")
    print(f"events published         {published} on {TOPIC}")
    print(f"service import           {service_s:6.2f} s  {rows / service_s:8.0f} devices/s")
    print(f"raw baseline             {raw_s:6.2f} s  {rows / raw_s:8.0f} devices/s "
          "(PyMongo insert_many + aiokafka produce)")
    print(f"service / baseline       {raw_s / service_s:6.0%}   (target >= 46%)")
    print(f"outbox housekeeping      {clear_s:6.2f} s  after the start (published entries cleared "
          "from their documents, in the background)")
    print(f"service peak RSS         {sampler.peak / 2**20:6.0f} MB (target < 250 MB)")
    if report["created"] != rows or published < rows:
        raise SystemExit("not every row was stored and announced")


if __name__ == "__main__":
    asyncio.run(main())
