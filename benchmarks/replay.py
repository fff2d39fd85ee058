"""Replay rebuild speed on the real stack, beside a raw aiokafka consume of the same topic.

Publishes the sample estate's registrations (45,500) plus a migration of part of it (one
update per migrated device) as inventory events to a fresh topic, then in the same run:
1. a raw consume: a plain AIOKafkaConsumer reading every message (no parsing);
2. the replay: the same read, every envelope folded with the live rules, the read model
   written into FerretDB at once.

    ESTATE_TEST_KAFKA=127.0.0.1:49792 ESTATE_TEST_MONGO=mongodb://127.0.0.1:48317/ \
        python benchmarks/replay.py [--migrated 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.envelope import Envelope
from services.inventory.sample_estate import generate
from services.reporting.domain import projector
from services.reporting.replay import KafkaLog, rebuild
from services.reporting.store import ReadModel
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--migrated", type=int, default=20_000)
    args = parser.parse_args()
    bootstrap = os.environ.get("ESTATE_TEST_KAFKA", "127.0.0.1:39092")
    mongo = os.environ.get("ESTATE_TEST_MONGO", "mongodb://127.0.0.1:37017/")
    topic = f"bench.{uuid.uuid4().hex[:8]}.inventory.devices"
    envelopes = events(args.migrated)
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
