"""App factories for ``uvicorn --factory``, each taking its settings from the environment.

    uvicorn services.asgi:inventory --factory --host 0.0.0.0 --port 8000   (any service by name)
    uvicorn services.asgi:platform --factory

``estate run`` is the usual way to start a service; these are for process managers that start
uvicorn themselves. Each factory applies the project's logging (services/runtime/logs.py:
ESTATE_LOG_LEVEL, ESTATE_LOG_FORMAT) in place of uvicorn's own before it builds the app.
Unlike ``estate run``, nothing is defaulted here: ESTATE_SERVICE_NAME and
ESTATE_LOAD_SAMPLE_ESTATE are read as they are set.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from services import registry
from services.runtime.logs import configure
from services.runtime.settings import Settings


def _settings() -> Settings:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    return settings


def platform() -> FastAPI:
    """Every service in one process."""
    return registry.create_app(_settings())


def __getattr__(name: str) -> Callable[[], FastAPI]:
    """``services.asgi:<service>``: that service alone, for every service in the registry."""
    if name not in registry.SERVICES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}; "
                             f"the services are {', '.join(registry.SERVICES)}")
    return lambda: registry.create_app(_settings(), [name])
