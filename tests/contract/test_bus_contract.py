"""One contract, every bus adapter: the in-process bus must deliver as Kafka does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from services.runtime.bus import Bus, BusUnavailable, Message, OutgoingMessage, dead_letter_topic
from services.runtime.bus.delivery import PermanentError, RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.bus.memory import MemoryBus
from services.runtime.metrics import Metrics
from services.runtime.store import StoreUnavailable
from services.runtime.telemetry import Telemetry
from tests.conftest import unique
from tests.integration.faults import paused_broker

pytestmark = pytest.mark.asyncio

POLICY = RetryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)
BusFactory = Callable[[], Bus]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def make_bus(request: pytest.FixtureRequest) -> BusFactory:
    telemetry, metrics = Telemetry("test"), Metrics()
    if request.param == "memory":
        shared = MemoryBus(partitions=3, policy=POLICY, telemetry=telemetry, metrics=metrics)
        return lambda: shared  # the in-process log lives as long as the process
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return lambda: KafkaBus(bootstrap=bootstrap, client_id=unique("bus"), partitions=3, policy=POLICY,
                            telemetry=telemetry, metrics=metrics)


Outage = Callable[[Bus], contextlib.AbstractContextManager[None]]


@pytest.fixture
def outage(make_bus: BusFactory) -> Outage:
    """A broker outage for the duration: the in-process bus's own, or the real broker frozen."""
    def during(bus: Bus) -> contextlib.AbstractContextManager[None]:
        return bus.outage() if isinstance(bus, MemoryBus) else paused_broker()
    return during


@pytest.fixture
async def running() -> AsyncIterator[list[Bus]]:
    buses: list[Bus] = []
    yield buses
    for bus in buses:
        await bus.stop()


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def recorder(into: list[Message]) -> Callable[[Message], Awaitable[None]]:
    async def handle(message: Message) -> None:
        into.append(message)
    return handle


async def start(bus: Bus, running: list[Bus]) -> Bus:
    await bus.start()
    running.append(bus)
    return bus


async def test_every_group_sees_every_message_in_key_order(make_bus: BusFactory, running: list[Bus]) -> None:
    topic = unique("orders")
    first, second = [], []  # type: ignore[var-annotated]
    bus = make_bus()
    bus.subscribe(unique("g1"), [topic], recorder(first))
    bus.subscribe(unique("g2"), [topic], recorder(second))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, f"k{i % 4}", f"{i}".encode(), (("h", b"v"),)) for i in range(40)])
    await eventually(lambda: len(first) == 40 and len(second) == 40)
    for received in (first, second):
        for key in ("k0", "k1", "k2", "k3"):
            values = [int(m.value) for m in received if m.key == key]
            assert values == sorted(values) and len(values) == 10
        assert all(m.header("h") == "v" for m in received)


async def test_a_failing_handler_is_retried_then_succeeds(make_bus: BusFactory, running: list[Bus]) -> None:
    topic = unique("retry")
    attempts: list[int] = []

    async def flaky(message: Message) -> None:
        attempts.append(message.offset)
        if len(attempts) < 3:
            raise RuntimeError("store briefly away")

    bus = make_bus()
    bus.subscribe(unique("g"), [topic], flaky)
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", b"x")])
    await eventually(lambda: len(attempts) == 3)
    await asyncio.sleep(0.3)
    assert len(attempts) == 3


async def test_exhausted_and_poison_messages_go_to_the_dead_letter_topic(
        make_bus: BusFactory, running: list[Bus]) -> None:
    topic = unique("dlq")
    group = unique("g")
    handled: list[bytes] = []
    attempts = {"broken": 0, "poison": 0}

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            attempts["poison"] += 1
            raise PermanentError("cannot parse")
        if message.value == b"broken":
            attempts["broken"] += 1
            raise RuntimeError("always fails")
        handled.append(message.value)

    dead: list[Message] = []
    bus = make_bus()
    bus.subscribe(group, [topic], handler)
    bus.subscribe(unique("dlq-reader"), [dead_letter_topic(topic, group)], recorder(dead))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "same-key", v) for v in (b"poison", b"broken", b"fine")])
    await eventually(lambda: len(dead) == 2 and handled == [b"fine"])
    assert attempts == {"poison": 1, "broken": POLICY.max_attempts}
    by_value = {m.value: m for m in dead}
    assert by_value[b"poison"].header("dlq-error-type") == "PermanentError"
    assert "cannot parse" in (by_value[b"poison"].header("dlq-error") or "")
    assert by_value[b"broken"].header("dlq-attempts") == str(POLICY.max_attempts)
    assert by_value[b"broken"].header("dlq-original-topic") == topic
    assert by_value[b"broken"].header("dlq-consumer-group") == group


async def test_a_restarted_consumer_resumes_after_its_committed_offset(
        make_bus: BusFactory, running: list[Bus]) -> None:
    topic, group = unique("resume"), unique("g")
    received: list[bytes] = []

    async def handle(message: Message) -> None:
        received.append(message.value)

    first = make_bus()
    first.subscribe(group, [topic], handle)
    await start(first, running)
    await first.publish([OutgoingMessage(topic, "k", b"1"), OutgoingMessage(topic, "k", b"2")])
    await eventually(lambda: received == [b"1", b"2"])
    await first.stop()
    running.remove(first)

    second = make_bus()  # a new process on Kafka; the same in-process log otherwise
    if second is not first:
        second.subscribe(group, [topic], handle)
    await start(second, running)
    await second.publish([OutgoingMessage(topic, "k", b"3")])
    await eventually(lambda: len(received) >= 3)
    await asyncio.sleep(0.5)
    assert received == [b"1", b"2", b"3"]


async def test_a_subscription_after_start_is_refused(make_bus: BusFactory, running: list[Bus]) -> None:
    bus = make_bus()
    bus.subscribe(unique("g"), [unique("t")], recorder([]))
    await start(bus, running)
    with pytest.raises(RuntimeError, match="before the bus starts"):
        bus.subscribe(unique("late"), [unique("t")], recorder([]))


async def test_members_of_one_group_share_its_partitions(make_bus: BusFactory, running: list[Bus]) -> None:
    topic, group = unique("shared"), unique("g")
    first, second = [], []  # type: ignore[var-annotated]
    bus = make_bus()
    bus.subscribe(group, [topic], recorder(first))
    bus.subscribe(group, [topic], recorder(second))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, f"warm-{i}", b"warm") for i in range(12)])
    await eventually(lambda: len({(m.partition, m.offset) for m in first + second}) == 12)
    await asyncio.sleep(1)  # the group has settled (Kafka rebalances as members join)
    first.clear()
    second.clear()
    await bus.publish([OutgoingMessage(topic, f"k{i}", str(i).encode()) for i in range(60)])
    await eventually(lambda: len({m.value for m in first + second if m.value != b"warm"}) == 60)
    assert first and second, "both members handle a share"
    assert not {m.partition for m in first} & {m.partition for m in second}, "one member per partition"


async def test_publishing_during_a_broker_outage_raises_and_works_after(
        make_bus: BusFactory, running: list[Bus], outage: Outage) -> None:
    topic = unique("outage")
    got: list[Message] = []
    bus = make_bus()
    bus.subscribe(unique("g"), [topic], recorder(got))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", b"before")])
    await eventually(lambda: len(got) == 1)
    with outage(bus), pytest.raises(BusUnavailable):
        await bus.publish([OutgoingMessage(topic, "k", b"during")])
    await bus.publish([OutgoingMessage(topic, "k", b"after")])
    await eventually(lambda: got[-1].value == b"after")
    assert b"before" in [m.value for m in got]


async def test_an_unavailable_store_is_waited_for_not_dead_lettered(make_bus: BusFactory, running: list[Bus]) -> None:
    topic, group = unique("blip"), unique("g")
    calls: list[bytes] = []
    done: list[bytes] = []
    dead: list[Message] = []

    async def handler(message: Message) -> None:
        calls.append(message.value)
        if message.value == b"first" and calls.count(b"first") <= 2 * POLICY.max_attempts:
            raise StoreUnavailable("the store does not answer")  # longer than every retry would last
        done.append(message.value)

    bus = make_bus()
    bus.subscribe(group, [topic], handler)
    bus.subscribe(unique("dlq-reader"), [dead_letter_topic(topic, group)], recorder(dead))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", b"first"), OutgoingMessage(topic, "k", b"second")])
    await eventually(lambda: done == [b"first", b"second"])
    await asyncio.sleep(0.5)
    assert dead == [] and done == [b"first", b"second"]


async def raw_messages(bus: Bus, topic: str, count: int) -> list[tuple[bytes, dict[str, bytes]]]:
    """(key, headers) of the first ``count`` messages on ``topic``, read without decoding."""
    if isinstance(bus, MemoryBus):
        await eventually(lambda: len(bus.messages(topic)) >= count)
        return [(m.key.encode(errors="surrogateescape"), dict(m.headers)) for m in bus.messages(topic)]
    from aiokafka import AIOKafkaConsumer
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bus._bootstrap,  # type: ignore[attr-defined]
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        records: list[Any] = []
        while len(records) < count:
            records.append(await asyncio.wait_for(consumer.getone(), 30))
        return [(r.key, dict(r.headers)) for r in records]
    finally:
        await consumer.stop()


async def test_a_message_that_cannot_be_read_is_dead_lettered_and_the_rest_handled(
        make_bus: BusFactory, running: list[Bus]) -> None:
    topic, group = unique("unreadable"), unique("g")
    got: list[Message] = []
    bus = make_bus()
    bus.subscribe(group, [topic], recorder(got))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, b"\xff\xfe-not-utf8", b"odd"), OutgoingMessage(topic, "k", b"fine")])
    await eventually(lambda: [m.value for m in got] == [b"fine"])
    [(key, headers)] = await raw_messages(bus, dead_letter_topic(topic, group), 1)
    assert key == b"\xff\xfe-not-utf8", "the original key, byte for byte"
    assert headers["dlq-error-type"] == b"ValueError" and b"UTF-8" in headers["dlq-error"]
    await bus.ping()  # the consumer is alive and well


async def test_a_dead_letter_that_cannot_be_written_stops_the_partition_there(
        make_bus: BusFactory, running: list[Bus], outage: Outage) -> None:
    """The message is not skipped, and nothing after it is committed, until it is dead-lettered."""
    topic, group = unique("dlq-down"), unique("g")
    handled: list[bytes] = []
    dead: list[Message] = []
    broken = contextlib.ExitStack()
    went: list[bool] = []
    published = asyncio.Event()  # the outage must not catch the publish itself waiting for its acks

    async def handler(message: Message) -> None:
        if message.value == b"poison":
            if not went:
                went.append(True)
                await published.wait()
                broken.enter_context(outage(bus))  # the broker goes as the dead letter is about to be written
            raise PermanentError("cannot parse")
        handled.append(message.value)

    bus = make_bus()
    bus.subscribe(group, [topic], handler)
    bus.subscribe(unique("dlq-reader"), [dead_letter_topic(topic, group)], recorder(dead))
    await start(bus, running)
    with broken:  # mended whatever happens
        await bus.publish([OutgoingMessage(topic, "k", v) for v in (b"a", b"poison", b"b", b"c")])
        published.set()
        await eventually(lambda: bool(went))
        await asyncio.sleep(2)
        assert handled == [b"a"], "nothing after the poison message is handled while it cannot be dead-lettered"
    await eventually(lambda: handled[-2:] == [b"b", b"c"] and len(dead) >= 1, timeout=90)
    assert handled == [b"a", b"b", b"c"]


async def test_a_replayed_message_reaches_only_the_group_it_names(make_bus: BusFactory, running: list[Bus]) -> None:
    from services.runtime.bus import REPLAY_GROUP_HEADER

    topic, g1, g2 = unique("replay"), unique("g1"), unique("g2")
    first, second = [], []  # type: ignore[var-annotated]
    bus = make_bus()
    bus.subscribe(g1, [topic], recorder(first))
    bus.subscribe(g2, [topic], recorder(second))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", b"replayed", ((REPLAY_GROUP_HEADER, g1.encode()),))])
    await bus.publish([OutgoingMessage(topic, "k", b"normal")])
    await eventually(lambda: [m.value for m in first] == [b"replayed", b"normal"])
    await eventually(lambda: [m.value for m in second] == [b"normal"])
    await asyncio.sleep(0.3)
    assert [m.value for m in first] == [b"replayed", b"normal"]
    assert [m.value for m in second] == [b"normal"], "the other group skips the replay and goes on"


async def test_a_batch_handler_gets_each_partitions_messages_in_order(make_bus: BusFactory,
                                                                     running: list[Bus]) -> None:
    topic = unique("batched")
    batches: list[list[Message]] = []
    single: list[Message] = []

    async def batch(messages: Sequence[Message]) -> None:
        assert len({(m.topic, m.partition) for m in messages}) == 1
        batches.append(list(messages))

    bus = make_bus()
    bus.subscribe(unique("g"), [topic], recorder(single), batch_handler=batch)
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, f"k{i % 4}", f"{i}".encode()) for i in range(200)])
    await eventually(lambda: sum(map(len, batches)) == 200)
    assert single == []
    received = [m for b in batches for m in b]
    for key in ("k0", "k1", "k2", "k3"):
        values = [int(m.value) for m in received if m.key == key]
        assert values == sorted(values) and len(values) == 50
    assert len(batches) < 200  # together, not one by one


async def test_a_failing_batch_goes_one_by_one_and_only_the_bad_message_is_dead_lettered(
        make_bus: BusFactory, running: list[Bus]) -> None:
    topic, group = unique("batch-poison"), unique("g")
    done: list[bytes] = []
    dead: list[Message] = []

    async def batch(messages: Sequence[Message]) -> None:
        if any(m.value == b"bad" for m in messages):
            raise PermanentError("cannot read one of them")
        done.extend(m.value for m in messages)

    async def one(message: Message) -> None:
        await batch([message])

    bus = make_bus()
    bus.subscribe(group, [topic], one, batch_handler=batch)
    bus.subscribe(unique("dlq-reader"), [dead_letter_topic(topic, group)], recorder(dead))
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", v) for v in (b"a", b"bad", b"c")])
    await eventually(lambda: done == [b"a", b"c"] and len(dead) == 1)
    assert dead[0].value == b"bad"


async def test_an_unavailable_store_holds_the_batch_until_it_is_back(make_bus: BusFactory,
                                                                    running: list[Bus]) -> None:
    topic = unique("batch-blip")
    calls: list[int] = []
    done: list[bytes] = []

    async def batch(messages: Sequence[Message]) -> None:
        calls.append(len(messages))
        if len(calls) <= 2 * POLICY.max_attempts:
            raise StoreUnavailable("the store does not answer")
        done.extend(m.value for m in messages)

    bus = make_bus()
    bus.subscribe(unique("g"), [topic], recorder([]), batch_handler=batch)
    await start(bus, running)
    await bus.publish([OutgoingMessage(topic, "k", f"{i}".encode()) for i in range(5)])
    await eventually(lambda: len(done) == 5)
    assert done == [f"{i}".encode() for i in range(5)]
