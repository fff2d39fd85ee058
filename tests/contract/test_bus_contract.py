"""One contract, every bus adapter: the in-process bus must deliver as Kafka does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.runtime.bus import Bus, Message, OutgoingMessage, dead_letter_topic
from services.runtime.bus.delivery import PermanentError, RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.bus.memory import MemoryBus
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry
from tests.conftest import unique

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
    bus.subscribe(unique("dlq-reader"), [dead_letter_topic(topic)], recorder(dead))
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
