"""What-if planning on the embedded platform: baseline and scenario from the current figures,
nothing stored changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from services.runtime.clock import FixedClock
from tests.api.test_reporting_api import eventually, spec


async def test_fixing_the_blocker_moves_the_forecast_and_changes_nothing_stored(
        app: FastAPI, writer: httpx.AsyncClient, reader: httpx.AsyncClient, admin: httpx.AsyncClient,
        clock: FixedClock) -> None:
    assert (await reader.post("/reporting/what-if", json={})).json()["note"]  # no data yet: a note, no answer
    for n in range(40):
        body = spec(f"MPS-D-{n:04d}")
        if n >= 30:
            body["applications"] = ["NSPIS Custody"]
        assert (await writer.post("/devices", json=body)).status_code == 201
    for n in range(14):  # one device a day leaves XP
        clock.advance(timedelta(days=1))
        changed = await writer.patch(f"/devices/MPS-D-{n:04d}", json={"os": {"family": "windows", "version": "8.1"}})
        assert changed.status_code == 200, changed.text
    clock.advance(timedelta(hours=1))
    await eventually(reader, "/reporting/summary", lambda b: b["legacy_remaining"] == 26)
    blockers = await eventually(reader, "/reporting/tables/blockers", lambda b: bool(b["rows"]))
    assert blockers["rows"][0][1:3] == ["NSPIS Custody", 10]
    forecast = (await reader.get("/reporting/forecast")).json()["forecast"]
    before = (await admin.post("/reporting/replay")).json()
    assert before["equal_to_live"]

    today = clock.now().date()
    answer = await reader.post("/reporting/what-if", json={
        "fixes": [{"application": "NSPIS Custody", "by": (today + timedelta(days=3)).isoformat()}]})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    baseline, scenario = result["baseline"], result["scenario"]
    for p in ("p50", "p85", "p95", "probability_by_deadline"):
        assert baseline[p] == forecast[p], p
    assert result["unblocked_devices"] == 10 and baseline["remaining"] == scenario["remaining"] == 26
    # one a day: 10 devices fewer is about 10 days sooner
    assert 7 <= result["p50_earlier_by_days"] <= 13
    assert scenario["p50"] < baseline["p50"]
    assert scenario["extended_support_cost_to_completion_gbp"] < baseline["extended_support_cost_to_completion_gbp"]

    doubled = (await reader.post("/reporting/what-if", json={"capacity_factor": 2, "budget_cut_gbp": 1e6})).json()
    assert doubled["result"]["p50_earlier_by_days"] > 0
    assert doubled["result"]["scenario"]["budget_gbp"] == baseline["budget_gbp"] - 1e6

    # nothing stored changed: the same figures, and the read model still equals a replay
    assert (await reader.get("/reporting/forecast")).json()["forecast"] == forecast
    assert (await admin.post("/reporting/replay")).json()["equal_to_live"]


async def test_what_if_refusals(reader: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.post("/reporting/what-if", json={})).status_code == 401
    unknown = await reader.post("/reporting/what-if", json={"fixes": [{"application": "Nope", "by": "2016-01-01"}]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["location"] == "body.fixes.0.application"
    both = await reader.post("/reporting/what-if", json={"capacity_factor": 2, "daily_capacity": 5})
    assert both.status_code == 422
    assert (await reader.post("/reporting/what-if", json={"capacity_factor": 0})).status_code == 422


GX280 = {"cpu_arch": "x86", "cpu_cores": 1, "ram_mb": 1024, "disk_gb": 40}  # cannot run 8.1 or 10
DC7800 = {"cpu_arch": "x64", "cpu_cores": 2, "ram_mb": 2048, "disk_gb": 160}  # at the force's 2 GB minimum


async def test_another_target_os_counts_new_devices_from_the_events_and_moves_money_and_dates(
        writer: httpx.AsyncClient, reader: httpx.AsyncClient, clock: FixedClock) -> None:
    for n in range(30):
        body = spec(f"MPS-D-{n:04d}")  # 4 GB, 250 GB, x64: fine for every target
        if n % 5 == 0:
            body["hardware"] = {**body["hardware"], **GX280}  # type: ignore[dict-item]
        elif n % 5 != 1:
            body["hardware"] = {**body["hardware"], **DC7800}  # type: ignore[dict-item]
        assert (await writer.post("/devices", json=body)).status_code == 201
    for n in range(14):  # one a day leaves XP: 16 remain, 3 GX280, 3 at 4 GB, 10 at 2 GB
        clock.advance(timedelta(days=1))
        assert (await writer.patch(f"/devices/MPS-D-{n:04d}", json={"os": {"family": "windows", "version": "8.1"}})
                ).status_code == 200
    clock.advance(timedelta(hours=1))
    await eventually(reader, "/reporting/summary", lambda b: b["legacy_remaining"] == 16)
    await eventually(reader, "/reporting/tables/policy", lambda b: bool(b["rows"]))
    today = clock.now().date()

    async def ask(**body: object) -> Any:
        answer = await reader.post("/reporting/what-if", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    win10 = await ask(target_os={"family": "windows", "version": "10"})
    base, scen = win10["baseline"], win10["scenario"]
    assert (base["target"], scen["target"]) == ("windows:8.1", "windows:10")
    assert (base["target_support_ends"], scen["target_support_ends"]) == ("2023-01-10", "2025-10-14")
    # the force's minimum (2 GB, 80 GB, 2 cores) already covers what 10 needs: the same 3 new devices
    assert base["new_devices_needed"] == scen["new_devices_needed"] == 3 and win10["extra_new_devices"] == 0
    assert scen["p50"] == base["p50"] and scen["new_devices_cost_gbp"] is None
    assert any("no price" in a for a in win10["assumptions"])

    stricter = await ask(target_os={"family": "windows", "version": "10"},
                         target_minimum={"ram_mb": 4096, "disk_gb": 80, "cpu_cores": 2},
                         device_price_gbp=700, replacement_lead_days=400)
    base, scen = stricter["baseline"], stricter["scenario"]
    assert stricter["extra_new_devices"] == 10 and scen["new_devices_needed"] == 13
    assert scen["budget_remaining_gbp"] == base["budget_remaining_gbp"] - 10 * 700
    assert scen["new_devices_cost_gbp"] == 13 * 700 and base["new_devices_cost_gbp"] == 3 * 700
    assert scen["p50"] == (today + timedelta(days=400)).isoformat()
    assert stricter["p50_earlier_by_days"] < -300

    win7 = await ask(target_os={"family": "windows", "version": "7"})
    # 7 runs on the GX280s (x86, 1 GB), but below the force's minimum they are still replaced
    assert win7["extra_new_devices"] == 0 and win7["scenario"]["target_support_ends"] == "2020-01-14"


async def test_an_unknown_target_os_is_a_422_naming_the_field(reader: httpx.AsyncClient) -> None:
    await eventually(reader, "/reporting/tables/policy", lambda b: bool(b["rows"]))
    unknown = await reader.post("/reporting/what-if", json={"target_os": {"family": "windows", "version": "11"}})
    assert unknown.status_code == 422, unknown.text
    problem = unknown.json()
    assert problem["errors"][0]["location"] == "body.target_os"
    assert "windows:11 is not in the migration policy's lifecycle table" in problem["detail"]
    assert "windows:10" in problem["errors"][0]["message"]
    bad = await reader.post("/reporting/what-if", json={"target_os": {"family": "windows", "version": "95"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"].startswith("body.target_os")
    lead = await reader.post("/reporting/what-if", json={"target_os": {"family": "windows", "version": "10"},
                                                         "replacement_lead_days": -1})
    assert lead.status_code == 422 and lead.json()["errors"][0]["location"] == "body.replacement_lead_days"
