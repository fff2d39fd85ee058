"""The inventory API on the embedded platform: what a caller sees, and what gets announced."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from tests.samples import CSV_HEADER, csv_line, device_body

pytestmark = pytest.mark.asyncio


def announced(app: FastAPI, tag: str) -> list[str]:
    bus = app.state.runtime.bus
    return [json.loads(m.value)["type"] for m in bus.messages("inventory.devices") if m.key == tag]


async def settle(app: FastAPI) -> None:
    await app.state.runtime.relay.drain()


async def test_register_then_read_with_etag_and_event(app: FastAPI, writer: httpx.AsyncClient) -> None:
    created = await writer.post("/devices", json=device_body("MPS-D-000101"))
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == "/devices/MPS-D-000101"
    got = await writer.get("/devices/MPS-D-000101")
    assert got.json()["state"] == "in_service" and got.json()["version"] == 1
    await settle(app)
    assert announced(app, "MPS-D-000101") == ["inventory.device.registered.v1"]


async def test_a_duplicate_asset_tag_conflicts_and_changes_nothing(app: FastAPI, writer: httpx.AsyncClient) -> None:
    await writer.post("/devices", json=device_body("MPS-D-000102"))
    again = await writer.post("/devices", json=device_body("MPS-D-000102", kind="laptop"))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "already registered" in again.json()["detail"]
    assert (await writer.get("/devices/MPS-D-000102")).json()["kind"] == "desktop"


@pytest.mark.parametrize(("change", "where", "words"), [
    ({"os": {"family": "windows", "version": "XP-ish"}}, "body.os", "unknown Windows version"),
    ({"os": {"family": "beos", "version": "5"}}, "body.os.family", "windows"),
    ({"hardware": {**device_body()["hardware"], "ram_mb": "lots"}}, "body.hardware.ram_mb", "integer"),
    ({"kind": "body_worn_camera"}, "body.os.family", "cannot run windows"),
    ({"state": "disposed"}, "body.state", "cannot join the inventory as disposed"),
    ({"location": {"site": "x", "borough": "Gotham", "unit": "y"}}, "body.location", "unknown borough"),
    ({"asset_tag": "bad tag!"}, "body.asset_tag", "pattern"),
    ({"colour": "beige"}, "body.colour", "Extra inputs"),
])
async def test_bad_input_says_what_and_where_and_stores_nothing(
        writer: httpx.AsyncClient, change: dict[str, object], where: str, words: str) -> None:
    body = {**device_body("MPS-D-000103"), **change}
    answer = await writer.post("/devices", json=body)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["status"] == 422 and problem["type"] == "/problems/invalid-input"
    assert any(e["location"].startswith(where) and words in e["message"] for e in problem["errors"]), problem
    assert (await writer.get("/devices/MPS-D-000103")).status_code == 404


async def test_auth_401_without_token_403_with_the_wrong_role(
        anonymous: httpx.AsyncClient, reader: httpx.AsyncClient, writer: httpx.AsyncClient) -> None:
    missing = await anonymous.get("/devices")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    forged = await anonymous.get("/devices", headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401
    assert (await reader.get("/devices")).status_code == 200
    refused = await reader.post("/devices", json=device_body("MPS-D-000104"))
    assert refused.status_code == 403 and "writer" in refused.json()["detail"]
    assert (await writer.get("/devices/MPS-D-000104")).status_code == 404
    await writer.post("/devices", json=device_body("MPS-D-000105"))
    await writer.post("/devices/MPS-D-000105/retire", json={"reason": "beyond repair"})
    record = {"method": "NIST 800-88 purge", "certificate_id": "CERT-1", "performed_on": "2015-08-01",
              "operator": "Disposals Ltd"}
    assert (await writer.post("/devices/MPS-D-000105/dispose", json=record)).status_code == 403


async def test_stale_if_match_is_refused_with_412(app: FastAPI, writer: httpx.AsyncClient) -> None:
    await writer.post("/devices", json=device_body("MPS-D-000106"))
    first = await writer.patch("/devices/MPS-D-000106", headers={"If-Match": '"1"'},
                               json={"os": {"family": "windows", "version": "8.1"}})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    stale = await writer.patch("/devices/MPS-D-000106", headers={"If-Match": '"1"'},
                               json={"applications": []})
    assert stale.status_code == 412
    assert "version 2" in stale.json()["detail"]
    same = await writer.patch("/devices/MPS-D-000106", json={"os": {"family": "windows", "version": "8.1"}})
    assert same.json()["version"] == 2, "an unchanged device is not a new version"
    garbled = await writer.patch("/devices/MPS-D-000106", headers={"If-Match": "yesterday"}, json={})
    assert garbled.status_code == 422
    await settle(app)
    assert announced(app, "MPS-D-000106") == ["inventory.device.registered.v1", "inventory.device.updated.v1"]


async def test_lifecycle_allows_only_its_moves_and_disposal_needs_sanitisation(
        app: FastAPI, writer: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    tag = "MPS-D-000107"
    await writer.post("/devices", json=device_body(tag))
    skip = await writer.post(f"/devices/{tag}/state", json={"state": "migrated"})
    assert skip.status_code == 409 and "cannot go from in_service to migrated" in skip.json()["detail"]
    assert (await writer.post(f"/devices/{tag}/state", json={"state": "migrating"})).status_code == 200
    assert (await writer.post(f"/devices/{tag}/state", json={"state": "migrated"})).status_code == 200
    early = await admin.post(f"/devices/{tag}/dispose", json={})
    assert early.status_code == 422  # no sanitisation record at all
    record = {"method": "NIST 800-88 purge", "certificate_id": "CERT-77", "performed_on": "2015-08-03",
              "operator": "Disposals Ltd"}
    not_retired = await admin.post(f"/devices/{tag}/dispose", json=record)
    assert not_retired.status_code == 409
    assert (await writer.post(f"/devices/{tag}/retire", json={"reason": "replaced by laptop"})).status_code == 200
    future = await admin.post(f"/devices/{tag}/dispose", json={**record, "performed_on": "2030-01-01"})
    assert future.status_code == 422 and future.json()["errors"][0]["location"] == "body.sanitisation.performed_on"
    disposed = await admin.post(f"/devices/{tag}/dispose", json=record)
    assert disposed.status_code == 200 and disposed.json()["sanitisation"]["certificate_id"] == "CERT-77"
    closed = await writer.patch(f"/devices/{tag}", json={"applications": []})
    assert closed.status_code == 409
    await settle(app)
    assert announced(app, tag) == [
        "inventory.device.registered.v1", "inventory.device.state_changed.v1",
        "inventory.device.state_changed.v1", "inventory.device.retired.v1", "inventory.device.disposed.v1"]


async def test_list_filters_and_pages_through_everything_once(writer: httpx.AsyncClient) -> None:
    for n in range(1, 8):
        apps = ["AWARE Command and Control"] if n % 3 == 0 else []
        body = device_body(f"MPS-D-0002{n:02d}", applications=apps)
        if n % 2 == 0:
            body["os"] = {"family": "windows", "version": "7"}
        await writer.post("/devices", json=body)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3, "os_family": "windows"}
        if cursor:
            params["cursor"] = cursor
        page = (await writer.get("/devices", params=params)).json()
        seen += [d["asset_tag"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"MPS-D-0002{n:02d}" for n in range(1, 8)]
    win7 = (await writer.get("/devices", params={"os_version": "7"})).json()["items"]
    assert [d["asset_tag"] for d in win7] == ["MPS-D-000202", "MPS-D-000204", "MPS-D-000206"]
    aware = (await writer.get("/devices", params={"application": "AWARE Command and Control"})).json()
    assert [d["asset_tag"] for d in aware["items"]] == ["MPS-D-000203", "MPS-D-000206"]
    assert (await writer.get("/devices", params={"state": "retired"})).json()["items"] == []
    assert (await writer.get("/devices", params={"kind": "toaster"})).status_code == 422
    assert (await writer.get("/devices", params={"cursor": "%%%"})).status_code == 422
    assert (await writer.get("/devices", params={"limit": 5000})).status_code == 422


async def test_csv_import_stores_good_rows_reports_bad_ones_and_is_safe_twice(
        app: FastAPI, writer: httpx.AsyncClient) -> None:
    rows = [
        CSV_HEADER,
        csv_line("MPS-D-000301"),                                   # line 2: good
        csv_line("MPS-D-000302", os_version="XP-ish"),              # line 3: unknown OS
        csv_line("MPS-D-000303", ram_mb="two gigs"),                # line 4: wrong type
        csv_line("MPS-D-000301"),                                   # line 5: repeats line 2
        csv_line("MPS-D-000304") + ",extra",                        # line 6: too many values
        csv_line("MPS-D-000305", borough="Gotham"),                 # line 7: unknown borough
        csv_line("MPS-D-000306", kind="body_worn_camera"),          # line 8: camera on windows
        csv_line("MPS-D-000307"),                                   # line 9: good
    ]
    body = "\n".join(rows) + "\n"
    first = await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["received"], report["created"], report["rejected"]) == (8, 2, 6)
    by_line = {e["line"]: e for e in report["errors"]}
    assert set(by_line) == {3, 4, 5, 6, 7, 8}
    assert by_line[3]["field"] == "os_version" and "XP-ish" in by_line[3]["reason"]
    assert by_line[4]["field"] == "ram_mb"
    assert by_line[5]["field"] == "asset_tag" and "line 2" in by_line[5]["reason"]
    assert "values" in by_line[6]["reason"]
    assert by_line[7]["field"] == "borough"
    assert "cannot run windows" in by_line[8]["reason"]
    again = (await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})).json()
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 0, 2, 6)
    changed = body.replace(csv_line("MPS-D-000307"), csv_line("MPS-D-000307", os_version="8.1"))
    third = (await writer.post("/devices/import", content=changed, headers={"Content-Type": "text/csv"})).json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 1)
    assert announced(app, "MPS-D-000301") == ["inventory.device.registered.v1"]
    assert announced(app, "MPS-D-000307") == ["inventory.device.registered.v1", "inventory.device.updated.v1"]
    assert (await writer.get("/devices/MPS-D-000302")).status_code == 404


async def test_json_lines_import_reports_unparseable_lines(writer: httpx.AsyncClient) -> None:
    lines = [json.dumps(device_body("MPS-D-000401")), "{not json", "[1, 2]",
             json.dumps(device_body("MPS-D-000402", applications="CRIS"))]
    answer = await writer.post("/devices/import", content="\n".join(lines),
                               headers={"Content-Type": "application/x-ndjson"})
    report = answer.json()
    assert (report["created"], report["rejected"]) == (1, 3)
    assert [e["line"] for e in report["errors"]] == [2, 3, 4]
    assert report["errors"][2]["field"] == "applications"


async def test_import_refuses_what_it_cannot_read(writer: httpx.AsyncClient) -> None:
    wrong_type = await writer.post("/devices/import", content="x", headers={"Content-Type": "application/pdf"})
    assert wrong_type.status_code == 415
    no_header = await writer.post("/devices/import", content="a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert no_header.status_code == 422 and "lacks column" in no_header.json()["detail"]
    not_utf8 = await writer.post("/devices/import", content=b"\xff\xfe\x00", headers={"Content-Type": "text/csv"})
    assert not_utf8.status_code == 422


async def test_an_oversized_body_is_refused_whole(app: FastAPI, writer: httpx.AsyncClient) -> None:
    rows = [CSV_HEADER] + [csv_line(f"MPS-D-{n:06d}") for n in range(500_000, 515_000)]
    body = "\n".join(rows)
    assert len(body) > app.state.runtime.settings.max_request_bytes
    answer = await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 413 and answer.json()["type"] == "/problems/payload-too-large"
    assert (await writer.get("/devices", params={"limit": 1})).json()["items"] == []


async def test_health_and_metrics(anonymous: httpx.AsyncClient, writer: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/health/live")).json() == {"status": "live"}
    ready = await anonymous.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "bus": "ok"}
    await writer.get("/devices/MPS-D-999999")
    text = (await anonymous.get("/metrics")).text
    expected = ('http_requests_total{method="GET",route="/devices/{asset_tag}",'
                'service="estate-platform",status="404"}')
    assert expected in text


async def test_an_over_long_csv_value_rejects_its_row_and_the_others_are_stored(writer: httpx.AsyncClient) -> None:
    long_row = csv_line("MPS-D-000301").replace("Territorial Policing", '"' + "u" * 131_073 + '\nunit"')
    body = "\n".join([CSV_HEADER, csv_line("MPS-D-000300"), long_row, csv_line("MPS-D-000302")]) + "\n"
    answer = await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["created"], report["rejected"]) == (2, 1)
    assert [(e["line"], e["asset_tag"], e["field"]) for e in report["errors"]] == [(3, "MPS-D-000301", "unit")]
    assert (await writer.get("/devices/MPS-D-000302")).status_code == 200
