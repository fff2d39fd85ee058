"""The runtime: adapters chosen by settings, wired once per process, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import APIRouter
from opentelemetry.sdk.trace import SpanProcessor
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from services.runtime.aio import cancel_and_wait, every
from services.runtime.bus import Bus
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.bus.memory import MemoryBus
from services.runtime.clock import Clock, SystemClock
from services.runtime.idempotency import ProcessedEvents, purge_expired
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
    """What one service contributes to a process: routes, topics, settings, wiring."""

    name: str
    title: str
    router: APIRouter
    publishes: tuple[str, ...] = ()
    """Topics its events go to (created at start on Kafka)."""
    settings: type[BaseSettings] | None = None
    """Its own settings (``ESTATE_*`` variables beside the runtime's), read with ``runtime.settings_of``."""
    metrics: Callable[[CollectorRegistry], Any] | None = None
    """Registers its own metrics on the process registry; the result is ``runtime.service_metrics[name]``."""
    setup: Callable[[Runtime], Awaitable[None]] | None = None
    """Build its repositories and handlers, register its metrics and consumers, ask for sample
    data to be loaded (``runtime.load_in_background``); runs before anything starts."""


S = TypeVar("S", bound=BaseSettings)


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
    service_metrics: dict[str, Any] = field(default_factory=dict)
    """Each service's own metrics, by service name (from ServiceUnit.metrics)."""
    setting_overrides: dict[str, Any] = field(default_factory=dict)
    """Values that win over the environment in every service's settings that has the field."""
    seeding: str = "off"
    """Sample data: off, loading, done, or failed: <why>."""
    _service_settings: dict[type[BaseSettings], BaseSettings] = field(default_factory=dict)
    _loads: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    _seed_task: asyncio.Task[None] | None = None
    _periodic: list[tuple[str, float, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    _periodic_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None, publishes: Iterable[str] = (),
              span_processors: Iterable[SpanProcessor] = (), store: Store | None = None,
              bus: Bus | None = None, setting_overrides: dict[str, Any] | None = None) -> Runtime:
        clock = clock or SystemClock()
        metrics = Metrics()
        telemetry = Telemetry(settings.service_name, settings.otlp_endpoint, span_processors)
        policy = RetryPolicy(settings.consumer_max_attempts, settings.consumer_backoff_initial_s,
                             settings.consumer_backoff_max_s)
        if store is None:
            store = (MemoryStore() if settings.mode is Mode.EMBEDDED
                     else MongoStore(settings.mongo_url, settings.mongo_database,
                                     timeout_s=settings.store_timeout_s,
                                     query_timeout_s=settings.store_query_timeout_s, telemetry=telemetry))
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
        return cls(settings, clock, store, bus, relay, telemetry, metrics, ProcessedEvents(store, clock),
                   setting_overrides=dict(setting_overrides or {}))

    def settings_of(self, kind: type[S]) -> S:
        """A service's own settings: from the environment, with ``setting_overrides`` applied
        to the fields it has; read once per process."""
        if kind not in self._service_settings:
            self._service_settings[kind] = kind(**{k: v for k, v in self.setting_overrides.items()
                                                   if k in kind.model_fields})
        return self._service_settings[kind]  # type: ignore[return-value]

    def run_periodically(self, what: str, every_s: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` once everything runs and then every ``every_s`` seconds (housekeeping,
        time-driven checks that read ``runtime.clock``); a failure is logged and retried.
        Call from a setup."""
        self._periodic.append((what, every_s, job))

    def periodic_jobs(self) -> list[str]:
        """The names of the periodic jobs, in the order registered."""
        return [what for what, _, _ in self._periodic]

    async def run_periodic_jobs(self, only: Collection[str] | None = None) -> None:
        """Run every periodic job (or those named in ``only``) once, now, in the order
        registered: a driver that moves a simulated clock runs them after each step rather
        than waiting for their timers."""
        for what, _, job in self._periodic:
            if only is None or what in only:
                await job()

    def load_in_background(self, what: str, load: Callable[[], Awaitable[None]]) -> None:
        """Load data (a service's sample data) once everything runs, without holding the
        start up; /health/ready says 'loading' until all of it is in. Call from a setup."""
        self._loads.append((what, load))

    async def prepare(self, units: Iterable[ServiceUnit]) -> None:
        """Each service's settings read, metrics registered and setup run; nothing started."""
        for unit in units:
            if unit.settings is not None:
                self.settings_of(unit.settings)  # wrong values stop the start, not a later request
            if unit.metrics is not None and unit.name not in self.service_metrics:
                self.service_metrics[unit.name] = unit.metrics(self.metrics.registry)
            if unit.setup is not None:
                await unit.setup(self)

    async def start(self, units: Iterable[ServiceUnit]) -> None:
        await self.store.ping()
        await self.prepare(units)
        await self.bus.start()
        await self.relay.start()
        retention = timedelta(days=self.settings.ledger_retention_days)
        self.run_periodically("ledger retention", 3600.0, lambda: purge_expired(self.ledger, self.clock, retention))
        self._periodic_tasks = [asyncio.create_task(every(every_s, job, what), name=what)
                                for what, every_s, job in self._periodic]
        if self._loads:
            self.seeding = "loading"
            self._seed_task = asyncio.create_task(self._load_all(), name="background-loads")

    async def _load_all(self) -> None:
        started = time.perf_counter()
        for what, load in self._loads:
            try:
                await load()
            except Exception as error:
                self.seeding = f"failed: {what}: {error}"
                log.exception("loading %s failed", what)
                raise
            log.info("%s loaded in %.1f s", what, time.perf_counter() - started)
        self.seeding = "done"

    async def stop(self) -> None:
        await cancel_and_wait((self._seed_task, *self._periodic_tasks))
        try:
            await self.relay.stop()
            await self.bus.stop()
        finally:
            await self.store.close()
            self.telemetry.shutdown()
