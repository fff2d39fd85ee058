"""Procurement and inventory as services of their own on real Kafka and FerretDB: a replacement
need from migration becomes one draft request however often it arrives; the draft is
submitted, approved, ordered and delivered over HTTP; the delivered devices appear in
inventory once, even when the delivery event is delivered twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts.common import DeviceKind
from contracts.envelope import Envelope, new_envelope
from contracts.migration import REPLACEMENTS_TOPIC, ReplacementNeededV1
from contracts.procurement import DELIVERIES_TOPIC
from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.integration.conftest import client, events_for, eventually, produce, read_topic, running

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
BASE = "/procurement"
HARDWARE = {"model": "Dell Latitude E7450", "cpu_model": "Core i5-5300U", "cpu_arch": "x64", "cpu_cores": 2,
            "ram_mb": 8192, "disk_gb": 256, "tpm": "2.0", "firmware": "uefi"}
LOCATION = {"site": "Holborn Police Station", "borough": "Camden", "unit": "Territorial"}


def need(need_id: str, kind: DeviceKind = DeviceKind.LAPTOP, quantity: int = 2) -> Envelope:
    data = ReplacementNeededV1(need_id=need_id, site="Holborn Police Station", borough="Camden", kind=kind,
                               quantity=quantity, replaces=["MPS-D-000001", "MPS-D-000002"][:quantity],
                               reason="hardware below the Windows 8.1 minimum")
    return new_envelope(type="migration.replacement.needed.v1", source="/estate/migration", subject=need_id,
                        time=datetime.now(UTC), data=data)


async def announce(settings: Settings, envelope: Envelope) -> None:
    await produce(settings.kafka_bootstrap, REPLACEMENTS_TOPIC, envelope.subject, envelope.to_bytes())


async def requests(http: httpx.AsyncClient, state: str | None = None) -> list[dict[str, Any]]:
    answer = await http.get(f"{BASE}/purchase-requests", params={"state": state} if state else {})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


def holding(found: list[dict[str, Any]], need_id: str) -> list[tuple[str, str]]:
    """(request id, kind) once for every time a request lists the need."""
    return [(r["request_id"], r["kind"]) for r in found for n in r["needs"] if n["need_id"] == need_id]


# A new consumer group reads the topic from its start: needs announced by earlier tests on this
# broker arrive too, and join the same drafts. The tests look at their own needs.


async def test_a_replacement_need_becomes_one_draft_however_often_it_arrives(settings: Settings) -> None:
    laptops, tablets = f"NEED-{uuid.uuid4().hex[:8]}", f"NEED-{uuid.uuid4().hex[:8]}"
    async with running(settings, "procurement") as url, client(url, settings) as http:
        first = need(laptops)
        await announce(settings, first)
        await announce(settings, first)  # redelivered: the same event
        await announce(settings, need(laptops))  # re-announced: another event, the same need
        await announce(settings, need(tablets, DeviceKind.TABLET, 1))

        async def both_drafted() -> bool:
            found = await requests(http, "draft")
            return bool(holding(found, laptops) and holding(found, tablets))

        await eventually(both_drafted, "the needs becoming drafts")
        await asyncio.sleep(2)  # time for any duplicate to show
        found = await requests(http)
    assert holding(found, laptops) == [("PR-SPRINT-II-laptop-001", "laptop")]
    assert holding(found, tablets) == [("PR-SPRINT-II-tablet-001", "tablet")]
    [draft] = [r for r in found if r["request_id"] == "PR-SPRINT-II-laptop-001"]
    assert draft["quantity"] == sum(n["quantity"] for n in draft["needs"])


async def test_a_need_becomes_an_approved_order_and_delivered_devices_in_inventory_once(settings: Settings) -> None:
    need_id, note = f"NEED-{uuid.uuid4().hex[:8]}", f"DN-{uuid.uuid4().hex[:8]}"
    tags = [f"MPS-L-{uuid.uuid4().hex[:8].upper()}" for _ in range(2)]
    async with running(settings, "procurement", load_sample_estate=True) as purl, \
            running(settings, "inventory") as iurl, \
            client(purl, settings, "buyer@met") as buyer, client(purl, settings, "approver@met") as approver, \
            client(iurl, settings, role=Role.READER) as inventory:

        async def sample_contract_loaded() -> bool:
            return (await buyer.get(f"{BASE}/contracts/CO-DEVICES")).status_code == 200

        await eventually(sample_contract_loaded, "the sample call-off contracts loading")
        await announce(settings, need(need_id))

        async def drafted() -> bool:
            return bool(holding(await requests(buyer, "draft"), need_id))

        await eventually(drafted, "the replacement need becoming a draft")
        [(rid, kind)] = holding(await requests(buyer, "draft"), need_id)
        assert kind == "laptop"
        submitted = await buyer.post(f"{BASE}/purchase-requests/{rid}/submit", json={  # for this need's two
            "model": "Dell Latitude E7450", "unit_price_pence": 899_00, "contract_id": "CO-DEVICES", "quantity": 2})
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["requested_by"] == "buyer@met"
        approved = await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={},
                                       headers={"If-Match": submitted.headers["ETag"]})
        assert approved.status_code == 200 and approved.json()["state"] == "approved", approved.text
        ordered = await buyer.post(f"{BASE}/purchase-requests/{rid}/order")
        assert ordered.status_code == 200 and ordered.json()["state"] == "ordered", ordered.text
        delivered = await buyer.post(f"{BASE}/purchase-requests/{rid}/deliveries", json={
            "delivery_id": note, "location": LOCATION,
            "devices": [{"asset_tag": t, "serial_number": f"SN-{t}", "os": {"family": "windows", "version": "8.1"},
                         "hardware": HARDWARE} for t in tags]})
        assert delivered.status_code == 200 and delivered.json()["state"] == "delivered", delivered.text

        records = await read_topic(settings.kafka_bootstrap, DELIVERIES_TOPIC,
                                   lambda rs: bool(events_for(rs, note)))
        [record] = [r for r in records if r.key == note.encode()]
        await produce(settings.kafka_bootstrap, DELIVERIES_TOPIC, note, record.value)  # delivered twice

        async def in_inventory() -> bool:
            answers = [await inventory.get(f"/devices/{t}") for t in tags]
            return all(a.status_code == 200 for a in answers)

        await eventually(in_inventory, "the delivered devices reaching inventory")
        await asyncio.sleep(2)  # time for any second effect to show
        registered = await read_topic(settings.kafka_bootstrap, "inventory.devices",
                                      lambda rs: all(events_for(rs, t) for t in tags))
        for tag in tags:
            assert [e["type"] for e in events_for(registered, tag)] == ["inventory.device.registered.v1"]
            device = (await inventory.get(f"/devices/{tag}")).json()
            assert (device["kind"], device["location"]["site"]) == ("laptop", "Holborn Police Station")
        budget = (await buyer.get(f"{BASE}/budget")).json()
        assert (budget["committed_pence"], budget["delivered_pence"]) == (2 * 899_00, 2 * 899_00)
