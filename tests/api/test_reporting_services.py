"""Reporting follows the real services on the embedded platform: inventory's devices,
migration's readiness, waves and policy, procurement's contracts, orders and deliveries
become the figures; the business gauges on /metrics show them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.registry import units
from services.runtime.app import create_app as create_platform_app
from services.runtime.auth import Role, issue_token
from services.runtime.clock import FixedClock
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.api.conftest import client_for
from tests.samples import device_body

SITE = "Hammersmith Police Station"
LOCATION = {"site": SITE, "borough": "Hammersmith and Fulham", "unit": "Territorial Policing"}
LAPTOP = {"model": "Dell Latitude E7450", "cpu_model": "Core i5-5300U", "cpu_arch": "x64", "cpu_cores": 2,
          "ram_mb": 8192, "disk_gb": 256, "tpm": "2.0", "firmware": "uefi"}


@pytest.fixture(autouse=True)
def _quiet_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTATE_EXECUTOR_FAILURE_RATE", "0")
    monkeypatch.setenv("ESTATE_WAVE_INTERVAL_S", "3600")  # the test drives the wave job itself


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[FastAPI]:
    """The embedded platform with the business gauges refreshed every 0.1 s."""
    runtime = Runtime.build(settings, clock=clock, setting_overrides={"reporting_refresh_s": 0.1})
    application = create_platform_app(settings, units(), runtime=runtime)
    async with application.router.lifespan_context(application):
        yield application


async def until(get: Callable[[], Awaitable[Any]], check: Callable[[Any], bool], what: str,
                timeout_s: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await get()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        await asyncio.sleep(0.05)


async def table(reader: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    body = (await reader.get(f"/reporting/tables/{name}")).json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


async def migrate_a_wave(app: FastAPI, writer: httpx.AsyncClient, clock: FixedClock, tags: list[str]) -> str:
    for tag in tags:
        assert (await writer.post("/devices", json=device_body(tag, applications=[]))).status_code == 201

    async def assessed() -> bool:
        got = [(await writer.get(f"/migration/devices/{t}")).json() for t in tags]
        return all(d.get("readiness") is not None for d in got)
    await until(assessed, bool, "the devices assessed")
    planned = await writer.post("/migration/waves", json={
        "name": "Hammersmith", "sites": [SITE], "start_date": str(clock.now().date()), "daily_capacity": 2})
    assert planned.status_code == 201, planned.text
    handlers = app.state.runtime.services["migration"]
    for _ in range(6):
        await handlers.advance()
    clock.advance(timedelta(days=1))
    for _ in range(6):
        await handlers.advance()
    await app.state.runtime.relay.drain()
    return str(planned.json()["wave"]["wave_id"])


async def order_and_deliver(app: FastAPI, settings: Settings, writer: httpx.AsyncClient) -> None:
    """Two laptops at GBP 899 under a GBP 1m modern Sprint ii call-off, ordered and delivered."""
    assert (await writer.post("/procurement/contracts", json={
        "contract_id": "CO-LAPTOPS", "title": "Laptops for officers", "framework_id": "SPRINT-II",
        "lot": "Lot 1: IT equipment", "supplier": "Dell", "category": "end_user_devices",
        "classification": "modern", "route": "further_competition", "value_pence": 100_000_000,
        "start": "2015-04-01", "initial_term_months": 24})).status_code == 201
    raised = await writer.post("/procurement/purchase-requests", json={
        "kind": "laptop", "quantity": 2, "framework_id": "SPRINT-II", "site": SITE,
        "borough": "Hammersmith and Fulham"})
    assert raised.status_code == 201, raised.text
    rid = raised.json()["request_id"]
    submitted = await writer.post(f"/procurement/purchase-requests/{rid}/submit", json={
        "model": "Dell Latitude E7450", "unit_price_pence": 899_00, "contract_id": "CO-LAPTOPS"})
    assert submitted.status_code == 200, submitted.text
    async with client_for(app, settings, None) as approver:
        approver.headers["Authorization"] = "Bearer " + issue_token(
            settings, subject="approver-1", roles=[Role.WRITER], now=datetime.now(UTC))
        assert (await approver.post(f"/procurement/purchase-requests/{rid}/approve", json={})).status_code == 200
    assert (await writer.post(f"/procurement/purchase-requests/{rid}/order")).status_code == 200
    delivered = await writer.post(f"/procurement/purchase-requests/{rid}/deliveries", json={
        "delivery_id": "DN-1", "location": LOCATION, "devices": [
            {"asset_tag": f"MPS-L-9{n:05d}", "serial_number": f"SN-{n:06d}",
             "os": {"family": "windows", "version": "8.1"}, "hardware": LAPTOP} for n in (1, 2)]})
    assert delivered.status_code == 200, delivered.text
    await app.state.runtime.relay.drain()


async def test_reporting_follows_migration_waves_and_procurement(
        app: FastAPI, settings: Settings, writer: httpx.AsyncClient, reader: httpx.AsyncClient,
        admin: httpx.AsyncClient, clock: FixedClock) -> None:
    tags = [f"MPS-D-80010{i}" for i in range(3)]
    wave_id = await migrate_a_wave(app, writer, clock, tags)
    await order_and_deliver(app, settings, writer)

    async def summary() -> dict[str, Any]:
        return dict((await reader.get("/reporting/summary")).json())
    s = await until(summary, lambda b: b["migrated"] == 3 and b["devices"] == 5,
                    "the migrated and delivered devices")
    assert s["legacy_remaining"] == 0 and s["legacy_at_start"] == 3
    assert s["spend_committed_gbp"] == 2 * 899 and s["spend_contracted_gbp"] == 1_000_000
    assert s["legacy_spend_share"] == 0.0  # the order is modern; the contract is not spend on top of it

    waves = await until(lambda: table(reader, "waves"), lambda rows: any(
        r["wave"] == wave_id and r["state"] == "completed" for r in rows), "the wave completed")
    wave = next(r for r in waves if r["wave"] == wave_id)
    assert (wave["devices"], wave["migrated"], wave["failed"], wave["success_rate"]) == (3, 3, 0, 1.0)
    assert wave["daily_capacity"] == 2
    readiness = {r["outcome"]: r["devices"] for r in await table(reader, "readiness") if r["devices"]}
    assert readiness == {"already_compliant": 5}  # reassessed after the migration; the laptops came on 8.1
    deliveries = await table(reader, "deliveries")
    assert [(r["framework"], r["deliveries"], r["devices"]) for r in deliveries] == [("Sprint ii", 1, 2)]
    spend = {(r["by"], r["name"]): r for r in await table(reader, "spend")}
    assert spend[("framework", "Sprint ii")]["committed_gbp"] == 2 * 899
    assert spend[("framework", "Sprint ii")]["contracted_gbp"] == 1_000_000
    policy = await table(reader, "policy")
    assert policy and policy[0]["target"] == "windows:8.1" and policy[0]["longer_supported_alternative"] is True

    replayed = (await admin.post("/reporting/replay")).json()
    assert replayed["equal_to_live"], replayed["differences"]


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


async def test_the_business_gauges_show_the_figures(
        app: FastAPI, settings: Settings, writer: httpx.AsyncClient, anonymous: httpx.AsyncClient,
        clock: FixedClock) -> None:
    holborn = {"site": "Holborn Police Station", "borough": "Camden", "unit": "Territorial Policing"}
    for n in range(4):  # legacy devices at a site no wave covers
        assert (await writer.post("/devices", json=device_body(f"MPS-D-81000{n}", location=holborn))
                ).status_code == 201
    await migrate_a_wave(app, writer, clock, ["MPS-D-810100"])
    await order_and_deliver(app, settings, writer)

    async def metrics() -> str:
        text = (await anonymous.get("/metrics")).text
        return "\n".join(line for line in text.splitlines() if line.startswith("estate_"))
    text = await until(metrics, lambda t: gauge(t, "estate_devices_migrated") == 1.0
                       and gauge(t, "estate_spend_committed_gbp") == 2 * 899.0, "the gauges")
    assert gauge(text, "estate_legacy_devices_remaining") == 4.0
    cost = gauge(text, "estate_extended_support_cost_gbp")
    assert cost is not None and cost > 0
    assert gauge(text, "estate_forecast_days_left") is not None
    assert gauge(text, "estate_forecast_probability_by_deadline") is not None
