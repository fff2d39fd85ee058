from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.registry import units
from services.runtime.app import create_app as create_platform_app
from services.runtime.auth import Role
from services.runtime.clock import FixedClock
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.conftest import AT, bearer


@pytest.fixture
def settings() -> Settings:
    return Settings(max_request_bytes=2 * 1024 * 1024, outbox_scan_interval_s=0.2)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(AT)


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[FastAPI]:
    runtime = Runtime.build(settings, clock=clock)
    application = create_platform_app(settings, units(), runtime=runtime)
    async with application.router.lifespan_context(application):
        yield application


def client_for(app: FastAPI, settings: Settings, role: Role | None) -> httpx.AsyncClient:
    headers = bearer(settings, role) if role else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://estate.test",
                             headers=headers)


@pytest.fixture
async def writer(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, settings, Role.WRITER) as c:
        yield c


@pytest.fixture
async def reader(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, settings, Role.READER) as c:
        yield c


@pytest.fixture
async def admin(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, settings, Role.ADMIN) as c:
        yield c


@pytest.fixture
async def anonymous(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, settings, None) as c:
        yield c


