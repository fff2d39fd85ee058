"""The metrics the alerts and dashboards read, with their label values, driven through the
embedded outbox relay, store and in-process bus (what deploy/prometheus/alerts.yml and the
Grafana dashboard query must be what the code exports)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from contracts.envelope import Envelope
from contracts.inventory import DEVICES_TOPIC
from services.inventory import domain
from services.inventory.domain import DeviceSpec
from services.runtime.bus import Message, OutgoingMessage
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.memory import MemoryBus
from services.runtime.clock import FixedClock
from services.runtime.idempotency import ProcessedEvents, idempotent
from services.runtime.metrics import Metrics
from services.runtime.outbox import OutboxRelay, new_with_outbox, outbox_entries
from services.runtime.store import StoreUnavailable
from services.runtime.store.memory import MemoryStore
from services.runtime.telemetry import Telemetry
from tests.conftest import unique
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, tzinfo=UTC)
REGISTERED = "inventory.device.registered.v1"
POLICY = RetryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


def registered(tag: str) -> Envelope:
    device = domain.register(DeviceSpec.model_validate(device_body(tag)), NOW).value
    return Envelope(id=f"ev-{tag}", type=REGISTERED, source="/test", subject=tag, time=NOW,
                    data={"device": device.model_dump(mode="json")})


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def embedded() -> AsyncIterator[tuple[Metrics, MemoryBus, MemoryStore]]:
    metrics = Metrics()
    bus = MemoryBus(partitions=2, policy=POLICY, telemetry=Telemetry("test"), metrics=metrics)
    yield metrics, bus, MemoryStore()
    await bus.stop()


async def test_a_watched_collection_exports_its_clear_misses_at_zero_before_the_first() -> None:
    """A series born at its first increment hides that increment from increase()."""
    metrics = Metrics()
    OutboxRelay(bus=MemoryBus(partitions=1, policy=POLICY, telemetry=Telemetry("t"), metrics=metrics),
                store=MemoryStore(), collections=["devices"], metrics=metrics, telemetry=Telemetry("t"))
    assert metrics.registry.get_sample_value("outbox_clear_misses_total", {"collection": "devices"}) == 0


async def test_migration_exports_its_steps_saga_endings_and_verdicts_at_zero_before_the_first() -> None:
    from prometheus_client import CollectorRegistry

    from contracts.migration import Readiness, SagaStep
    from services.migration.app import MigrationMetrics

    registry = CollectorRegistry()
    MigrationMetrics(registry)
    for step in SagaStep:
        for outcome in ("ok", "failed"):
            assert registry.get_sample_value("migration_step_seconds_count", {"step": step, "outcome": outcome}) == 0
    for state in ("migrated", "failed", "unscheduled"):
        assert registry.get_sample_value("migration_sagas_ended_total", {"state": state}) == 0
    for verdict in Readiness:
        assert registry.get_sample_value("migration_assessments_total", {"outcome": verdict}) == 0


async def test_outbox_backlog_rises_during_a_bus_outage_and_drops_to_zero_after(
        embedded: tuple[Metrics, MemoryBus, MemoryStore]) -> None:
    metrics, bus, store = embedded
    relay = OutboxRelay(bus=bus, store=store, collections=["devices"], metrics=metrics, telemetry=Telemetry("t"),
                        scan_interval_s=60.0, lease_s=2.0, poll_interval_s=0.02)
    await bus.start()
    await relay.start()
    try:
        assert value(metrics, "outbox_lease_held", collection="devices") == 1
        assert value(metrics, "outbox_backlog_events", collection="devices") == 0
        with bus.outage():
            for n in range(3):
                doc = new_with_outbox({"_id": f"MPS-{n}"}, outbox_entries([registered(f"MPS-{n}")],
                                                                               DEVICES_TOPIC))
                await store.collection("devices").insert_one(doc)
                relay.submit("devices", [doc])
            assert value(metrics, "outbox_backlog_events", collection="devices") == 3
            await eventually(lambda: value(metrics, "outbox_publish_failures_total") >= 2)
            assert value(metrics, "outbox_backlog_events", collection="devices") == 3, "stored, not published"
            assert value(metrics, "outbox_uncleared_events") == 0
            assert value(metrics, "events_published_total", topic="inventory.devices", type=REGISTERED) == 0
        await eventually(lambda: value(metrics, "outbox_backlog_events", collection="devices") == 0)
        assert value(metrics, "events_published_total", topic="inventory.devices", type=REGISTERED) == 3
        assert value(metrics, "outbox_uncleared_events") == 3, "published; cleared after a quiet spell"
        await eventually(lambda: value(metrics, "outbox_uncleared_events") == 0)
        assert value(metrics, "outbox_clear_misses_total", collection="devices") == 0
        stored = await store.collection("devices").find({"_id": {"$in": ["MPS-0", "MPS-1", "MPS-2"]}})
        assert all(not doc.get("outbox") for doc in stored)
    finally:
        await relay.stop()


async def test_a_duplicate_delivery_is_counted_once_as_ok_and_once_as_duplicate(
        embedded: tuple[Metrics, MemoryBus, MemoryStore]) -> None:
    metrics, bus, store = embedded
    topic, group = unique("inventory.devices"), unique("reporting")
    applied: list[str] = []

    async def on_registered(envelope: Envelope) -> None:
        applied.append(envelope.id)

    handler = idempotent(group, ProcessedEvents(store, FixedClock(NOW)), metrics, {REGISTERED: on_registered})
    bus.subscribe(group, [topic], handler)
    await bus.start()
    envelope = registered("MPS-DUP")
    message = OutgoingMessage(topic, envelope.subject or "MPS-DUP", envelope.to_bytes())
    await bus.publish([message])
    await eventually(lambda: value(metrics, "events_consumed_total", topic=topic, group=group, outcome="ok") == 1)
    await bus.publish([message])  # the same event delivered again
    await eventually(lambda: value(metrics, "events_consumed_total", topic=topic, group=group,
                                   outcome="duplicate") == 1)
    await asyncio.sleep(0.1)
    outcomes = {outcome: value(metrics, "events_consumed_total", topic=topic, group=group, outcome=outcome)
                for outcome in ("ok", "duplicate", "error", "unavailable", "skipped")}
    assert outcomes == {"ok": 1, "duplicate": 1, "error": 0, "unavailable": 0, "skipped": 0}
    assert value(metrics, "event_handler_duration_seconds_count", topic=topic, group=group) == 2, \
        "two deliveries, each counted under one outcome"
    assert applied == [envelope.id]


async def test_a_handler_that_finds_the_store_unavailable_counts_unavailable_not_error(
        embedded: tuple[Metrics, MemoryBus, MemoryStore]) -> None:
    metrics, bus, _ = embedded
    topic, group = unique("procurement.deliveries"), unique("inventory")
    calls: list[bytes] = []

    async def handler(message: Message) -> None:
        calls.append(message.value)
        if len(calls) <= 2:
            raise StoreUnavailable("the store does not answer")

    bus.subscribe(group, [topic], handler)
    await bus.start()
    await bus.publish([OutgoingMessage(topic, "k", b"x")])
    await eventually(lambda: value(metrics, "events_consumed_total", topic=topic, group=group, outcome="ok") == 1)
    assert value(metrics, "events_consumed_total", topic=topic, group=group, outcome="unavailable") == 2
    assert value(metrics, "events_consumed_total", topic=topic, group=group, outcome="error") == 0
    assert value(metrics, "dead_letters_total", topic=topic, group=group) == 0
    assert calls == [b"x", b"x", b"x"]


async def test_reporting_shows_the_blocked_devices_of_the_readiness_table() -> None:
    from prometheus_client import CollectorRegistry

    from services.reporting.app import ReportingMetrics
    from services.reporting.handlers import Table

    registry = CollectorRegistry()
    metrics = ReportingMetrics(registry)
    metrics.show_readiness(Table("readiness", ["outcome", "devices"],
                                 [["blocked", 3], ["replace", 5], ["upgrade_in_place", 7]]))
    assert registry.get_sample_value("estate_devices_blocked") == 3
    metrics.show_readiness(Table("readiness", ["outcome", "devices"], [["replace", 5]]))
    assert registry.get_sample_value("estate_devices_blocked") == 0
