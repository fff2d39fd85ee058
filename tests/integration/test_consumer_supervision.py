"""Consumer supervision and readiness on the real Kafka broker.

A consumer that dies of an error outside the per-message guard is reported by readiness
(which group, and why) until a new one polls; the supervisor starts that new one, and no
message - published before, during or after - is skipped. A consumer whose handler blocks
for longer than STALL_AFTER_S makes readiness fail with "has not polled"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer

from services.runtime.bus import BusUnavailable, Message, OutgoingMessage
from services.runtime.bus import kafka as kafka_module
from services.runtime.bus.base import Subscription
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry
from tests.conftest import unique

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = RetryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


async def eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def new_bus(bootstrap: str) -> KafkaBus:
    return KafkaBus(bootstrap=bootstrap, client_id=unique("sup"), partitions=2, policy=POLICY,
                    telemetry=Telemetry("test"), metrics=Metrics())


@pytest.fixture
async def buses() -> AsyncIterator[list[KafkaBus]]:
    started: list[KafkaBus] = []
    yield started
    for bus in started:
        await bus.stop()


async def test_a_consumer_that_dies_is_reported_restarted_and_skips_nothing(
        kafka_bootstrap: str, buses: list[KafkaBus], monkeypatch: pytest.MonkeyPatch) -> None:
    topic, group = unique("supervised"), unique("g")
    failures = {"left": 0}
    consumers: list[AIOKafkaConsumer] = []
    original = KafkaBus._new_consumer

    def new_consumer(self: KafkaBus, sub: Subscription) -> AIOKafkaConsumer:
        consumer = original(self, sub)
        real_getmany = consumer.getmany

        async def getmany(*partitions: object, **options: object) -> object:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RuntimeError("the poll loop blew up")
            return await real_getmany(*partitions, **options)

        consumer.getmany = getmany  # type: ignore[method-assign]
        consumers.append(consumer)
        return consumer

    monkeypatch.setattr(KafkaBus, "_new_consumer", new_consumer)
    handled: list[bytes] = []

    async def record(message: Message) -> None:
        handled.append(message.value)

    bus = new_bus(kafka_bootstrap)
    bus.subscribe(group, [topic], record)
    await bus.start()
    buses.append(bus)
    [health] = bus._health

    before = [f"before-{i}".encode() for i in range(6)]
    await bus.publish([OutgoingMessage(topic, f"k{i}", v) for i, v in enumerate(before)])
    await eventually(lambda: sorted(handled) == sorted(before))
    await bus.ping()

    failures["left"] = 2  # this consumer dies, and so does the first one started after it
    await eventually(lambda: health.restarts >= 1)
    with pytest.raises(BusUnavailable, match=rf"consumer group {group} .*RuntimeError: the poll loop blew up"):
        await bus.ping()
    during = [f"during-{i}".encode() for i in range(6)]
    await bus.publish([OutgoingMessage(topic, f"k{i}", v) for i, v in enumerate(during)])

    await eventually(lambda: health.restarts >= 2)
    with pytest.raises(BusUnavailable, match=rf"consumer group {group} .*restarted 2 time"):
        await bus.ping()

    await eventually(lambda: sorted(handled) == sorted(before + during))
    await bus.ping()  # a new consumer polls again: ready
    assert len(consumers) == 3, "the supervisor started a new consumer after each death"
    assert health.error is None

    after = [f"after-{i}".encode() for i in range(6)]
    await bus.publish([OutgoingMessage(topic, f"k{i}", v) for i, v in enumerate(after)])
    await eventually(lambda: len(handled) >= len(before + during + after))
    await asyncio.sleep(1)
    assert sorted(handled) == sorted(before + during + after), "each message handled once, none skipped"
    await bus.ping()


async def test_a_stalled_consumer_fails_readiness_until_it_polls_again(
        kafka_bootstrap: str, buses: list[KafkaBus], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_module, "STALL_AFTER_S", 1.5)
    topic, group = unique("stalled"), unique("g")
    release = asyncio.Event()
    handled: list[bytes] = []

    async def slow(message: Message) -> None:
        if message.value == b"stuck":
            await release.wait()
        handled.append(message.value)

    bus = new_bus(kafka_bootstrap)
    bus.subscribe(group, [topic], slow)
    await bus.start()
    buses.append(bus)
    await bus.publish([OutgoingMessage(topic, "k", b"fine")])
    await eventually(lambda: handled == [b"fine"])
    await bus.ping()

    await bus.publish([OutgoingMessage(topic, "k", b"stuck")])
    await asyncio.sleep(2.5)
    with pytest.raises(BusUnavailable, match=rf"consumer group {group} has not polled Kafka for \d+ s"):
        await bus.ping()

    release.set()
    await eventually(lambda: handled == [b"fine", b"stuck"])
    await asyncio.sleep(0.7)  # the next poll
    await bus.ping()
