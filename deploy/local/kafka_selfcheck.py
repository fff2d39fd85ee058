"""Check that a running Kafka broker does what the platform needs from it, with aiokafka.

    python deploy/local/kafka_selfcheck.py 127.0.0.1:39092

Checks, each against fresh uniquely named topics and groups (safe to rerun):
  1. admin: create_topics (3 partitions and 1 partition), list_topics, describe_topics;
  2. idempotent producer (enable_idempotence=True, acks='all'): keyed messages with
     headers; a key always lands on one partition; a producer id was assigned;
  3. topic auto-creation on produce gives num.partitions (3) partitions;
  4. consumer groups with enable_auto_commit=False: a first consumer reads part of the
     topic and commits its offsets by hand, a second consumer in the same group resumes
     exactly after the committed offsets (no message lost, none read twice);
  5. headers and keys round-trip unchanged.
Exit 0 when all pass, 1 on the first failure (with the reason).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

N_MESSAGES = 30
N_KEYS = 5
FIRST_READ = 10
STEP_TIMEOUT = 60.0


class CheckFailed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def ok(msg: str) -> None:
    print(f"  ok  {msg}", flush=True)


async def check_admin(bootstrap: str, topic3: str, topic1: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        resp = await admin.create_topics(
            [
                NewTopic(topic3, num_partitions=3, replication_factor=1),
                NewTopic(topic1, num_partitions=1, replication_factor=1),
            ],
            timeout_ms=30000,
        )
        errors = {t[0]: t[1] for t in resp.topic_errors}  # (name, error_code, ...)
        expect(errors == {topic3: 0, topic1: 0}, f"create_topics errors: {resp.topic_errors}")
        ok(f"create_topics {topic3} (3 partitions), {topic1} (1 partition)")

        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            topics = set(await admin.list_topics())
            if {topic3, topic1} <= topics:
                break
            expect(time.monotonic() < deadline, f"list_topics lacks new topics: {topics}")
            await asyncio.sleep(0.2)
        ok(f"list_topics shows both ({len(topics)} topics)")

        described = {t["topic"]: t for t in await admin.describe_topics([topic3, topic1])}
        n3 = len(described[topic3]["partitions"])
        n1 = len(described[topic1]["partitions"])
        expect((n3, n1) == (3, 1), f"describe_topics partitions: {n3}, {n1}")
        ok("describe_topics: 3 and 1 partitions")
    finally:
        await admin.close()


async def check_producer(bootstrap: str, topic: str, auto_topic: str) -> list[tuple]:
    """Send keyed messages with headers; return (key, value, headers, partition, offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=30000,
    )
    await producer.start()
    sent: list[tuple] = []
    try:
        for i in range(N_MESSAGES):
            key = f"key-{i % N_KEYS}".encode()
            value = f"value-{i}".encode()
            headers = [
                ("event-id", str(uuid.uuid4()).encode()),
                ("seq", str(i).encode()),
                ("empty", b""),
            ]
            md = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            sent.append((key, value, headers, md.partition, md.offset))
        pid = producer._txn_manager.producer_id if producer._txn_manager else -1
        expect(pid is not None and pid >= 0, f"idempotent producer got no producer id ({pid})")

        by_key: dict[bytes, set[int]] = {}
        for key, _, _, partition, _ in sent:
            by_key.setdefault(key, set()).add(partition)
        expect(all(len(p) == 1 for p in by_key.values()), f"a key spans partitions: {by_key}")
        used = {p for ps in by_key.values() for p in ps}
        ok(
            f"idempotent producer (acks=all, producer id {pid}) sent {N_MESSAGES} keyed "
            f"messages; each key on one partition ({len(used)} partitions used)"
        )

        # Auto-creation on first produce (auto.create.topics.enable, num.partitions=3).
        md = await producer.send_and_wait(auto_topic, value=b"x", key=b"k")
        parts = producer.client.cluster.partitions_for_topic(auto_topic) or set()
        expect(len(parts) == 3, f"auto-created topic has {len(parts)} partitions, not 3")
        ok(f"auto-created {auto_topic} on produce with 3 partitions (offset {md.offset})")
    finally:
        await producer.stop()
    return sent


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        request_timeout_ms=30000,
    )


async def _read(consumer: AIOKafkaConsumer, want: int, max_records: int | None) -> list:
    got: list = []
    deadline = time.monotonic() + STEP_TIMEOUT
    while len(got) < want:
        expect(time.monotonic() < deadline, f"consumed {len(got)} of {want} in time")
        batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
        for records in batch.values():
            got.extend(records)
        if max_records is not None and got:
            break
    return got


async def check_consumers(bootstrap: str, topic: str, sent: list[tuple]) -> None:
    group = f"selfcheck-group-{uuid.uuid4().hex[:8]}"
    expected = {(p, o): (k, v, h) for k, v, h, p, o in sent}

    # First consumer: read a part, commit exactly that part by hand, leave.
    c1 = _consumer(bootstrap, group)
    await c1.start()
    try:
        c1.subscribe([topic])
        first = await _read(c1, 1, FIRST_READ)
        expect(0 < len(first) <= FIRST_READ, f"first read returned {len(first)} records")
        commit: dict[TopicPartition, int] = {}
        for r in first:
            tp = TopicPartition(r.topic, r.partition)
            commit[tp] = max(commit.get(tp, 0), r.offset + 1)
        await c1.commit(commit)
        for tp, off in commit.items():
            committed = await c1.committed(tp)
            expect(committed == off, f"committed({tp}) = {committed}, expected {off}")
    finally:
        await c1.stop()
    ok(f"consumer 1 in {group} read {len(first)} records, committed {len(commit)} partition(s) by hand")

    # Second consumer, same group: must resume after the committed offsets.
    c2 = _consumer(bootstrap, group)
    await c2.start()
    try:
        c2.subscribe([topic])
        rest = await _read(c2, len(sent) - len(first), None)
        for tp, off in commit.items():
            committed = await c2.committed(tp)
            expect(committed == off, f"c2 sees committed({tp}) = {committed}, expected {off}")
        last = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in rest}
        await c2.commit(last)
    finally:
        await c2.stop()

    seen1 = {(r.partition, r.offset) for r in first}
    seen2 = [(r.partition, r.offset) for r in rest]
    expect(len(seen2) == len(set(seen2)), "consumer 2 read a record twice")
    expect(not (seen1 & set(seen2)), f"consumer 2 re-read committed records: {seen1 & set(seen2)}")
    expect(seen1 | set(seen2) == set(expected), "records lost between the two consumers")
    for tp, off in commit.items():
        resumed = min((o for p, o in seen2 if p == tp.partition), default=off)
        expect(resumed == off, f"{tp}: resumed at {resumed}, not {off}")
    ok(f"consumer 2 in the same group resumed at the committed offsets, read the other {len(rest)}")

    # Keys, values and headers round-trip unchanged.
    for r in first + rest:
        key, value, headers = expected[(r.partition, r.offset)]
        expect(r.key == key and r.value == value, f"key/value changed at {r.partition}@{r.offset}")
        got_headers = [(h[0], bytes(h[1])) for h in r.headers]
        expect(got_headers == headers, f"headers changed: {got_headers} != {headers}")
    ok(f"keys, values and headers round-trip for all {len(expected)} records")


async def run(bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic3 = f"selfcheck-p3-{suffix}"
    topic1 = f"selfcheck-p1-{suffix}"
    auto_topic = f"selfcheck-auto-{suffix}"
    print(f"kafka_selfcheck against {bootstrap}", flush=True)
    await asyncio.wait_for(check_admin(bootstrap, topic3, topic1), STEP_TIMEOUT)
    sent = await asyncio.wait_for(check_producer(bootstrap, topic3, auto_topic), STEP_TIMEOUT)
    await asyncio.wait_for(check_consumers(bootstrap, topic3, sent), 2 * STEP_TIMEOUT)


def main() -> int:
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:39092"
    logging.basicConfig(level=logging.WARNING)
    # aiokafka logs expected transient states at ERROR (an auto-created topic not yet in
    # metadata, the group coordinator while __consumer_offsets is being created); any
    # real problem surfaces as an exception or a failed check.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    try:
        asyncio.run(run(bootstrap))
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - report any error as a failed check
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"kafka_selfcheck: all checks passed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
