"""Wires the migration service: settings, metrics, repositories, handlers, consumers and the
wave job. ``create_app(settings)`` runs it on its own."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.migration import (
    DEVICES_TOPIC,
    POLICY_TOPIC,
    REPLACEMENTS_TOPIC,
    WAVES_TOPIC,
    Readiness,
    SagaState,
    SagaStep,
)
from services.migration import consumers
from services.migration.api import router
from services.migration.domain import ENDED
from services.migration.executor import SimulatedExecutor
from services.migration.handlers import MigrationHandlers, MigrationObserver
from services.migration.sample_policy import sample_policy
from services.migration.store import DeviceRecords, Policies, Waves
from services.runtime.app import create_app as create_service_app
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings

NAME = "migration"


class MigrationSettings(BaseSettings):
    """Migration's own settings (``ESTATE_*``, beside the runtime's)."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    load_sample_policy: bool = True
    """Set the sample policy (Windows 8.1, the programme's choice) at start when none is stored."""
    counts_interval_s: float = Field(default=5.0, gt=0)
    """How often the gauges of devices by readiness and by saga state read the stored counts."""
    wave_interval_s: float = Field(default=5.0, gt=0)
    """How often the wave job runs (each run reads the clock: a day passes when the clock says so)."""
    saga_max_attempts: int = Field(default=3, ge=1, le=10)
    executor_seed: int = 2014
    executor_step_duration_s: float = Field(default=0.0, ge=0)
    """Simulated duration of each step (the step is due again this long after, by the clock)."""
    executor_failure_rate: float = Field(default=0.02, ge=0, le=1)


class MigrationMetrics(MigrationObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.assessments = Counter("migration_assessments_total", "Readiness verdicts announced, by outcome",
                                   ["outcome"], registry=registry)
        self.steps = Histogram("migration_step_seconds", "Saga step latency (run time plus simulated duration)",
                               ["step", "outcome"], registry=registry)
        self.sagas = Counter("migration_sagas_ended_total", "Sagas ended, by final state", ["state"],
                             registry=registry)
        # Every label value known up front is exported at 0 from the start: a series born at its
        # first observation hides that observation from rate() and increase() (the dashboards'
        # step latency and migrations per day would miss the first steps and sagas after a start).
        for outcome in Readiness:
            self.assessments.labels(outcome.value)
        for step in SagaStep:
            for result in ("ok", "failed"):
                self.steps.labels(step.value, result)
        for state in ENDED:
            self.sagas.labels(state.value)

        self.by_readiness = Gauge("migration_devices", "Devices by readiness outcome (from the counts projection)",
                                  ["readiness"], registry=registry)
        self.by_saga = Gauge("migration_saga_devices", "Devices by saga state (from the counts projection)",
                             ["state"], registry=registry)

    def counted(self, readiness: dict[str, int], sagas: dict[str, int]) -> None:
        for outcome in Readiness:
            self.by_readiness.labels(outcome.value).set(readiness.get(outcome.value, 0))
        for state in SagaState:
            self.by_saga.labels(state.value).set(sagas.get(state.value, 0))

    def assessed(self, outcome: Readiness) -> None:
        self.assessments.labels(outcome.value).inc()

    def step(self, step: str, ok: bool, seconds: float) -> None:
        self.steps.labels(step, "ok" if ok else "failed").observe(seconds)

    def saga_ended(self, state: SagaState) -> None:
        self.sagas.labels(state.value).inc()


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings_of(MigrationSettings)
    metrics: MigrationMetrics = runtime.service_metrics[NAME]
    devices = DeviceRecords(runtime.store, runtime.relay, runtime.clock)
    waves = Waves(runtime.store, runtime.relay, runtime.clock)
    policies = Policies(runtime.store, runtime.relay, runtime.clock)
    executor = SimulatedExecutor(seed=settings.executor_seed, duration_s=settings.executor_step_duration_s,
                                 failure_rate=settings.executor_failure_rate)
    handlers = MigrationHandlers(runtime.store, devices, waves, policies, runtime.clock, executor,
                                 max_attempts=settings.saga_max_attempts, observer=metrics)
    runtime.services[NAME] = handlers
    consumers.subscribe(runtime, handlers)
    if settings.load_sample_policy and await policies.load("policy") is None:
        # Before consumers start (not in the background): every device event then meets a policy.
        await handlers.set_policy(sample_policy())
    runtime.run_periodically("migration waves", settings.wave_interval_s, handlers.advance)
    runtime.run_periodically("migration counts", settings.counts_interval_s, handlers.refresh_counts)


def unit() -> ServiceUnit:
    return ServiceUnit(name=NAME, title="Estate migration", router=router,
                       publishes=(DEVICES_TOPIC, WAVES_TOPIC, POLICY_TOPIC, REPLACEMENTS_TOPIC),
                       settings=MigrationSettings, metrics=MigrationMetrics, setup=setup)


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(settings, [unit()])
