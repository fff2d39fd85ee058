"""The one list of services. The embedded platform, the CLI (`estate run --service`) and the
contract tools all read it; adding a service is one line here (its module's ``unit()``)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.runtime.runtime import ServiceUnit
    from services.runtime.settings import Settings

SERVICES: dict[str, str] = {
    "inventory": "services.inventory.app",
    "migration": "services.migration.app",
    "procurement": "services.procurement.app",
    "reporting": "services.reporting.app",
}
"""Service name -> the module whose ``unit()`` describes it (imported only when needed)."""


def unit(name: str) -> ServiceUnit:
    try:
        module = SERVICES[name]
    except KeyError:
        raise KeyError(f"no service {name!r}; the services are {', '.join(SERVICES)}") from None
    return import_module(module).unit()  # type: ignore[no-any-return]


def units(names: list[str] | None = None) -> list[ServiceUnit]:
    return [unit(n) for n in (names if names is not None else SERVICES)]


def create_app(settings: Settings, names: list[str] | None = None, **options: Any) -> FastAPI:
    """One app serving the named services (all of them unless named) on one runtime."""
    from services.runtime.app import create_app as create_runtime_app
    return create_runtime_app(settings, units(names), **options)
