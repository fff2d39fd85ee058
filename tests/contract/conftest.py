"""The store every contract suite runs on: the embedded one, and the real MongoDB-wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.runtime.store import Store
from services.runtime.store.memory import MemoryStore
from tests.conftest import fresh_mongo_store


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    async with fresh_mongo_store(request.getfixturevalue("mongo_url")) as mongo:
        yield mongo
