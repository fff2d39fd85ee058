"""Wires the reporting service: settings, business gauges, read models, consumers, refresh."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.reporting import consumers, page
from services.reporting.api import router
from services.reporting.cost import BUDGET_GBP, PRICES_GBP, SUPPORT_END, SUPPORT_START, SupportPrices
from services.reporting.domain import projector
from services.reporting.forecast import ForecastSettings
from services.reporting.handlers import ReportingConfig, ReportingHandlers, Summary, Table
from services.reporting.replay import EventLog, KafkaLog, MemoryLog
from services.reporting.store import LIVE, REPLAY, ReadModel
from services.runtime.app import create_app as create_service_app
from services.runtime.bus.memory import MemoryBus
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings

NAME = "reporting"


class ReportingSettings(BaseSettings):
    """Reporting's own settings (``ESTATE_REPORTING_*``)."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    reporting_support_prices_gbp: list[float] = Field(default=list(PRICES_GBP), min_length=1)
    """Extended support per legacy device per support year (year 1 first; the last holds on)."""
    reporting_support_start: date = SUPPORT_START
    reporting_deadline: date = SUPPORT_END
    """When extended support ends: the forecast's deadline."""
    reporting_budget_gbp: float = Field(default=BUDGET_GBP, gt=0)
    reporting_forecast_window_days: int = Field(default=90, ge=7)
    reporting_forecast_runs: int = Field(default=10_000, ge=100, le=200_000)
    reporting_forecast_seed: int = 2014
    reporting_refresh_s: float = Field(default=30.0, gt=0)
    """How often the business gauges are recomputed."""

    def config(self) -> ReportingConfig:
        return ReportingConfig(
            prices=SupportPrices(self.reporting_support_start, tuple(self.reporting_support_prices_gbp)),
            forecast=ForecastSettings(window_days=self.reporting_forecast_window_days,
                                      runs=self.reporting_forecast_runs, seed=self.reporting_forecast_seed,
                                      deadline=self.reporting_deadline),
            budget_gbp=self.reporting_budget_gbp)


class ReportingMetrics:
    """The programme's figures as Prometheus gauges."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, registry=registry)

        self.legacy = gauge("estate_legacy_devices_remaining", "Legacy (Windows XP) devices still in the estate")
        self.migrated = gauge("estate_devices_migrated", "Devices in the estate that are migrated")
        self.cost = gauge("estate_extended_support_cost_gbp", "Extended-support cost to date, GBP")
        self.committed = gauge("estate_spend_committed_gbp", "Spend committed (purchases ordered), GBP")
        self.days_left = gauge("estate_forecast_days_left", "Forecast days until no legacy device remains (p50)")
        self.probability = gauge("estate_forecast_probability_by_deadline",
                                 "Probability of finishing before the extended-support deadline")
        self.blocked = gauge("estate_devices_blocked",
                             "Devices whose migration an application blocks (readiness outcome 'blocked')")

    def show(self, summary: Summary) -> None:
        self.legacy.set(summary.legacy_remaining)
        self.migrated.set(summary.migrated)
        self.cost.set(summary.extended_support_cost_gbp)
        self.committed.set(summary.spend_committed_gbp)
        f = summary.forecast
        self.days_left.set(f.days_left_p50 if f and f.days_left_p50 is not None else float("nan"))
        self.probability.set(f.probability_by_deadline if f else float("nan"))


    def show_readiness(self, readiness: Table) -> None:
        self.blocked.set(sum(row[1] for row in readiness.rows if row[0] == "blocked"))


def event_log(runtime: Runtime) -> EventLog:
    if isinstance(runtime.bus, MemoryBus):
        return MemoryLog(runtime.bus)
    return KafkaLog(runtime.settings.kafka_bootstrap)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings_of(ReportingSettings)
    metrics: ReportingMetrics = runtime.service_metrics[NAME]
    handlers = ReportingHandlers(ReadModel(runtime.store, LIVE), projector(), runtime.clock, settings.config(),
                                 replay_model=ReadModel(runtime.store, REPLAY), log=lambda: event_log(runtime),
                                 topics=consumers.TOPICS)
    runtime.services[NAME] = handlers
    consumers.subscribe(runtime, handlers)

    async def refresh() -> None:
        metrics.show(await handlers.summary())
        metrics.show_readiness(await handlers.table("readiness"))

    runtime.run_periodically("reporting gauges", settings.reporting_refresh_s, refresh)


def routes() -> APIRouter:
    """The JSON and CSV routes under /reporting, and the programme report page at /report."""
    combined = APIRouter()
    combined.include_router(router)
    combined.include_router(page.router)
    return combined


def unit() -> ServiceUnit:
    return ServiceUnit(name=NAME, title="Programme reporting", router=routes(), publishes=(),
                       settings=ReportingSettings, metrics=ReportingMetrics, setup=setup)


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(settings, [unit()])
