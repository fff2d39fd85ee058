"""The embedded platform: every service in one process, on the in-process bus and embedded store."""

from __future__ import annotations

from fastapi import FastAPI

from services.inventory.app import unit as inventory_unit
from services.runtime.app import create_app as create_platform_app
from services.runtime.runtime import ServiceUnit
from services.runtime.settings import Settings


def units() -> list[ServiceUnit]:
    return [inventory_unit()]


def create_app(settings: Settings) -> FastAPI:
    return create_platform_app(settings, units())
