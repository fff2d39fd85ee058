"""Reporting on the embedded platform: inventory's events become figures, tables (JSON and
CSV), a forecast, and a replay equal to the live read model."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.runtime.clock import FixedClock


def spec(tag: str, os_version: str = "XP", borough: str = "Camden") -> dict[str, object]:
    return {"asset_tag": tag, "kind": "desktop", "os": {"family": "windows", "version": os_version},
            "hardware": {"model": "Dell OptiPlex 760", "cpu_model": "Core 2 Duo E7400", "cpu_arch": "x64",
                         "cpu_cores": 2, "ram_mb": 4096, "disk_gb": 250, "tpm": "1.2", "firmware": "bios"},
            "location": {"site": f"{borough} Police Station", "borough": borough, "unit": "Territorial Policing"},
            "applications": []}


async def eventually(reader: httpx.AsyncClient, path: str, check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = (await reader.get(path)).json()
        if check(body) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_inventory_events_become_figures_tables_and_a_replay_equal_to_live(
        app: FastAPI, writer: httpx.AsyncClient, reader: httpx.AsyncClient, admin: httpx.AsyncClient,
        clock: FixedClock) -> None:
    start = clock.now()
    for n in range(30):
        assert (await writer.post("/devices", json=spec(f"MPS-D-{n:04d}", borough="Camden" if n % 2 else "Barnet"))
                ).status_code == 201
    assert (await writer.post("/devices", json=spec("MPS-D-9000", os_version="7"))).status_code == 201
    # two weeks later one XP desktop a day moves to Windows 8.1
    for n in range(14):
        clock.advance(timedelta(days=1))
        changed = await writer.patch(f"/devices/MPS-D-{n:04d}", json={"os": {"family": "windows", "version": "8.1"}})
        assert changed.status_code == 200, changed.text
    clock.advance(timedelta(hours=1))
    summary = await eventually(reader, "/reporting/summary", lambda b: b["legacy_remaining"] == 16)
    assert summary["devices"] == 31 and summary["legacy_remaining"] == 16 and summary["legacy_at_start"] == 30
    assert summary["extended_support_cost_gbp"] > 0
    assert summary["forecast"] is not None and summary["forecast"]["remaining"] == 16
    assert summary["forecast"]["p50"] is not None

    past = await reader.get("/reporting/summary", params={"as_of": start.date().isoformat()})
    assert past.status_code == 200 and past.json()["legacy_remaining"] == 30

    os_table = (await reader.get("/reporting/tables/os")).json()
    assert {(r[0], r[1]): r[2] for r in os_table["rows"]} == {
        ("windows", "XP"): 16, ("windows", "8.1"): 14, ("windows", "7"): 1}
    boroughs = await reader.get("/reporting/tables/boroughs", params={"format": "csv"})
    assert boroughs.status_code == 200 and boroughs.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(boroughs.text)))
    assert sum(int(r["legacy"]) for r in rows) == 16
    series = (await reader.get("/reporting/tables/series")).json()
    legacy = [r[2] for r in series["rows"]]
    assert legacy[0] == 30 and legacy[-1] == 16

    replayed = await admin.post("/reporting/replay")
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["equal_to_live"], body["differences"]
    assert body["report"]["events"] >= 45


@pytest.mark.parametrize("name", ["os", "boroughs", "kinds", "series", "blockers", "readiness", "waves", "saga",
                                  "spend", "contracts", "deliveries", "policy"])
async def test_every_table_answers_as_json_and_csv(reader: httpx.AsyncClient, name: str) -> None:
    as_json = await reader.get(f"/reporting/tables/{name}")
    assert as_json.status_code == 200 and as_json.json()["name"] == name
    as_csv = await reader.get(f"/reporting/tables/{name}", params={"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.text.splitlines()[0].split(",") == as_json.json()["columns"]


async def test_unknown_table_and_roles(reader: httpx.AsyncClient, writer: httpx.AsyncClient) -> None:
    assert (await reader.get("/reporting/tables/nope")).status_code == 422
    assert (await writer.post("/reporting/replay")).status_code == 403
