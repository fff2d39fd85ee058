"""The programme end to end on real Kafka and FerretDB, through all four services (each its own
app in a uvicorn server of its own): a small estate built here is imported into inventory;
migration assesses it under a policy set through its API; the replacement needs become drafts
in procurement, which are submitted, approved, ordered under the sample devices call-off
(copied under this run's own framework and contract ids) and delivered
to the sites; migration pairs each new device with an old one and inventory retires the old
ones; some are disposed of with a sanitisation record (through migration, or inventory
directly); a wave migrates the upgradeable devices through every saga step; and reporting's
figures equal the counts computed here from the inputs. Replay equals live at the end.

The topics are shared with every earlier test on the broker: inventory, migration and
procurement start at their end (they act on what they read); reporting reads them from the
start (a replay reads everything, so live must too) and its figures are compared as changes
from a settled baseline (the boroughs are real ones: inventory knows London's), or on the one
row only this test writes (its blocker)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts.registry import EVENT_TYPES
from services import registry
from services.migration.sample_policy import sample_policy
from services.procurement.sample_data import REPLACEMENT_FRAMEWORK, frameworks, sample_contracts
from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.integration.conftest import client, eventually, running
from tests.integration.groups import begin_at_end
from tests.samples import device_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MIGRATION_FAST = {"load_sample_policy": False, "wave_interval_s": 0.2, "executor_failure_rate": 0.0,
                  "executor_step_duration_s": 0.0}
UNIT_PRICE = {"desktop": 549_00, "laptop": 899_00}
MODEL = {"desktop": "Dell OptiPlex 9020", "laptop": "Dell Latitude E7450"}
NEW_HARDWARE = {"cpu_model": "Core i5-4590", "cpu_arch": "x64", "cpu_cores": 4, "ram_mb": 8192, "disk_gb": 256,
                "tpm": "2.0", "firmware": "uefi"}
PENCE = 100
# Per borough: how many devices of each readiness outcome (the estate's shape).
SHAPE = {
    "Camden": {"upgrade_in_place": 8, "replace": 2, "dispose": 1, "blocked": 3, "already_compliant": 3},
    "Hackney": {"upgrade_in_place": 6, "replace": 1, "dispose": 2, "blocked": 2, "already_compliant": 2},
    "Lambeth": {"upgrade_in_place": 5, "replace": 2, "dispose": 1, "blocked": 2, "already_compliant": 3},
}
OUTCOMES = ("upgrade_in_place", "replace", "dispose", "blocked", "already_compliant")


@dataclass
class Planned:
    """One device of the estate as built here, with the outcome its facts call for."""

    tag: str
    outcome: str
    borough: str
    site: str
    kind: str
    body: dict[str, Any]
    blockers: list[str] = field(default_factory=list)

    @property
    def replacement_kind(self) -> str:
        """What replaces it: a device of its own kind if below the minimum, the policy's
        replacement kind (laptop) if it cannot run the target at all."""
        return self.kind if self.outcome == "replace" else "laptop"


def build_estate(marker: str, blocker: str) -> list[Planned]:
    """The estate: for each borough and outcome, devices whose facts give that outcome under
    the sample policy with ``blocker`` catalogued as incompatible. One blocked device has a
    second incompatible application (it counts for both, but fixing ``blocker`` alone does not
    unblock it). Dispose devices alternate desktop and laptop."""
    base = device_body()
    hardware = base["hardware"]
    estate: list[Planned] = []
    blocked_twice = False
    for borough, counts in SHAPE.items():
        site = f"E2E {marker} {borough} Police Station"
        location = {"site": site, "borough": borough, "unit": "Territorial Policing"}
        for outcome in OUTCOMES:
            for i in range(counts[outcome]):
                tag = f"E2E-{marker}-{borough[0]}{outcome[:2].upper()}{i:02d}"
                kind = "laptop" if outcome == "dispose" and len(estate) % 2 else "desktop"
                body = device_body(tag, kind=kind, location=location)
                blockers: list[str] = []
                if outcome == "replace":
                    body["hardware"] = {**hardware, "disk_gb": 40}  # runs 8.1, below the 80 GB minimum
                elif outcome == "dispose":
                    body["hardware"] = {**hardware, "ram_mb": 1024}  # 8.1 needs 2 GB
                elif outcome == "blocked":
                    blockers = [blocker]
                    if not blocked_twice:
                        blockers.append("NSPIS Custody")
                        blocked_twice = True
                    body["applications"] = [*base["applications"], *blockers]
                elif outcome == "already_compliant":
                    body["os"] = {"family": "windows", "version": "8.1"}
                estate.append(Planned(tag, outcome, borough, site, kind, body, blockers))
    return estate


@asynccontextmanager
async def platform(settings: Settings, replacement_framework: str) -> AsyncIterator[dict[str, str]]:
    """The four services, each its own app and uvicorn server; reporting first, so the test can
    take its baseline before the others publish anything. Inventory, migration and procurement
    begin at the end of every event topic. Procurement drafts replacements under
    ``replacement_framework``: its request ids (``PR-<framework>-<kind>-001``) are then this
    run's own (under Sprint ii they would be the ids earlier tests' purchases had on the same
    topics, whose versions reporting would take this run's events to be stale copies of)."""
    topics = sorted({e.topic for e in EVENT_TYPES.values()})
    for name in ("inventory", "migration", "procurement"):
        await begin_at_end(settings.kafka_bootstrap, settings.consumer_group_prefix + name, topics)
    overrides: dict[str, dict[str, Any]] = {"migration": MIGRATION_FAST,
                                            "procurement": {"replacement_framework": replacement_framework}}
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(running(settings, name, **overrides.get(name, {})))
                for name in registry.SERVICES}
        yield urls


async def ok(answer: Awaitable[httpx.Response], status: int = 200) -> Any:
    got = await answer
    assert got.status_code == status, f"{got.request.method} {got.request.url.path}: {got.status_code} {got.text}"
    return got.json()


async def all_pages(http: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await ok(http.get(path, params={"limit": 500, **({"cursor": cursor} if cursor else {})}))
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def settled_replay(admin: httpx.AsyncClient, what: str) -> dict[str, Any]:
    """Replay until it equals live (live has caught up with everything on the topics)."""
    last: dict[str, Any] = {}

    async def equal() -> bool:
        nonlocal last
        last = await ok(admin.post("/reporting/replay"))
        return bool(last["equal_to_live"])
    try:
        await eventually(equal, what, timeout=120)
    except AssertionError as error:
        raise AssertionError(f"{error}; differences: {last.get('differences')}") from None
    return last


async def figures(reporting: httpx.AsyncClient) -> dict[str, Any]:
    """The summary and the tables this test checks, keyed for comparison."""
    summary = await ok(reporting.get("/reporting/summary"))
    tables = {name: (await ok(reporting.get(f"/reporting/tables/{name}"))) for name in
              ("readiness", "blockers", "boroughs", "spend", "deliveries")}
    return {
        "summary": summary,
        "readiness": {r[0]: r[1] for r in tables["readiness"]["rows"]},
        "blockers": {r[1]: dict(zip(tables["blockers"]["columns"], r, strict=True))
                     for r in tables["blockers"]["rows"]},
        "boroughs": {r[0]: dict(zip(tables["boroughs"]["columns"], r, strict=True))
                     for r in tables["boroughs"]["rows"]},
        "spend": {(r[0], r[1]): dict(zip(tables["spend"]["columns"], r, strict=True))
                  for r in tables["spend"]["rows"]},
        "deliveries": {r[0]: dict(zip(tables["deliveries"]["columns"], r, strict=True))
                       for r in tables["deliveries"]["rows"]},
    }


def sanitisation(tag: str) -> dict[str, str]:
    return {"method": "NIST 800-88 purge", "certificate_id": f"CERT-{tag}",
            "performed_on": datetime.now(UTC).date().isoformat(), "operator": "Secure Disposal Ltd"}


async def test_the_programme_end_to_end_gives_the_figures_computed_from_the_inputs(settings: Settings) -> None:
    marker = uuid.uuid4().hex[:8].upper()
    blocker = f"E2E Custody {marker}"
    estate = build_estate(marker, blocker)
    by_tag = {d.tag: d for d in estate}
    of = {o: [d for d in estate if d.outcome == o] for o in OUTCOMES}
    boroughs = sorted({d.borough for d in estate})
    replaced = of["replace"] + of["dispose"]  # each gets a new device, then is retired
    # Of the retired devices: some disposed of through migration's disposal (it records the
    # sanitisation, inventory disposes), some through inventory's own dispose; the rest stay retired.
    via_migration, via_inventory = replaced[0::3], replaced[1::3]
    disposed = {d.tag for d in via_migration + via_inventory}
    needed = Counter(d.replacement_kind for d in replaced)
    # The sample Sprint ii framework and its devices call-off, under this run's own ids.
    framework_id, framework = f"E2E-{marker}", f"Sprint ii (E2E {marker})"
    [sprint] = [f for f in frameworks() if f.framework_id == REPLACEMENT_FRAMEWORK]
    [devices_calloff] = [c for c in sample_contracts(datetime.now(UTC).date()) if c.contract_id == "CO-DEVICES"]
    calloff = devices_calloff.model_copy(update={"contract_id": f"CO-E2E-{marker}", "framework_id": framework_id})

    async with platform(settings, framework_id) as urls, \
            client(urls["reporting"], settings, role=Role.ADMIN) as reporting, \
            client(urls["inventory"], settings) as inventory, \
            client(urls["inventory"], settings, role=Role.ADMIN) as inventory_admin, \
            client(urls["migration"], settings) as migration, \
            client(urls["migration"], settings, role=Role.ADMIN) as migration_admin, \
            client(urls["procurement"], settings, "buyer@met") as buyer, \
            client(urls["procurement"], settings, role=Role.ADMIN) as procurement_admin, \
            client(urls["procurement"], settings, "approver@met") as approver:
        await settled_replay(reporting, "reporting catching up with the topics before the test")
        before = await figures(reporting)

        # -- the framework and call-off, the policy, then the estate -------------------------------------
        await ok(procurement_admin.post("/procurement/frameworks", json=sprint.model_copy(
            update={"framework_id": framework_id, "name": framework}).model_dump(mode="json")), 201)
        await ok(buyer.post("/procurement/contracts", json=calloff.model_dump(mode="json")), 201)
        spec = sample_policy().model_dump(mode="json")
        spec["catalogue"][blocker] = {"compatibility": "incompatible", "owner": "Custody Systems",
                                      "expected_fix": None, "critical": True}
        policy = await ok(migration_admin.put("/migration/policy", json=spec))
        assert policy["policy"]["target"] == {"family": "windows", "version": "8.1"}
        imported = await ok(inventory.post("/devices/import", content="\n".join(json.dumps(d.body) for d in estate),
                                           headers={"Content-Type": "application/x-ndjson"}))
        assert (imported["created"], imported["rejected"]) == (len(estate), 0), imported.get("errors", imported)

        # -- migration assesses them -------------------------------------------------------------------
        records: dict[str, dict[str, Any]] = {}

        async def all_assessed() -> bool:
            records.clear()
            records.update({r["asset_tag"]: r for r in await all_pages(migration, "/migration/devices")
                            if r["asset_tag"] in by_tag and r.get("readiness")})
            return len(records) == len(estate)
        await eventually(all_assessed, f"migration assessing the {len(estate)} imported devices")
        outcomes = Counter(r["readiness"]["outcome"] for r in records.values())
        assert outcomes == Counter({o: len(of[o]) for o in OUTCOMES}), outcomes
        wrong = {t: r["readiness"]["outcome"] for t, r in records.items()
                 if r["readiness"]["outcome"] != by_tag[t].outcome}
        assert not wrong, f"devices assessed otherwise than their facts call for: {wrong}"
        for d in of["blocked"]:
            named = sorted(b["name"] for b in records[d.tag]["readiness"]["blocking_applications"])
            assert named == sorted(d.blockers), (d.tag, named)

        # -- replacement needs reach procurement as drafts; submit, approve, order -----------------------
        drafts: dict[str, dict[str, Any]] = {}

        async def needs_drafted() -> bool:
            found = (await ok(buyer.get("/procurement/purchase-requests", params={"state": "draft"})))["items"]
            drafts.clear()
            drafts.update({r["kind"]: r for r in found})
            return {k: r["quantity"] for k, r in drafts.items()} == dict(needed)
        await eventually(needs_drafted, f"the replacement needs becoming drafts of {dict(needed)}")
        for kind, draft in drafts.items():
            replaces = sorted(n["need_id"].removeprefix("NEED-") for n in draft["needs"])  # one need a device
            assert replaces == sorted(d.tag for d in replaced if d.replacement_kind == kind), (kind, replaces)

        ordered: dict[str, dict[str, Any]] = {}
        for kind, draft in sorted(drafts.items()):
            rid = draft["request_id"]
            submitted = await buyer.post(f"/procurement/purchase-requests/{rid}/submit", json={
                "model": MODEL[kind], "unit_price_pence": UNIT_PRICE[kind], "contract_id": calloff.contract_id,
                "quantity": needed[kind]})
            assert submitted.status_code == 200, submitted.text
            approved = await ok(approver.post(f"/procurement/purchase-requests/{rid}/approve", json={},
                                              headers={"If-Match": submitted.headers["ETag"]}))
            assert approved["state"] == "approved", approved
            ordered[kind] = await ok(buyer.post(f"/procurement/purchase-requests/{rid}/order"))
            assert ordered[kind]["state"] == "ordered", ordered[kind]
            assert ordered[kind]["value_pence"] == UNIT_PRICE[kind] * needed[kind], ordered[kind]

        # -- deliveries to the sites: each new device replaces one awaiting it ------------------------------
        new_tags: dict[str, str] = {}  # new device -> borough
        delivery_notes: list[str] = []
        for kind, request in sorted(ordered.items()):
            for borough in boroughs:
                here = [d for d in replaced if d.replacement_kind == kind and d.borough == borough]
                if not here:
                    continue
                tags = [f"E2E-{marker}-N{kind[0].upper()}{borough.split()[-1][0]}{i}" for i in range(len(here))]
                new_tags.update((t, borough) for t in tags)
                location = {"site": here[0].site, "borough": borough, "unit": "Territorial Policing"}
                note = f"DN-{marker}-{kind}-{borough}"
                delivery_notes.append(note)
                await ok(buyer.post(f"/procurement/purchase-requests/{request['request_id']}/deliveries", json={
                    "delivery_id": note, "location": location,
                    "devices": [{"asset_tag": t, "serial_number": f"SN-{t}", "os": {"family": "windows",
                                 "version": "8.1"}, "hardware": {"model": MODEL[kind], **NEW_HARDWARE}}
                                for t in tags]}))
        for request in ordered.values():
            final = await ok(buyer.get(f"/procurement/purchase-requests/{request['request_id']}"))
            assert final["state"] == "delivered", final

        async def old_retired_new_in_service() -> bool:
            olds = [(await ok(inventory.get(f"/devices/{d.tag}")))["state"] for d in replaced]
            news = [await inventory.get(f"/devices/{t}") for t in new_tags]
            return set(olds) == {"retired"} and all(n.status_code == 200 for n in news)
        await eventually(old_retired_new_in_service,
                         "inventory retiring every replaced device and registering the new ones")
        pairs: dict[str, str] = {}
        for d in replaced:
            record = await ok(migration.get(f"/migration/devices/{d.tag}"))
            assert record["replaced_by"] in new_tags, (d.tag, record["replaced_by"])
            assert new_tags[record["replaced_by"]] == d.borough, "a new device replaced one at another site"
            pairs[d.tag] = record["replaced_by"]
        assert len(set(pairs.values())) == len(replaced), f"a new device paired twice: {pairs}"

        # -- disposal with a sanitisation record --------------------------------------------------------------
        for d in via_migration:
            await ok(migration_admin.post(f"/migration/devices/{d.tag}/disposal", json=sanitisation(d.tag)))
        for d in via_inventory:
            device = await ok(inventory_admin.post(f"/devices/{d.tag}/dispose", json=sanitisation(d.tag)))
            assert device["state"] == "disposed", device

        async def disposed_in_inventory() -> bool:
            states = {d.tag: (await ok(inventory.get(f"/devices/{d.tag}")))["state"] for d in replaced}
            return states == {t: "disposed" if t in disposed else "retired" for t in states}
        await eventually(disposed_in_inventory, "inventory disposing of the sanitised devices", timeout=180)

        # -- a wave over the sites migrates the upgradeable devices ----------------------------------------
        upgradeable = sorted(d.tag for d in of["upgrade_in_place"])
        planned = await ok(migration.post("/migration/waves", json={
            "name": f"E2E {marker}", "sites": sorted({d.site for d in estate}),
            "start_date": datetime.now(UTC).date().isoformat(), "daily_capacity": len(upgradeable)}), 201)
        wave_id = planned["wave"]["wave_id"]
        assert sorted(planned["wave"]["devices"]) == upgradeable, "only the devices ready to upgrade join the wave"
        wave: dict[str, Any] = {}

        async def wave_completed() -> bool:
            nonlocal wave
            wave = await ok(migration.get(f"/migration/waves/{wave_id}"))
            return bool(wave["wave"]["state"] == "completed")
        await eventually(wave_completed, f"wave {wave_id} completing")
        assert wave["progress"]["migrated"] == len(upgradeable) and wave["progress"]["success_rate"] == 1.0, wave
        for tag in upgradeable:
            saga = (await ok(migration.get(f"/migration/devices/{tag}")))["saga"]
            assert saga["state"] == "migrated" and saga["next_step"] is None, (tag, saga)

        async def migrated_in_inventory() -> bool:
            devices = [await ok(inventory.get(f"/devices/{t}")) for t in upgradeable]
            return all(d["state"] == "migrated" and d["os"] == {"family": "windows", "version": "8.1"}
                       for d in devices)
        await eventually(migrated_in_inventory, "inventory showing the migrated devices on Windows 8.1")

        # -- reporting's figures against the counts computed from the inputs -----------------------------------
        n_blocked, n_upgraded = len(of["blocked"]), len(upgradeable)
        n_retired, n_disposed = len(replaced) - len(disposed), len(disposed)
        spent = {k: UNIT_PRICE[k] * n / PENCE for k, n in needed.items()}
        expected_summary = {  # changes from the baseline
            "devices": len(estate) - len(replaced) + len(new_tags),
            "legacy_remaining": n_blocked,  # every XP device left is blocked
            "legacy_at_start": len(estate) - len(of["already_compliant"]),
            "migrated": n_upgraded, "retired": n_retired, "disposed": n_disposed,
            "spend_committed_gbp": sum(spent.values()),
        }
        expected_readiness = {  # after the wave, migrated devices are reassessed as compliant; new ones are too
            "upgrade_in_place": 0, "replace": len(of["replace"]), "dispose": len(of["dispose"]),
            "blocked": n_blocked,
            "already_compliant": len(of["already_compliant"]) + n_upgraded + len(new_tags),
        }
        expected_boroughs = {}
        for borough in boroughs:
            mine = [d for d in estate if d.borough == borough]
            gone = [d for d in mine if d in replaced]
            expected_boroughs[borough] = {
                "devices": len(mine) - len(gone) + sum(1 for b in new_tags.values() if b == borough),
                "legacy": sum(1 for d in mine if d.outcome == "blocked"),
                "legacy_at_start": sum(1 for d in mine if d.outcome != "already_compliant"),
                "migrated": sum(1 for d in mine if d.outcome == "upgrade_in_place"),
                "retired": sum(1 for d in gone if d.tag not in disposed),
                "disposed": sum(1 for d in gone if d.tag in disposed)}
        assert {r["framework_name"] for r in ordered.values()} == {framework}

        def summary_change(now: dict[str, Any]) -> dict[str, Any]:
            return {k: round(now["summary"][k] - before["summary"][k], 2) for k in expected_summary}

        def readiness_change(now: dict[str, Any]) -> dict[str, int]:
            return {o: now["readiness"].get(o, 0) - before["readiness"].get(o, 0) for o in expected_readiness}

        def borough_rows(now: dict[str, Any]) -> dict[str, dict[str, int]]:
            return {b: {k: now["boroughs"].get(b, {}).get(k, 0) - before["boroughs"].get(b, {}).get(k, 0)
                        for k in expected_boroughs[b]} for b in boroughs}

        now: dict[str, Any] = {}

        async def reporting_caught_up() -> bool:
            nonlocal now
            now = await figures(reporting)
            return (summary_change(now) == expected_summary and readiness_change(now) == expected_readiness
                    and borough_rows(now) == expected_boroughs)
        try:
            await eventually(reporting_caught_up, "reporting showing the figures computed from the inputs")
        except AssertionError:
            assert summary_change(now) == expected_summary, "summary (change from the baseline)"
            assert readiness_change(now) == expected_readiness, "readiness table (change from the baseline)"
            assert borough_rows(now) == expected_boroughs, "boroughs table (change from the baseline)"
            raise

        row = now["blockers"].get(blocker)
        assert row is not None, f"the blockers table does not name {blocker}: {list(now['blockers'])}"
        assert (row["blocked_devices"], row["unblocks_devices"]) == (n_blocked, n_blocked - 1), row
        assert row["unblocks_sites"] == len({d.site for d in of["blocked"] if d.blockers == [blocker]}), row

        spend = now["spend"].get(("framework", framework))  # this run's framework: its row is all this run's
        assert spend == {"by": "framework", "name": framework, "committed_gbp": sum(spent.values()),
                         "delivered_gbp": sum(spent.values()), "contracted_gbp": calloff.value_pence / PENCE,
                         "pipeline_gbp": 0.0, "orders": len(ordered), "contracts": 1}, spend
        deliveries = now["deliveries"].get(framework)
        assert deliveries == {"framework": framework, "deliveries": len(delivery_notes), "devices": len(new_tags),
                              "value_gbp": sum(spent.values())}, deliveries

        await settled_replay(reporting, "the replay equalling the live read model at the end")

