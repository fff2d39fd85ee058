"""The migration API on the embedded platform: devices registered in inventory are assessed, a
wave migrates them and inventory shows the new OS; bad input gets a clear problem."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.runtime.clock import FixedClock
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
SITE = "Hammersmith Police Station"


@pytest.fixture(autouse=True)
def _quiet_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTATE_EXECUTOR_FAILURE_RATE", "0")
    monkeypatch.setenv("ESTATE_WAVE_INTERVAL_S", "3600")  # the test drives the wave job itself


async def _until(check: object, what: str, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _assessed(client: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    async def ready() -> bool:
        got = await client.get(f"/migration/devices/{tag}")
        return got.status_code == 200 and got.json()["readiness"] is not None
    await _until(ready, f"{tag} assessed")
    return (await client.get(f"/migration/devices/{tag}")).json()  # type: ignore[no-any-return]


async def test_the_sample_policy_targets_windows_8_1_with_the_support_warning(reader: httpx.AsyncClient) -> None:
    got = await reader.get("/migration/policy")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["policy"]["target"] == {"family": "windows", "version": "8.1"}
    assert body["warning"]["target_support_ends"] == "2023-01-10"
    assert body["warning"]["alternative_support_ends"] == "2025-10-14"


async def test_registered_devices_are_assessed_with_their_blockers(writer: httpx.AsyncClient) -> None:
    await writer.post("/devices", json=device_body("MPS-D-700001"))
    await writer.post("/devices", json=device_body("MPS-D-700002", applications=["NSPIS Custody"]))
    await writer.post("/devices", json=device_body("MPS-D-700003", hardware={
        **device_body()["hardware"], "ram_mb": 1024}))
    assert (await _assessed(writer, "MPS-D-700001"))["readiness"]["outcome"] == "upgrade_in_place"
    blocked = (await _assessed(writer, "MPS-D-700002"))["readiness"]
    assert blocked["outcome"] == "blocked" and blocked["blocking_applications"][0]["name"] == "NSPIS Custody"
    disposed = await _assessed(writer, "MPS-D-700003")
    assert disposed["readiness"]["outcome"] == "dispose" and disposed["need_id"] == "NEED-MPS-D-700003"


async def test_a_wave_migrates_its_devices_and_inventory_shows_the_new_os(
        app: FastAPI, writer: httpx.AsyncClient, clock: FixedClock) -> None:
    tags = [f"MPS-D-70010{i}" for i in range(3)]
    for tag in tags:
        assert (await writer.post("/devices", json=device_body(tag))).status_code == 201
    for tag in tags:
        await _assessed(writer, tag)
    planned = await writer.post("/migration/waves", json={
        "name": "Hammersmith", "sites": [SITE], "start_date": str(clock.now().date()), "daily_capacity": 2})
    assert planned.status_code == 201, planned.text
    wave_id = planned.json()["wave"]["wave_id"]
    assert planned.json()["wave"]["devices"] == tags
    handlers = app.state.runtime.services["migration"]
    for _ in range(6):  # start, admit 2, then one step per turn
        await handlers.advance()
    clock.advance(timedelta(days=1))
    for _ in range(6):
        await handlers.advance()
    wave = (await writer.get(f"/migration/waves/{wave_id}")).json()
    assert wave["wave"]["state"] == "completed", wave
    assert wave["progress"]["migrated"] == 3 and wave["progress"]["success_rate"] == 1.0

    async def inventory_follows() -> bool:
        got = [(await writer.get(f"/devices/{t}")).json() for t in tags]
        return all(d["state"] == "migrated" and d["os"]["version"] == "8.1" for d in got)
    await app.state.runtime.relay.drain()
    await _until(inventory_follows, "inventory to show the migrated devices")
    types = [json.loads(m.value)["type"] for m in app.state.runtime.bus.messages("migration.devices")
             if m.key == tags[0]]
    assert types[:2] == ["migration.device.assessed.v1", "migration.device.scheduled.v1"]
    assert "migration.device.migrated.v1" in types


@pytest.mark.parametrize(("body", "status", "where"), [
    ({"name": "x", "sites": ["Nowhere Police Station"], "start_date": "2015-08-03", "daily_capacity": 5},
     422, "body.sites.0"),
    ({"name": "x", "sites": [SITE], "start_date": "2015-08-03", "daily_capacity": 0}, 422, "body.daily_capacity"),
])
async def test_bad_waves_are_refused_with_a_problem(writer: httpx.AsyncClient, body: dict[str, object],
                                                    status: int, where: str) -> None:
    await writer.post("/devices", json=device_body("MPS-D-700201"))
    await _assessed(writer, "MPS-D-700201")
    got = await writer.post("/migration/waves", json=body)
    assert got.status_code == status, got.text
    assert got.headers["content-type"].startswith("application/problem+json")
    assert where in [e["location"] for e in got.json()["errors"]]


async def test_a_policy_naming_an_unknown_os_is_refused(admin: httpx.AsyncClient) -> None:
    policy = (await admin.get("/migration/policy")).json()["policy"]
    spec = {k: v for k, v in policy.items() if k not in ("version", "changed_at")}
    spec["target"] = {"family": "windows", "version": "Vista"}
    got = await admin.put("/migration/policy", json=spec)
    assert got.status_code == 422, got.text
    assert "not in the lifecycle table" in got.json()["detail"]


async def test_pausing_a_finished_wave_conflicts(app: FastAPI, writer: httpx.AsyncClient, clock: FixedClock) -> None:
    await writer.post("/devices", json=device_body("MPS-D-700301"))
    await _assessed(writer, "MPS-D-700301")
    planned = await writer.post("/migration/waves", json={
        "name": "one", "sites": [SITE], "start_date": str(clock.now().date()), "daily_capacity": 5})
    wave_id = planned.json()["wave"]["wave_id"]
    cancelled = await writer.post(f"/migration/waves/{wave_id}/cancel", json={"reason": "test"})
    assert cancelled.status_code == 200 and cancelled.json()["wave"]["state"] == "cancelled"
    handlers = app.state.runtime.services["migration"]
    await handlers.advance()
    paused = await writer.post(f"/migration/waves/{wave_id}/pause", json={})
    assert paused.status_code == 409, paused.text
    assert "only a planned or running wave can pause" in paused.json()["detail"]


async def test_a_catalogue_change_reassesses_only_devices_with_that_application(admin: httpx.AsyncClient) -> None:
    await admin.post("/devices", json=device_body("MPS-D-700401", applications=["NSPIS Custody"]))
    await admin.post("/devices", json=device_body("MPS-D-700402", applications=["CRIS Crime Reporting"]))
    await _assessed(admin, "MPS-D-700401")
    await _assessed(admin, "MPS-D-700402")
    policy = (await admin.get("/migration/policy")).json()["policy"]
    spec = {k: v for k, v in policy.items() if k not in ("version", "changed_at")}
    spec["catalogue"]["NSPIS Custody"]["compatibility"] = "compatible"
    got = await admin.put("/migration/policy", json=spec)
    assert got.status_code == 200, got.text
    assert got.json()["reassessed"] == 1
    now = (await admin.get("/migration/devices/MPS-D-700401")).json()["readiness"]
    assert now["outcome"] == "upgrade_in_place" and now["policy_version"] == 2
