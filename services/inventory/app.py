"""Wires the inventory service: ``create_app(settings)`` runs it on its own."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.inventory import DEVICES_TOPIC
from services.inventory import consumers
from services.inventory.api import router
from services.inventory.handlers import InventoryHandlers
from services.inventory.sample_estate import load_sample_estate
from services.inventory.store import DEVICES, DeviceStore
from services.runtime.app import create_app as create_service_app
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings

NAME = "inventory"


async def setup(runtime: Runtime) -> None:
    devices = DeviceStore(runtime.store)
    await devices.create_indexes()
    handlers = InventoryHandlers(devices, runtime.relay, runtime.clock,
                                 chunk_size=runtime.settings.import_chunk_size)
    runtime.services[NAME] = handlers
    consumers.subscribe(runtime, handlers)


async def seed(runtime: Runtime) -> None:
    await load_sample_estate(runtime.services[NAME], runtime.settings.sample_estate_seed)


def unit() -> ServiceUnit:
    return ServiceUnit(name=NAME, router=router, outbox_collections=(DEVICES,),
                       publishes=(DEVICES_TOPIC,), setup=setup, seed=seed)


def create_app(settings: Settings) -> FastAPI:
    return create_service_app(settings, [unit()], title="Estate inventory")
