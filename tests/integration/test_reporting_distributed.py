"""Reporting on the real stack (Kafka + FerretDB): inventory's events, imported in bulk and
changed one by one, produce the expected figures; a replay from the topics rebuilds a read
model identical to the live one."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from contracts.registry import EVENT_TYPES
from services.inventory.sample_estate import EstateSize, generate, write_csv
from services.registry import create_app
from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.conftest import bearer, distributed_settings
from tests.integration.groups import begin_at_end

pytestmark = pytest.mark.integration

SIZE = EstateSize(xp_desktops=300, win7_desktops=20, laptops=20, tablets=10, cameras=10)


@pytest.fixture
def settings(kafka_bootstrap: str, mongo_url: str) -> Settings:
    return distributed_settings(kafka_bootstrap, mongo_url, topic_partitions=3)


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[FastAPI]:
    # Inventory reads only what this test publishes: from the beginning of the shared topics it
    # would register the devices of earlier tests' deliveries and move the figures under test.
    # Reporting reads everything (replay == live is checked against the whole topics).
    await begin_at_end(settings.kafka_bootstrap, settings.consumer_group_prefix + "inventory",
                       sorted({e.topic for e in EVENT_TYPES.values()}))
    app = create_app(settings, ["inventory", "reporting"])
    async with app.router.lifespan_context(app):
        yield app


def client(app: FastAPI, settings: Settings, role: Role) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://estate.test",
                             headers=bearer(settings, role), timeout=120)


async def until(get: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 120.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await get()
        if check(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.25)


async def settled(admin: httpx.AsyncClient) -> dict[str, Any]:
    """The live read model has caught up with everything on the topics (replay == live)."""
    async def replay() -> dict[str, Any]:
        answer = await admin.post("/reporting/replay")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())
    body = await until(replay, lambda b: b["equal_to_live"])
    assert body["equal_to_live"], body["differences"]
    return body


async def test_inventory_events_give_the_figures_and_replay_equals_live(platform: FastAPI, settings: Settings) -> None:
    async with client(platform, settings, Role.ADMIN) as admin:
        await settled(admin)  # whatever earlier runs left on the topics, live has it too
        before = (await admin.get("/reporting/summary")).json()

        out = io.StringIO()
        write_csv(generate(seed=7, size=SIZE), out)
        prefix = f"R{uuid.uuid4().hex[:6].upper()}-"  # the topics outlive the databases of earlier runs
        body = out.getvalue().replace("MPS-", prefix)
        imported = await admin.post("/devices/import", content=body, headers={"content-type": "text/csv"})
        assert imported.status_code == 200, imported.text
        assert imported.json()["created"] == 360

        async def summary() -> dict[str, Any]:
            return dict((await admin.get("/reporting/summary")).json())
        after = await until(summary, lambda s: s["devices"] == before["devices"] + 360)
        assert after["devices"] == before["devices"] + 360
        assert after["legacy_remaining"] == before["legacy_remaining"] + 300

        for n in range(1, 26):  # 25 XP desktops move to Windows 8.1, 5 more are retired
            tag = f"{prefix}D-{n:06d}"
            moved = await admin.patch(f"/devices/{tag}", json={"os": {"family": "windows", "version": "8.1"}})
            assert moved.status_code == 200, moved.text
        for n in range(26, 31):
            retired = await admin.post(f"/devices/{prefix}D-{n:06d}/retire", json={"reason": "replaced by a laptop"})
            assert retired.status_code == 200, retired.text
        final = await until(summary, lambda s: s["legacy_remaining"] == before["legacy_remaining"] + 270)
        assert final["legacy_remaining"] == before["legacy_remaining"] + 270
        assert final["devices"] == before["devices"] + 355
        assert final["retired"] == before["retired"] + 5

        os_rows = {(r[0], r[1]): r[2] for r in (await admin.get("/reporting/tables/os")).json()["rows"]}
        assert os_rows[("windows", "8.1")] >= 25
        csv_answer = await admin.get("/reporting/tables/kinds", params={"format": "csv"})
        assert csv_answer.status_code == 200 and csv_answer.text.startswith("kind,devices,legacy")

        replayed = await settled(admin)
        assert replayed["report"]["events"] >= 390
