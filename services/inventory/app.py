"""Wires the inventory service: its settings, metrics, repository, handlers and consumers.
``create_app(settings)`` runs it on its own."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.inventory import DEVICES_TOPIC
from services.inventory import consumers
from services.inventory.api import router
from services.inventory.handlers import InventoryHandlers
from services.inventory.imports import ImportReport
from services.inventory.sample_estate import load_sample_estate
from services.inventory.store import DeviceStore
from services.runtime.app import create_app as create_service_app
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings

NAME = "inventory"


class InventorySettings(BaseSettings):
    """Inventory's own settings (``ESTATE_*``, beside the runtime's)."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    import_chunk_size: int = Field(default=1000, ge=1)
    """Rows per store round trip in a bulk import."""
    import_chunks_in_flight: int = Field(default=2, ge=1)
    """Import chunks being stored at once (FerretDB: two inserted 35,000 devices in 5.7 s, one
    at a time in 8.6 s; each holds a chunk's documents in memory)."""
    load_sample_estate: bool = False
    """Load the sample estate (the Met in April 2014) at start; `estate run` turns it on for
    the embedded platform."""
    sample_estate_seed: int = 2014
    sample_estate_fraction: float = Field(default=1.0, gt=0, le=1)
    """Load this fraction of the sample estate (the same mix of kinds, sites and models): 1, the
    45,500 devices; less for a quicker start (tests)."""


class InventoryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.import_rows = Counter(
            "import_rows_total", "Bulk import rows, by outcome", ["service", "outcome"], registry=registry)

    def count_import(self, report: ImportReport) -> None:
        for outcome in ("created", "updated", "unchanged", "rejected"):
            self.import_rows.labels(NAME, outcome).inc(getattr(report, outcome))


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings_of(InventorySettings)
    metrics: InventoryMetrics = runtime.service_metrics[NAME]
    devices = DeviceStore(runtime.store, runtime.relay, runtime.clock)
    await devices.create_indexes()
    handlers = InventoryHandlers(devices, runtime.relay, runtime.clock, chunk_size=settings.import_chunk_size,
                                 chunks_in_flight=settings.import_chunks_in_flight,
                                 on_import=metrics.count_import)
    runtime.services[NAME] = handlers
    consumers.subscribe(runtime, handlers)
    if settings.load_sample_estate:
        runtime.load_in_background(
            "the sample estate", lambda: load_sample_estate(
            handlers, settings.sample_estate_seed, settings.sample_estate_fraction))


def unit() -> ServiceUnit:
    return ServiceUnit(name=NAME, title="Estate inventory", router=router, publishes=(DEVICES_TOPIC,),
                       settings=InventorySettings, metrics=InventoryMetrics, setup=setup)


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(settings, [unit()])
