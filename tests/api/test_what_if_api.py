"""What-if planning on the embedded platform: baseline and scenario from the current figures,
nothing stored changes."""

from __future__ import annotations

from datetime import timedelta

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
