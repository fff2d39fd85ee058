"""The migration API on the embedded platform: devices registered in inventory are assessed, a
wave migrates them and inventory shows the new OS; bad input gets a clear problem."""

from __future__ import annotations

import asyncio
import json
import re
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


def _gauge(text: str, name: str, label: str, value: str) -> float:
    found = re.findall(rf'^{name}\{{{label}="{value}"\}} (\S+)$', text, re.M)
    assert len(found) == 1, f"{name}{{{label}={value!r}}} not exported once"
    return float(found[0])


async def test_devices_by_readiness_and_by_saga_state_are_gauges_from_the_stored_counts(
        app: FastAPI, writer: httpx.AsyncClient) -> None:
    await writer.post("/devices", json=device_body("MPS-D-700301"))
    await writer.post("/devices", json=device_body("MPS-D-700302", applications=["NSPIS Custody"]))
    await writer.post("/devices", json=device_body("MPS-D-700303", hardware={
        **device_body()["hardware"], "ram_mb": 1024}))
    await writer.post("/devices", json=device_body("MPS-D-700304", hardware={
        **device_body()["hardware"], "ram_mb": 1024}))
    for tag in ("MPS-D-700301", "MPS-D-700302", "MPS-D-700303", "MPS-D-700304"):
        await _assessed(writer, tag)
    await app.state.runtime.services["migration"].refresh_counts()
    text = (await writer.get("/metrics")).text
    assert {o: _gauge(text, "migration_devices", "readiness", o) for o in (
        "upgrade_in_place", "replace", "blocked", "dispose", "already_compliant")} == {
        "upgrade_in_place": 1, "replace": 0, "blocked": 1, "dispose": 2, "already_compliant": 0}
    assert _gauge(text, "migration_saga_devices", "state", "migrated") == 0


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
    await handlers.refresh_counts()
    metrics = (await writer.get("/metrics")).text
    assert _gauge(metrics, "migration_saga_devices", "state", "migrated") == 3
    assert {s: _gauge(metrics, "migration_saga_devices", "state", s) for s in (
        "scheduled", "backed_up", "os_deployed", "verified", "failed", "unscheduled")} == dict.fromkeys(
        ("scheduled", "backed_up", "os_deployed", "verified", "failed", "unscheduled"), 0)
    assessed = {o: _gauge(metrics, "migration_devices", "readiness", o)
                for o in ("upgrade_in_place", "already_compliant")}
    assert sum(assessed.values()) == 3, assessed  # compliant once inventory announces the new OS

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


async def test_a_delivery_replaces_a_device_inventory_retires_it_and_disposes_of_it_with_its_record(
        app: FastAPI, admin: httpx.AsyncClient) -> None:
    from services.runtime.bus.base import OutgoingMessage
    from tests.unit.test_migration_replacement import SANITISED, delivered
    old = "MPS-D-700501"
    await admin.post("/devices", json=device_body(old, hardware={**device_body()["hardware"], "ram_mb": 1024}))
    assert (await _assessed(admin, old))["need_id"] == f"NEED-{old}"
    early = await admin.post(f"/migration/devices/{old}/disposal", json=SANITISED.model_dump(mode="json"))
    assert early.status_code == 409 and "not replaced yet" in early.json()["detail"]

    event = delivered(["MPS-L-700501"])
    await app.state.runtime.bus.publish([OutgoingMessage("procurement.deliveries", "DEL-7", event.to_bytes())])

    async def retired() -> bool:
        device = (await admin.get(f"/devices/{old}")).json()
        return bool(device["state"] == "retired")
    await _until(retired, "inventory to retire the replaced device")
    assert (await admin.get(f"/devices/{old}")).json()["retirement_reason"] == "replaced by MPS-L-700501"
    assert (await admin.get("/devices/MPS-L-700501")).json()["kind"] == "laptop"
    assert (await admin.get(f"/migration/devices/{old}")).json()["replaced_by"] == "MPS-L-700501"

    got = await admin.post(f"/migration/devices/{old}/disposal", json=SANITISED.model_dump(mode="json"))
    assert got.status_code == 200, got.text

    async def disposed() -> bool:
        device = (await admin.get(f"/devices/{old}")).json()
        return bool(device["state"] == "disposed")
    await _until(disposed, "inventory to dispose of the device")
    device = (await admin.get(f"/devices/{old}")).json()
    assert device["sanitisation"]["certificate_id"] == SANITISED.certificate_id
    types = [json.loads(m.value)["type"] for m in app.state.runtime.bus.messages("migration.devices")
             if m.key == old]
    assert types.count("migration.device.replacement_paired.v1") == 1
    assert types.count("migration.device.disposal_requested.v1") == 1


async def test_a_scheduled_device_that_becomes_blocked_leaves_its_wave_and_the_wave_completes(
        app: FastAPI, admin: httpx.AsyncClient, clock: FixedClock) -> None:
    tags = ["MPS-D-700601", "MPS-D-700602"]
    await admin.post("/devices", json=device_body(tags[0], applications=["Microsoft Office 2003"]))
    await admin.post("/devices", json=device_body(tags[1], applications=["CRIS Crime Reporting"]))
    for tag in tags:
        await _assessed(admin, tag)
    planned = await admin.post("/migration/waves", json={
        "name": "later", "sites": [SITE], "start_date": str(clock.now().date() + timedelta(days=2)),
        "daily_capacity": 5})
    wave_id = planned.json()["wave"]["wave_id"]
    assert planned.json()["wave"]["devices"] == tags
    policy = (await admin.get("/migration/policy")).json()["policy"]
    spec = {k: v for k, v in policy.items() if k not in ("version", "changed_at")}
    spec["catalogue"]["CRIS Crime Reporting"]["compatibility"] = "incompatible"
    assert (await admin.put("/migration/policy", json=spec)).json()["reassessed"] == 1
    record = (await admin.get(f"/migration/devices/{tags[1]}")).json()
    assert record["readiness"]["outcome"] == "blocked" and record["saga"]["state"] == "unscheduled"

    handlers = app.state.runtime.services["migration"]
    clock.advance(timedelta(days=2))
    for _ in range(6):
        await handlers.advance()
    wave = (await admin.get(f"/migration/waves/{wave_id}")).json()
    assert wave["wave"]["state"] == "completed", wave
    assert (wave["progress"]["migrated"], wave["progress"]["unscheduled"]) == (1, 1)
    assert (await admin.get(f"/migration/devices/{tags[1]}")).json()["saga"]["started_at"] is None
    await app.state.runtime.relay.drain()
    assert (await admin.get(f"/devices/{tags[1]}")).json()["state"] == "in_service"
