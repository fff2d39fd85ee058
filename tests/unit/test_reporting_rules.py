"""Reporting's rules for procurement's contracts and deliveries, migration's per-device saga,
its waves and its policy, and the spend share (no double count of contracts)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.reporting.domain import projector
from services.reporting.handlers import ReportingConfig, ReportingHandlers
from services.reporting.projection import Fold
from services.reporting.replay import MemoryLog
from services.reporting.store import ReadModel
from services.runtime.clock import FixedClock
from services.runtime.store.memory import MemoryStore

T0 = datetime(2015, 8, 3, 9, tzinfo=UTC)
Event = tuple[str, str, dict[str, Any], datetime]


def event(type_: str, data: dict[str, Any], at: datetime = T0, event_id: str | None = None) -> Event:
    return event_id or str(uuid.uuid4()), type_, data, at


def fold(events: list[Event]) -> Fold:
    f = Fold(projector())
    f.apply_all(events)
    return f


def contract(version: int, value: int, end: str, *, framework: str = "G-Cloud 7", cls: str = "legacy") -> Event:
    return event(f"procurement.contract.{'awarded' if version == 1 else 'varied'}.v1", {"contract": {
        "contract_id": "C-1", "value_pence": value, "end": end, "framework_name": framework,
        "classification": cls, "category": "support", "version": version}, "awarded_at": T0.isoformat()})


def test_a_varied_contract_moves_its_value_and_expiry_once() -> None:
    first = contract(1, 500_000_00, "2016-03-31")
    varied = contract(2, 700_000_00, "2017-03-31")
    f = fold([first, varied, first, varied])  # redelivered, and the older version late
    assert f.dimensions["spend"] == {"contracted_pence": 700_000_00}
    assert f.dimensions["spend:framework:G-Cloud 7"] == {"contracts": 1, "contracted_pence": 700_000_00}
    assert "contracts:end:2016-03" not in {d for d, c in f.dimensions.items() if c}
    assert f.dimensions["contracts:end:2017-03"] == {"contracts": 1, "contracted_pence": 700_000_00}


def delivery(delivery_id: str, devices: int, value: int) -> Event:
    return event("procurement.delivery.received.v1", {
        "delivery_id": delivery_id, "framework_name": "Sprint ii", "devices": [{"n": i} for i in range(devices)],
        "value_pence": value, "received_at": T0.isoformat()}, event_id=f"evt-{delivery_id}")


def test_deliveries_count_once_each() -> None:
    f = fold([delivery("D-1", 3, 3_000_00), delivery("D-2", 2, 2_000_00), delivery("D-1", 3, 3_000_00)])
    assert f.dimensions["deliveries:framework:Sprint ii"] == {"deliveries": 2, "devices": 5, "value_pence": 5_000_00}
    assert f.dimensions["deliveries"] == {"deliveries": 2, "devices": 5, "value_pence": 5_000_00}


def test_what_is_delivered_is_delivered_spend_by_framework_category_and_class() -> None:
    """Procurement announces no purchase event after the order: the deliveries carry what is
    delivered (by framework, category and legacy/modern), each counted once."""
    ordered = event("procurement.purchase.ordered.v1", {"request": {
        "request_id": "PR-1", "state": "ordered", "value_pence": 5 * 899_00, "framework_name": "Sprint ii",
        "category": "end_user_devices", "classification": "modern", "version": 4, "updated_at": T0.isoformat()}})

    def part(delivery_id: str, devices: int) -> Event:
        return event("procurement.delivery.received.v1", {
            "delivery_id": delivery_id, "framework": "SPRINT-II", "framework_name": "Sprint ii",
            "category": "end_user_devices", "classification": "modern", "request_id": "PR-1",
            "devices": [{"n": i} for i in range(devices)], "value_pence": devices * 899_00,
            "received_at": T0.isoformat()}, event_id=f"evt-{delivery_id}")

    first, second = part("D-1", 3), part("D-2", 2)
    f = fold([ordered, first, second, first])  # the first delivery redelivered
    both = {"committed_pence": 5 * 899_00, "delivered_pence": 5 * 899_00, "orders": 1}
    assert f.dimensions["spend:framework:Sprint ii"] == both
    assert f.dimensions["spend:category:end_user_devices"] == both
    assert f.dimensions["spend:class:modern"] == both
    assert f.dimensions["spend"] == both
    assert fold([part("D-1", 3)]).dimensions["spend:framework:Sprint ii"] == {"delivered_pence": 3 * 899_00}


def saga(type_: str, tag: str, wave: str = "W1", at: datetime = T0, **extra: Any) -> Event:
    return event(f"migration.device.{type_}.v1", {"asset_tag": tag, "wave_id": wave, "kind": "desktop",
                                                   "site": "Camden Police Station", "borough": "Camden",
                                                   "occurred_at": at.isoformat(), **extra}, at)


def test_a_device_saga_moves_through_its_wave_and_counts_failures() -> None:
    failed = saga("step_failed", "MPS-1", step="deploy_os", attempt=1, reason="disk", will_retry=True,
                  duration_s=1.0)
    events = [saga("scheduled", "MPS-1"), saga("scheduled", "MPS-2"), saga("started", "MPS-1"), failed, failed,
              saga("step_retried", "MPS-1", step="deploy_os", attempt=2), saga("migrated", "MPS-1"),
              saga("started", "MPS-2"),
              saga("step_failed", "MPS-2", step="verify", attempt=3, reason="boot", will_retry=False, duration_s=1),
              saga("rolled_back", "MPS-2", failed_step="verify", reason="boot", attempts=3)]
    f = fold(events)
    assert f.dimensions["wave:W1"] == {"devices": 2, "migrated": 1, "failed": 1}
    assert f.dimensions["saga"] == {"failed_step:deploy_os": 1, "failed_step:verify": 1, "rolled_back": 1}


def test_an_unscheduled_device_leaves_its_wave() -> None:
    f = fold([saga("scheduled", "MPS-1"), saga("unscheduled", "MPS-1", reason="wave cancelled")])
    assert not f.dimensions.get("wave:W1")


def wave_event(type_: str, state: str | None, **extra: Any) -> Event:
    data = {"wave_id": "W1", "progress": {"devices": 0, "scheduled": 0, "in_progress": 0, "migrated": 0,
                                          "failed": 0, "success_rate": 0}, "occurred_at": T0.isoformat(), **extra}
    if state:
        data["state"] = state
    return event(f"migration.wave.{type_}.v1", data)


def test_waves_by_state_and_their_plan() -> None:
    planned = wave_event("planned", None, name="Camden", start_date="2015-08-10", daily_capacity=40,
                         expected_end="2015-09-30")
    events = [planned, wave_event("started", "running"), wave_event("paused", "paused", reason="incident"),
              wave_event("resumed", "running", expected_end="2015-10-15")]
    f = fold([*events, events[1]])  # the started event redelivered changes nothing
    assert f.dimensions["waves"] == {"running": 1, "waves": 1}
    w = f.dimensions["wave:W1"]
    assert w["state:running"] == 1 and w["daily_capacity"] == 40
    assert date.fromordinal(int(w["expected_end_ordinal"])) == date(2015, 10, 15)


def policy(version: int, target: str) -> Event:
    return event("migration.policy.changed.v1", {
        "version": version, "target": {"family": "windows", "version": target}, "target_support_ends": "2023-01-10",
        "warning": None, "changed": ["target"], "scope": ["desktop"], "min_ram_mb": 2048, "min_disk_gb": 20,
        "min_cpu_cores": 1, "catalogue_size": 12, "blocking_applications": ["CRIS"], "occurred_at": T0.isoformat()})


def test_the_policy_in_force_is_the_latest_version() -> None:
    f = fold([policy(1, "8.1"), policy(2, "10"), policy(1, "8.1")])
    assert f.dimensions["policy:target:windows:10"] == {"in_force": 1}
    assert not f.dimensions.get("policy:target:windows:8.1")
    assert f.dimensions["policy"]["version"] == 2
    assert f.dimensions["policy"]["blocking_applications"] == 1


def purchase(request_id: str, value: int, cls: str) -> Event:
    return event("procurement.purchase.ordered.v1", {"request": {
        "request_id": request_id, "state": "ordered", "value_pence": value, "framework_name": "G-Cloud 7",
        "category": "support", "classification": cls, "version": 3, "updated_at": T0.isoformat()}})


async def test_the_spend_share_counts_orders_not_contracts_too() -> None:
    """A purchase ordered under a contract: spend is the order; the contract's value is shown
    as a commitment apart, not added (else the legacy share would count it twice)."""
    store = MemoryStore()
    model = ReadModel(store)
    p = projector()
    events = [contract(1, 900_000_00, "2017-03-31", cls="legacy"), purchase("PR-1", 300_000_00, "legacy"),
              purchase("PR-2", 100_000_00, "modern")]
    await model.apply_batch(p, "t|0", list(enumerate(events)))
    handlers = ReportingHandlers(model, p, FixedClock(T0 + timedelta(days=1)), ReportingConfig(),
                                 replay_model=ReadModel(store, "replay"), log=lambda: MemoryLog(None),  # type: ignore[arg-type]
                                 topics=())
    summary = await handlers.summary()
    assert summary.spend_committed_gbp == 400_000
    assert summary.spend_contracted_gbp == 900_000
    assert summary.legacy_spend_share == 0.75
