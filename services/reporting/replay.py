"""Replay: every event reporting reads, from the beginning of its topics, folded in memory with
the live rules and written into a fresh read model at once (per-event writes on FerretDB
could not reach the rate a replay needs).

Sources: the in-process bus's log (embedded platform) or the Kafka topics (a plain consumer
with no group: it commits nothing and disturbs no one), read up to the end offsets they had
when the replay began.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.reporting.projection import Fold, Projector
from services.reporting.store import ReadModel
from services.runtime.bus.memory import MemoryBus

logger = logging.getLogger(__name__)

RawEvent = tuple[str, str, dict[str, Any], datetime]
"""(event id, type, data, time): what the fold needs of an envelope."""


def parse(value: bytes) -> RawEvent:
    """The envelope's parts, read without building the model (the replay reads many)."""
    doc = orjson.loads(value)
    return doc["id"], doc["type"], doc["data"], datetime.fromisoformat(doc["time"])


class EventLog(Protocol):
    def batches(self, topics: Sequence[str]) -> AsyncIterator[list[bytes]]: ...


class MemoryLog:
    """The embedded platform's in-process bus: everything ever published."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def batches(self, topics: Sequence[str]) -> AsyncIterator[list[bytes]]:
        for topic in topics:
            yield [m.value for m in self._bus.messages(topic)]


class KafkaLog:
    """The topics on Kafka from offset 0 to their end offsets at the start of the read."""

    def __init__(self, bootstrap: str, *, fetch_max_bytes: int = 64 * 1024 * 1024) -> None:
        self._bootstrap = bootstrap
        self._fetch_max_bytes = fetch_max_bytes

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """The topics' partitions (asking creates nothing; a missing topic has none)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            found = {t["topic"]: t["partitions"] for t in await admin.describe_topics(None)}
        finally:
            await admin.close()
        return [TopicPartition(t, p["partition"]) for t in topics for p in sorted(
            found.get(t, ()), key=lambda p: int(p["partition"]))]

    async def batches(self, topics: Sequence[str]) -> AsyncIterator[list[bytes]]:
        partitions = await self.partitions(topics)
        if not partitions:
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_bytes=self._fetch_max_bytes,
                                    max_partition_fetch_bytes=self._fetch_max_bytes)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = {tp: off for tp, off in (await consumer.end_offsets(partitions)).items() if off > 0}
            while ends:
                fetched = await consumer.getmany(*ends, timeout_ms=1000, max_records=100_000)
                for tp, records in fetched.items():
                    if tp not in ends:
                        continue
                    end = ends[tp]
                    yield [r.value for r in records if r.offset < end and r.value is not None]
                    if records and records[-1].offset + 1 >= end:
                        del ends[tp]
        finally:
            await consumer.stop()


@dataclass(frozen=True, slots=True)
class ReplayReport:
    read_model: str
    events: int
    applied: int
    documents: int
    read_s: float
    fold_s: float
    write_s: float
    events_per_s: float
    unreadable: int = 0
    """Messages on the topics that are not an event at all (the live consumers dead-lettered them)."""


async def rebuild(log: EventLog, topics: Sequence[str], projector: Projector, target: ReadModel) -> ReplayReport:
    """Fold every event of ``topics`` into a fresh ``target`` read model."""
    started = time.perf_counter()
    fold = Fold(projector)
    events = applied = unreadable = 0
    fold_s = 0.0
    collecting = gc.isenabled()
    gc.disable()  # the fold only grows: the cyclic collector would rescan it again and again
    try:
        async for batch in log.batches(topics):
            t = time.perf_counter()
            for value in batch:
                try:
                    event = parse(value)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    unreadable += 1
                    continue
                events += 1
                applied += fold.apply(*event)
            fold_s += time.perf_counter() - t
    finally:
        if collecting:
            gc.enable()
    read_done = time.perf_counter()
    await target.clear()
    documents = await target.write(fold)
    done = time.perf_counter()
    total = done - started
    if unreadable:
        logger.warning("replay skipped %d message(s) that are not events (dead letters of the live consumers)",
                    unreadable)
    return ReplayReport(target.name, events, applied, documents, read_done - started - fold_s, fold_s,
                        done - read_done, events / total if total else 0.0, unreadable)
