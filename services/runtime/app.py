"""The app factory: one FastAPI app serving one or more services on one runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.runtime.http import BodyLimit, install_error_handlers, install_observability, ops_router
from services.runtime.openapi import install_docs
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Settings


def create_app(settings: Settings, units: Sequence[ServiceUnit], *, runtime: Runtime | None = None,
               setting_overrides: dict[str, Any] | None = None) -> FastAPI:
    """``setting_overrides`` win over the environment in the services' own settings."""
    runtime = runtime or Runtime.build(
        settings, publishes=[t for u in units for t in u.publishes], setting_overrides=setting_overrides)
    title = units[0].title if len(units) == 1 else "Estate modernisation platform"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start(units)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="APIs of: " + ", ".join(u.name for u in units))
    install_docs(app)
    app.state.runtime = runtime
    install_error_handlers(app)
    # Inside the observation (added first), so that a body read over the limit raises in the
    # route itself and is answered (and counted) as any other problem.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    install_observability(app, settings.service_name)
    app.include_router(ops_router())
    for unit in units:
        app.include_router(unit.router)
    return app
