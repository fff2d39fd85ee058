"""The procurement API on the embedded platform: frameworks seeded, a contract awarded, a
request raised, approved under the thresholds, ordered against the budget and delivered, the
devices reaching inventory; and bad input refused with a problem naming what and where,
changing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.runtime.auth import Role, issue_token
from services.runtime.settings import Settings
from tests.api.conftest import client_for

BASE = "/procurement"
HARDWARE = {"model": "Dell Latitude E7450", "cpu_model": "Core i5-5300U", "cpu_arch": "x64", "cpu_cores": 2,
            "ram_mb": 8192, "disk_gb": 256, "tpm": "2.0", "firmware": "uefi"}
LOCATION = {"site": "Holborn Police Station", "borough": "Camden", "unit": "Territorial"}


def contract(**overrides: Any) -> dict[str, Any]:
    body = {"contract_id": "CO-LAPTOPS", "title": "Laptops for officers", "framework_id": "SPRINT-II",
            "lot": "Lot 1: IT equipment", "supplier": "Dell", "category": "end_user_devices",
            "classification": "modern", "route": "further_competition", "value_pence": 100_000_000,
            "start": "2015-04-01", "initial_term_months": 24}
    return body | overrides


def device(n: int) -> dict[str, Any]:
    return {"asset_tag": f"MPS-L-9{n:05d}", "serial_number": f"SN-{n:06d}",
            "os": {"family": "windows", "version": "8.1"}, "hardware": HARDWARE}


def as_user(app: FastAPI, settings: Settings, subject: str, role: Role = Role.WRITER) -> httpx.AsyncClient:
    client = client_for(app, settings, None)
    token = issue_token(settings, subject=subject, roles=[role], now=datetime.now(UTC))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def _submitted(writer: httpx.AsyncClient, quantity: int = 2, price: int = 899_00) -> dict[str, Any]:
    assert (await writer.post(f"{BASE}/contracts", json=contract())).status_code == 201
    raised = await writer.post(f"{BASE}/purchase-requests", json={
        "kind": "laptop", "quantity": quantity, "framework_id": "SPRINT-II", "site": "Holborn Police Station",
        "borough": "Camden"})
    assert raised.status_code == 201, raised.text
    request_id = raised.json()["request_id"]
    submitted = await writer.post(f"{BASE}/purchase-requests/{request_id}/submit", json={
        "model": "Dell Latitude E7450", "unit_price_pence": price, "contract_id": "CO-LAPTOPS"})
    assert submitted.status_code == 200, submitted.text
    return submitted.json()  # type: ignore[no-any-return]


async def test_frameworks_and_the_budget_are_seeded(reader: httpx.AsyncClient) -> None:
    frameworks = (await reader.get(f"{BASE}/frameworks")).json()["items"]
    names = {f["name"] for f in frameworks}
    assert {"G-Cloud 5", "G-Cloud 12", "Sprint ii"} <= names
    g5 = next(f for f in frameworks if f["framework_id"] == "GCLOUD-5")
    assert (g5["initial_term_months"], g5["extension_months"], g5["max_extensions"]) == (24, 12, 2)
    budget = (await reader.get(f"{BASE}/budget")).json()
    assert budget["allocated_pence"] == 200_000_000 * 100
    assert {f["year"] for f in budget["figures"]} == {"2014-15", "2015-16", "2016-17", "2017-18"}


async def test_request_to_order_to_delivery_reaches_inventory(app: FastAPI, settings: Settings,
                                                              writer: httpx.AsyncClient,
                                                              reader: httpx.AsyncClient) -> None:
    request = await _submitted(writer)
    assert request["state"] == "submitted" and request["value_pence"] == 2 * 899_00
    assert request["required"] == {"approvers": 1, "board": False, "spend_control": False}
    rid = request["request_id"]
    async with as_user(app, settings, "approver-1") as approver:
        approved = await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    assert approved.json()["approvals"][0]["by"] == "approver-1"
    ordered = await writer.post(f"{BASE}/purchase-requests/{rid}/order")
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["state"] == "ordered"
    budget = (await reader.get(f"{BASE}/budget")).json()
    assert budget["committed_pence"] == 2 * 899_00
    assert budget["committed_by_classification"]["modern"] == 2 * 899_00

    first = await writer.post(f"{BASE}/purchase-requests/{rid}/deliveries",
                              json={"delivery_id": "DN-1", "location": LOCATION, "devices": [device(1)]})
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["delivered_quantity"]) == ("partially_delivered", 1)
    again = await writer.post(f"{BASE}/purchase-requests/{rid}/deliveries",
                              json={"delivery_id": "DN-1", "location": LOCATION, "devices": [device(1)]})
    assert again.json()["version"] == first.json()["version"]
    second = await writer.post(f"{BASE}/purchase-requests/{rid}/deliveries",
                               json={"location": LOCATION, "devices": [device(2)]})
    assert second.json()["state"] == "delivered"
    await app.state.runtime.relay.drain()
    for n in (1, 2):
        for _ in range(50):
            found = await reader.get(f"/devices/MPS-L-9{n:05d}")
            if found.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert found.status_code == 200, found.text
        assert found.json()["kind"] == "laptop" and found.json()["location"]["borough"] == "Camden"
    assert (await reader.get(f"{BASE}/budget")).json()["delivered_pence"] == 2 * 899_00


async def test_self_approval_and_approving_twice_are_refused(app: FastAPI, settings: Settings) -> None:
    async with as_user(app, settings, "buyer") as buyer:
        request = await _submitted(buyer, quantity=200)  # GBP 179,800: two approvers
        rid = request["request_id"]
        assert request["required"]["approvers"] == 2
        own = await buyer.post(f"{BASE}/purchase-requests/{rid}/approve", json={})
        assert own.status_code == 409 and "self-approval" in own.json()["detail"]
    async with as_user(app, settings, "approver-1") as approver:
        assert (await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={})).status_code == 200
        twice = await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={})
        assert twice.status_code == 409 and "already approved" in twice.json()["detail"]
        after = (await approver.get(f"{BASE}/purchase-requests/{rid}")).json()
    assert after["state"] == "submitted" and len(after["approvals"]) == 1 and after["version"] == 3


async def test_spend_control_holds_a_big_request_until_recorded(app: FastAPI, settings: Settings,
                                                                writer: httpx.AsyncClient) -> None:
    request = await _submitted(writer, quantity=6000, price=1000_00)  # GBP 6m
    rid = request["request_id"]
    assert request["required"] == {"approvers": 2, "board": True, "spend_control": True}
    for name in ("a-1", "a-2"):
        async with as_user(app, settings, name) as approver:
            assert (await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={})).status_code == 200
    async with as_user(app, settings, "a-3") as approver:
        board_by_writer = await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={"kind": "board"})
        assert board_by_writer.status_code == 403
    async with as_user(app, settings, "board-chair", Role.ADMIN) as board:
        assert (await board.post(f"{BASE}/purchase-requests/{rid}/approve", json={"kind": "board"})).status_code == 200
    held = await writer.post(f"{BASE}/purchase-requests/{rid}/order")
    assert held.status_code == 409 and "spend-control" in held.json()["detail"]
    async with as_user(app, settings, "cabinet-office", Role.ADMIN) as control:
        done = await control.post(f"{BASE}/purchase-requests/{rid}/approve", json={"kind": "spend_control"})
    assert done.json()["state"] == "approved"


async def test_an_order_over_the_budget_left_is_refused_with_the_figures(
        app: FastAPI, settings: Settings, writer: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    small = await admin.put(f"{BASE}/budget", json={"name": "tight", "lines": [
        {"year": "2015-16", "category": "end_user_devices", "allocated_pence": 100_000}]})
    assert small.status_code == 200, small.text
    request = await _submitted(writer, quantity=2, price=899_00)
    rid = request["request_id"]
    async with as_user(app, settings, "approver-1") as approver:
        await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={})
    refused = await writer.post(f"{BASE}/purchase-requests/{rid}/order")
    assert refused.status_code == 409
    assert "allocated GBP 1,000.00, committed GBP 0.00, left GBP 1,000.00" in refused.json()["detail"]
    assert (await writer.get(f"{BASE}/purchase-requests/{rid}")).json()["state"] == "approved"
    assert (await writer.get(f"{BASE}/budget")).json()["committed_pence"] == 0


@pytest.mark.parametrize(("path", "body", "location", "words"), [
    ("/contracts", contract(framework_id="NOPE"), "body.framework_id", "no framework with id NOPE"),
    ("/contracts", contract(initial_term_months=36), "body.initial_term_months", "term limit"),
    ("/contracts", contract(lot="Lot 9"), "body.lot", "has no lot"),
    ("/purchase-requests", {"kind": "laptop", "quantity": 0, "framework_id": "SPRINT-II"}, "body.quantity",
     "greater than or equal to 1"),
    ("/purchase-requests", {"kind": "laptop", "quantity": -3, "framework_id": "SPRINT-II"}, "body.quantity",
     "greater than or equal to 1"),
    ("/purchase-requests", {"kind": "laptop", "quantity": 3, "framework_id": "NOPE"}, "body.framework_id",
     "no framework"),
    ("/purchase-requests", {"kind": "laptop", "quantity": 3, "framework_id": "GCLOUD-5"}, "body.framework_id",
     "may buy end_user_devices"),
])
async def test_bad_input_is_refused_naming_what_and_where(writer: httpx.AsyncClient, path: str,
                                                          body: dict[str, Any], location: str, words: str) -> None:
    answer = await writer.post(f"{BASE}{path}", json=body)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(e["location"] == location for e in problem["errors"]), problem
    assert words in answer.text
    assert (await writer.get(f"{BASE}/contracts")).json()["items"] == []
    assert (await writer.get(f"{BASE}/purchase-requests")).json()["items"] == []


async def test_a_variation_over_ten_percent_is_refused_and_changes_nothing(writer: httpx.AsyncClient) -> None:
    assert (await writer.post(f"{BASE}/contracts", json=contract())).status_code == 201
    over = await writer.post(f"{BASE}/contracts/CO-LAPTOPS/variations",
                             json={"value_pence": 110_000_001, "reason": "more laptops"})
    assert over.status_code == 422 and "10% variation rule" in over.json()["detail"]
    assert over.json()["errors"][0]["location"] == "body.value_pence"
    within = await writer.post(f"{BASE}/contracts/CO-LAPTOPS/variations",
                               json={"value_pence": 110_000_000, "extend": True, "reason": "more laptops"},
                               headers={"If-Match": '"1"'})
    assert within.status_code == 200, within.text
    assert (within.json()["value_pence"], within.json()["end"], within.json()["version"]) == (
        110_000_000, "2018-03-31", 2)
    stale = await writer.post(f"{BASE}/contracts/CO-LAPTOPS/variations",
                              json={"value_pence": 100_000_000, "reason": "fewer"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412


async def test_expiring_lists_contracts_in_their_notice_window(writer: httpx.AsyncClient) -> None:
    # the clock is 2015-08-03: a contract ending 2015-12-31 is in its 180-day window
    assert (await writer.post(f"{BASE}/contracts", json=contract(
        contract_id="CO-SOON", start="2014-01-01", initial_term_months=24))).status_code == 201
    assert (await writer.post(f"{BASE}/contracts", json=contract())).status_code == 201
    expiring = (await writer.get(f"{BASE}/contracts/expiring")).json()
    assert expiring["within_days"] == 180
    assert [c["contract_id"] for c in expiring["items"]] == ["CO-SOON"]
    wide = (await writer.get(f"{BASE}/contracts/expiring", params={"within_days": 1000})).json()
    assert [c["contract_id"] for c in wide["items"]] == ["CO-SOON", "CO-LAPTOPS"]


async def test_metrics_count_requests_by_state_spend_and_expiring_contracts(
        app: FastAPI, settings: Settings, writer: httpx.AsyncClient) -> None:
    await _submitted(writer)
    assert (await writer.post(f"{BASE}/contracts", json=contract(
        contract_id="CO-SOON", start="2014-01-01", initial_term_months=24))).status_code == 201
    handlers = app.state.runtime.services["procurement"]
    metrics = app.state.runtime.service_metrics["procurement"]
    metrics.notices.inc(await handlers.announce_expiring())
    await metrics.refresh(handlers)
    text = (await writer.get("/metrics")).text
    assert 'procurement_requests{state="submitted"} 1.0' in text
    assert "procurement_contracts_expiring 1.0" in text
    assert "procurement_contract_expiry_notices_total 1.0" in text
    assert 'procurement_spend_committed_pence{category="end_user_devices",year="2015-16"} 0.0' in text


async def test_suppliers_sum_their_call_offs_legacy_and_modern(writer: httpx.AsyncClient) -> None:
    assert (await writer.post(f"{BASE}/contracts", json=contract())).status_code == 201
    assert (await writer.post(f"{BASE}/contracts", json=contract(
        contract_id="CO-OLD", classification="legacy", value_pence=5_00))).status_code == 201
    [dell] = (await writer.get(f"{BASE}/suppliers")).json()
    assert dell == {"name": "Dell", "contracts": ["CO-LAPTOPS", "CO-OLD"], "frameworks": ["Sprint ii"],
                    "value_pence": 100_000_500, "legacy_pence": 5_00, "modern_pence": 100_000_000}
