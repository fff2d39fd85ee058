"""KafkaBus's producer handling, without a broker: fake producers stand in for aiokafka's.

After an error that breaks the idempotent producer (the broker no longer knows its sequence
numbers) the bus builds a new producer, at most once per REBUILD_EVERY_S; an error the same
producer can wait out (a timeout) does not rebuild. Readiness fails, naming the error, once
every publish has failed for FAILING_AFTER_S, and recovers with the next successful publish.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from services.runtime.bus import BusUnavailable, OutgoingMessage
from services.runtime.bus import kafka as kafka_module
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry

pytestmark = pytest.mark.asyncio

REBUILD_S = 0.4
FAILING_S = 0.6
MESSAGE = OutgoingMessage("inventory.devices", "MPS-1", b"{}")


class FakeClient:
    def __init__(self) -> None:
        self.metadata_calls = 0

    async def fetch_all_metadata(self) -> object:
        self.metadata_calls += 1
        return object()


class FakeProducer:
    """Takes every message, or fails every send with ``self.error`` while it is set."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: Exception | None = None
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = False
        self.stopped = False
        self.client = FakeClient()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: list[Any]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            self.sent.append((topic, key, value))
            future.set_result(None)
        return future


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    built: list[FakeProducer] = []

    def new_producer(self: KafkaBus) -> FakeProducer:
        producer = FakeProducer(len(built))
        built.append(producer)
        return producer

    monkeypatch.setattr(KafkaBus, "_new_producer", new_producer)
    return built


@pytest.fixture(autouse=True)
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_module, "REBUILD_EVERY_S", REBUILD_S)
    monkeypatch.setattr(kafka_module, "FAILING_AFTER_S", FAILING_S)


async def started_bus() -> KafkaBus:
    bus = KafkaBus(bootstrap="127.0.0.1:1", client_id="unit", partitions=1, policy=RetryPolicy(),
                   telemetry=Telemetry("unit"), metrics=Metrics())
    await bus.start()  # no subscriptions, no declared topics: no admin client, no consumers
    return bus


async def test_an_out_of_order_sequence_rebuilds_the_producer_once_per_interval(
        producers: list[FakeProducer]) -> None:
    bus = await started_bus()
    [first] = producers
    await bus.publish([MESSAGE])
    assert len(first.sent) == 1

    first.error = OutOfOrderSequenceNumber("the broker lost the producer's sequence")
    with pytest.raises(BusUnavailable, match="OutOfOrderSequenceNumber"):
        await bus.publish([MESSAGE])
    assert len(producers) == 2, "a new producer was built"
    second = producers[1]
    assert second.started and first.stopped

    second.error = OutOfOrderSequenceNumber("again")
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    assert len(producers) == 2, "not rebuilt again within REBUILD_EVERY_S"

    await asyncio.sleep(REBUILD_S + 0.1)
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    assert len(producers) == 3, "rebuilt again once the interval has passed"
    third = producers[2]
    assert second.stopped and third.started

    await bus.publish([MESSAGE, MESSAGE])
    assert len(third.sent) == 2, "later publishes go through the new producer"
    assert len(first.sent) == 1 and second.sent == []
    await bus.stop()
    assert third.stopped


async def test_a_timeout_does_not_rebuild_the_producer(producers: list[FakeProducer]) -> None:
    bus = await started_bus()
    [producer] = producers
    producer.error = KafkaTimeoutError()  # aiokafka marks it retriable = False; it is still transient
    for _ in range(3):
        with pytest.raises(BusUnavailable, match="KafkaTimeoutError"):
            await bus.publish([MESSAGE])
        await asyncio.sleep(REBUILD_S + 0.1)
    assert len(producers) == 1 and not producer.stopped
    producer.error = None
    await bus.publish([MESSAGE])
    assert len(producer.sent) == 1
    await bus.stop()


async def test_a_new_producer_that_cannot_start_keeps_the_old_one_and_raises_bus_unavailable(
        producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch) -> None:
    bus = await started_bus()
    [first] = producers

    async def refuse() -> None:
        raise KafkaTimeoutError()

    first.error = OutOfOrderSequenceNumber("lost")
    original = KafkaBus._new_producer

    def broken_new_producer(self: KafkaBus) -> FakeProducer:
        producer = original(self)
        producer.start = refuse  # type: ignore[method-assign]
        return producer  # type: ignore[return-value]

    monkeypatch.setattr(KafkaBus, "_new_producer", broken_new_producer)
    with pytest.raises(BusUnavailable, match="OutOfOrderSequenceNumber"):
        await bus.publish([MESSAGE])
    assert len(producers) == 2 and producers[1].stopped, "the new producer that did not start is closed"
    assert not first.stopped

    monkeypatch.setattr(KafkaBus, "_new_producer", original)
    await asyncio.sleep(REBUILD_S + 0.1)
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    assert len(producers) == 3 and producers[2].started
    await bus.publish([MESSAGE])
    assert len(producers[2].sent) == 1
    await bus.stop()


async def test_readiness_fails_naming_the_error_after_publishes_failed_long_enough_and_recovers(
        producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch) -> None:
    bus = await started_bus()
    [first] = producers
    await bus.ping()
    assert first.client.metadata_calls == 1

    first.error = OutOfOrderSequenceNumber("sequence lost")
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    second = producers[1]
    second.error = KafkaTimeoutError()
    await bus.ping()  # failing, but not for long yet

    await asyncio.sleep(FAILING_S / 2)
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    await bus.ping()

    await asyncio.sleep(FAILING_S / 2 + 0.1)
    with pytest.raises(BusUnavailable, match="KafkaTimeoutError"):
        await bus.publish([MESSAGE])
    with pytest.raises(BusUnavailable, match=r"every publish .* has failed for \d+ s; last: KafkaTimeoutError"):
        await bus.ping()

    second.error = None
    await bus.publish([MESSAGE])
    await bus.ping()
    assert second.client.metadata_calls >= 1, "readiness asks the current producer's client"
    await bus.stop()


async def test_readiness_names_the_first_fatal_error_when_nothing_else_failed(
        producers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch) -> None:
    bus = await started_bus()
    producers[0].error = OutOfOrderSequenceNumber("sequence lost")
    with pytest.raises(BusUnavailable):
        await bus.publish([MESSAGE])
    await asyncio.sleep(FAILING_S + 0.1)
    with pytest.raises(BusUnavailable, match="OutOfOrderSequenceNumber"):
        await bus.ping()
    await bus.publish([MESSAGE])  # the rebuilt producer takes it
    await bus.ping()
    await bus.stop()
