"""``estate dead-letters``: what a consumer group put on ``<topic>.<group>.dead-letter``, and
replaying it to that group only (the replayed message carries ``dlq-replay-group``; every
other group that reads the original topic skips it).

Listing reads the dead-letter topic from the start without committing anything. Replay
reads it as the consumer group ``estate-dlq-replay`` from where that group left off,
republishes each message to its original topic without the ``dlq-*`` headers, and commits
after each one, so an interrupted replay resumes where it stopped. Both read up to the end
the topic had when they started (a replayed message that fails again comes back to the
dead-letter topic and must not be replayed in a loop), or until nothing new came for
``IDLE_S`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from services.runtime.bus.base import REPLAY_GROUP_HEADER, dead_letter_topic

REPLAY_GROUP = "estate-dlq-replay"
IDLE_S = 2.0
DLQ_PREFIX = "dlq-"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    original_topic: str
    original_offset: str | None
    consumer_group: str | None
    error: str | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes
    replayed: bool = False

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    def replay_headers(self, group: str) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_PREFIX)] + [
            (REPLAY_GROUP_HEADER, group.encode())]


class KafkaUnreachable(Exception):
    pass


def _header(headers: tuple[tuple[str, bytes], ...], name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("utf-8", "replace")
    return None


def _dead_letter(record: Any, topic: str, replayed: bool) -> DeadLetter:
    headers = tuple((k, bytes(v or b"")) for k, v in (record.headers or ()))
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return DeadLetter(
        record.partition, record.offset, key, _header(headers, "dlq-original-topic") or topic,
        _header(headers, "dlq-original-offset"), _header(headers, "dlq-consumer-group"),
        _header(headers, "dlq-error"), headers, bytes(record.value or b""), replayed)


@dataclass
class Kafka:
    """The aiokafka classes, replaceable in tests."""

    bootstrap: str
    client_id: str = "estate-cli"

    def admin(self) -> Any:
        from aiokafka.admin import AIOKafkaAdminClient
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id)

    def consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                group_id=REPLAY_GROUP, enable_auto_commit=False,
                                auto_offset_reset="earliest")

    def producer(self) -> Any:
        from aiokafka import AIOKafkaProducer
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                enable_idempotence=True, acks="all")

    @staticmethod
    def partition(topic: str, number: int) -> Any:
        from aiokafka import TopicPartition
        return TopicPartition(topic, number)


async def _partitions(kafka: Kafka, topic: str) -> list[int] | None:
    """The topic's partitions, or None if it does not exist (asking never creates it)."""
    admin = kafka.admin()
    await admin.start()
    try:
        for found in await admin.describe_topics(None):
            if found["topic"] == topic:
                return sorted(p["partition"] for p in found["partitions"])
        return None
    finally:
        await admin.close()


async def _started(client: Any, bootstrap: str) -> None:
    from aiokafka.errors import KafkaConnectionError
    try:
        await client.start()
    except KafkaConnectionError as error:
        raise KafkaUnreachable(f"Kafka is not reachable at {bootstrap}: {error}") from None


async def dead_letters(kafka: Kafka, topic: str, group: str, *, replay: bool = False, limit: int | None = None,
                       seen: Callable[[DeadLetter], None] = lambda d: None,
                       idle_s: float = IDLE_S) -> list[DeadLetter] | None:
    """List (or replay) what ``group`` dead-lettered from ``topic``; None if it never had any."""
    from aiokafka.errors import KafkaConnectionError
    source = dead_letter_topic(topic, group)
    try:
        numbers = await _partitions(kafka, source)
    except KafkaConnectionError as error:
        raise KafkaUnreachable(f"Kafka is not reachable at {kafka.bootstrap}: {error}") from None
    if numbers is None:
        return None
    partitions = [kafka.partition(source, n) for n in numbers]
    consumer = kafka.consumer()
    producer = kafka.producer() if replay else None
    await _started(consumer, kafka.bootstrap)
    try:
        if producer is not None:
            await _started(producer, kafka.bootstrap)
        consumer.assign(partitions)
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
        if not replay:
            await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        return await _read(consumer, producer, ends, committed, topic, group, limit, seen, idle_s)
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()


async def _read(consumer: Any, producer: Any, ends: dict[Any, int], committed: dict[Any, int],
                topic: str, group: str, limit: int | None, seen: Callable[[DeadLetter], None],
                idle_s: float) -> list[DeadLetter]:
    loop = asyncio.get_running_loop()
    found: list[DeadLetter] = []
    idle_since = loop.time()
    while limit is None or len(found) < limit:
        pending = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
        if not pending or loop.time() - idle_since >= idle_s:
            break
        batch = await consumer.getmany(*pending, timeout_ms=200)
        if any(batch.values()):
            idle_since = loop.time()
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp] or (limit is not None and len(found) >= limit):
                    continue
                letter = _dead_letter(record, topic, record.offset < committed[tp])
                if producer is not None:
                    await producer.send_and_wait(letter.original_topic, value=letter.value,
                                                 key=record.key, headers=letter.replay_headers(group))
                    await consumer.commit({tp: record.offset + 1})
                    letter = replace(letter, replayed=True)
                found.append(letter)
                seen(letter)
    return found

