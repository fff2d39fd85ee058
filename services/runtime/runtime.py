"""The runtime: adapters chosen by settings, wired once per process, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from opentelemetry.sdk.trace import SpanProcessor

from services.runtime.bus import Bus
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.bus.memory import MemoryBus
from services.runtime.clock import Clock, SystemClock
from services.runtime.idempotency import ProcessedEvents, run_retention
from services.runtime.metrics import Metrics
from services.runtime.outbox import OutboxRelay
from services.runtime.settings import Mode, Settings
from services.runtime.store import Store
from services.runtime.store.memory import MemoryStore
from services.runtime.store.mongo import MongoStore
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceUnit:
    """What one service contributes to a process: routes, collections, topics, wiring."""

    name: str
    router: APIRouter
    outbox_collections: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    setup: Callable[[Runtime], Awaitable[None]] | None = None
    """Create indexes, build the service's handlers, subscribe its consumers (before start)."""
    seed: Callable[[Runtime], Awaitable[None]] | None = None
    """Load sample data once everything runs (embedded mode with the sample estate)."""


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    bus: Bus
    relay: OutboxRelay
    telemetry: Telemetry
    metrics: Metrics
    ledger: ProcessedEvents
    services: dict[str, Any] = field(default_factory=dict)
    """Each service's wired handlers, by service name (filled by ServiceUnit.setup)."""
    seeding: str = "off"
    """Sample data: off, loading, done, or failed: <why>."""
    _seed_task: asyncio.Task[None] | None = None
    _retention_task: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None, publishes: Iterable[str] = (),
              span_processors: Iterable[SpanProcessor] = (), store: Store | None = None,
              bus: Bus | None = None) -> Runtime:
        clock = clock or SystemClock()
        metrics = Metrics()
        telemetry = Telemetry(settings.service_name, settings.otlp_endpoint, span_processors)
        policy = RetryPolicy(settings.consumer_max_attempts, settings.consumer_backoff_initial_s,
                             settings.consumer_backoff_max_s)
        if store is None:
            store = (MemoryStore() if settings.mode is Mode.EMBEDDED
                     else MongoStore(settings.mongo_url, settings.mongo_database,
                                     timeout_s=settings.store_timeout_s,
                                     query_timeout_s=settings.store_query_timeout_s))
        if bus is None:
            if settings.mode is Mode.EMBEDDED:
                bus = MemoryBus(partitions=settings.topic_partitions, policy=policy,
                                telemetry=telemetry, metrics=metrics)
            else:
                bus = KafkaBus(bootstrap=settings.kafka_bootstrap, client_id=settings.kafka_client_id,
                               partitions=settings.topic_partitions, policy=policy,
                               telemetry=telemetry, metrics=metrics, topics=list(publishes))
        relay = OutboxRelay(bus=bus, store=store, collections=[], metrics=metrics, telemetry=telemetry,
                            batch_size=settings.outbox_batch_size,
                            scan_interval_s=settings.outbox_scan_interval_s,
                            lease_s=settings.outbox_lease_s, poll_interval_s=settings.outbox_poll_interval_s)
        return cls(settings, clock, store, bus, relay, telemetry, metrics, ProcessedEvents(store, clock))

    async def start(self, units: Iterable[ServiceUnit]) -> None:
        units = list(units)
        await self.store.ping()
        for unit in units:
            for name in unit.outbox_collections:
                self.relay.watch(name)
            if unit.setup is not None:
                await unit.setup(self)
        await self.bus.start()
        await self.relay.start()
        self._retention_task = asyncio.create_task(run_retention(
            self.ledger, self.clock, timedelta(days=self.settings.ledger_retention_days), every_s=3600.0),
            name="ledger-retention")
        seeds = [u.seed for u in units if u.seed is not None]
        if self.settings.load_sample_estate and seeds:
            self.seeding = "loading"
            self._seed_task = asyncio.create_task(self._seed(seeds), name="sample-estate")

    async def _seed(self, seeds: list[Callable[[Runtime], Awaitable[None]]]) -> None:
        """Sample data loads in the background so the APIs answer at once; /health/ready
        says 'loading' until it is in."""
        started = time.perf_counter()
        try:
            for seed in seeds:
                await seed(self)
        except Exception as error:
            self.seeding = f"failed: {error}"
            log.exception("loading the sample data failed")
            raise
        self.seeding = "done"
        log.info("sample data loaded in %.1f s", time.perf_counter() - started)

    async def stop(self) -> None:
        for task in (self._seed_task, self._retention_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        try:
            await self.relay.stop()
            await self.bus.stop()
        finally:
            await self.store.close()
            self.telemetry.shutdown()
