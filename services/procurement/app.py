"""Wires the procurement service: its settings, metrics, repositories, handlers, consumers and
the time-driven check that announces contracts entering their notice window.
``create_app(settings)`` runs it on its own."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.procurement import BUDGET_TOPIC, CONTRACTS_TOPIC, DELIVERIES_TOPIC, PURCHASES_TOPIC, RequestState
from services.procurement import consumers
from services.procurement.api import router
from services.procurement.handlers import Policy, ProcurementHandlers, figures
from services.procurement.purchases import Thresholds
from services.procurement.sample_data import REPLACEMENT_FRAMEWORK, load_sample_contracts, seed_reference_data
from services.procurement.store import BUDGET_ID, BudgetStore, ContractStore, FrameworkStore, RequestStore
from services.runtime.app import create_app as create_service_app
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings

NAME = "procurement"


class ProcurementSettings(BaseSettings):
    """Procurement's own settings (``ESTATE_*``, beside the runtime's). Money in pence."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    load_sample_estate: bool = False
    """Load the sample call-off contracts too (frameworks and the budget are always seeded)."""
    contract_notice_days: int = Field(default=180, ge=1, le=3650)
    """A contract enters its notice window this many days before it ends."""
    single_approver_limit_pence: int = Field(default=10_000_000, ge=1)
    """Up to this value (GBP 100,000) one approver; above it two."""
    board_threshold_pence: int = Field(default=100_000_000, ge=1)
    """Above this value (GBP 1m) the board approves too."""
    spend_control_threshold_pence: int = Field(default=500_000_000, ge=1)
    """Above this value (GBP 5m) the request is held until central spend control approves."""
    programme_budget_pence: int = Field(default=20_000_000_000, ge=1)
    """The programme budget seeded where none is set (GBP 200m)."""
    replacement_framework: str = REPLACEMENT_FRAMEWORK
    """The framework replacement needs from migration are drafted under."""
    expiry_check_interval_s: float = Field(default=3600.0, gt=0)
    """How often contracts are checked for their notice window (and the gauges refreshed)."""

    @model_validator(mode="after")
    def _rising(self) -> ProcurementSettings:
        Thresholds(self.single_approver_limit_pence, self.board_threshold_pence, self.spend_control_threshold_pence)
        return self


class ProcurementMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Gauge("procurement_requests", "Purchase requests, by state", ["state"], registry=registry)
        self.committed = Gauge("procurement_spend_committed_pence", "Spend committed by orders, in pence",
                               ["year", "category"], registry=registry)
        self.delivered = Gauge("procurement_spend_delivered_pence", "Spend delivered, in pence",
                               ["year", "category"], registry=registry)
        self.expiring = Gauge("procurement_contracts_expiring", "Call-off contracts in their notice window",
                              registry=registry)
        self.notices = Counter("procurement_contract_expiry_notices_total",
                               "Contracts announced as entering their notice window", registry=registry)

    async def refresh(self, handlers: ProcurementHandlers) -> None:
        states = await handlers.request_states()
        for state in RequestState:
            self.requests.labels(state.value).set(states.get(state, 0))
        self.expiring.set(len(await handlers.expiring()))
        budget = await handlers.budgets.load(BUDGET_ID)
        for figure in figures(budget) if budget is not None else []:
            self.committed.labels(figure.year, figure.category).set(figure.committed_pence)
            self.delivered.labels(figure.year, figure.category).set(figure.delivered_pence)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings_of(ProcurementSettings)
    metrics: ProcurementMetrics = runtime.service_metrics[NAME]
    frameworks = FrameworkStore(runtime.store, runtime.relay, runtime.clock)
    contracts = ContractStore(runtime.store, runtime.relay, runtime.clock)
    requests = RequestStore(runtime.store, runtime.relay, runtime.clock)
    budgets = BudgetStore(runtime.store, runtime.relay, runtime.clock)
    await requests.create_indexes()
    policy = Policy(Thresholds(settings.single_approver_limit_pence, settings.board_threshold_pence,
                               settings.spend_control_threshold_pence),
                    settings.contract_notice_days, settings.replacement_framework)
    handlers = ProcurementHandlers(frameworks, contracts, requests, budgets, runtime.clock, policy)
    runtime.services[NAME] = handlers
    await seed_reference_data(handlers, settings.programme_budget_pence, runtime.clock.now().date())
    consumers.subscribe(runtime, handlers)

    async def check_contracts() -> None:
        metrics.notices.inc(await handlers.announce_expiring())
        await metrics.refresh(handlers)

    runtime.run_periodically("contract notice windows", settings.expiry_check_interval_s, check_contracts)
    if settings.load_sample_estate:
        async def load_samples() -> None:
            await load_sample_contracts(handlers, runtime.clock.now().date())
            await check_contracts()  # those in their notice window are announced now, not in an hour

        runtime.load_in_background("the sample call-off contracts", load_samples)


def unit() -> ServiceUnit:
    return ServiceUnit(name=NAME, title="Estate procurement", router=router,
                       publishes=(CONTRACTS_TOPIC, PURCHASES_TOPIC, DELIVERIES_TOPIC, BUDGET_TOPIC),
                       settings=ProcurementSettings, metrics=ProcurementMetrics, setup=setup)


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(settings, [unit()])
