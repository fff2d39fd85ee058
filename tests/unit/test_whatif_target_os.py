"""What-if with a different target OS, pure: which remaining legacy devices each target can take
in place and which need a new device (the lifecycle table's needs per OS and the force's
minimum), what the difference costs, how it moves the dates, and each target's end of support."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.reporting.domain import projector
from services.reporting.handlers import ReportingConfig, ReportingHandlers
from services.reporting.projection import Fold
from services.reporting.replay import MemoryLog
from services.reporting.retarget import Hardware, Minimum, OsNeeds, Retarget, hardware_key, minimum_for, plan, verdict
from services.reporting.store import ReadModel
from services.reporting.whatif import Changes, evaluate
from services.runtime.clock import FixedClock
from services.runtime.store.memory import MemoryStore
from tests.unit.test_whatif import SERIES, SETTINGS, run

WIN81 = OsNeeds("windows:8.1", date(2023, 1, 10), min_ram_mb=2048, min_disk_gb=20, architectures=frozenset({"x64"}))
WIN10 = OsNeeds("windows:10", date(2025, 10, 14), min_ram_mb=2048, min_disk_gb=32, architectures=frozenset({"x64"}))
WIN7 = OsNeeds("windows:7", date(2020, 1, 14), min_ram_mb=1024, min_disk_gb=16,
               architectures=frozenset({"x86", "x64"}))
FORCE = Minimum(ram_mb=2048, disk_gb=80, cpu_cores=2)

GROUPS = {
    Hardware("x86", 1, 1024, 40): 100,     # GX280: cannot run 8.1 or 10 at all; runs 7, below the force minimum
    Hardware("x64", 1, 1024, 80): 300,     # GX620: runs none of 8.1/10 (RAM); 7 yes, below the minimum
    Hardware("x64", 2, 2048, 160): 1000,   # dc7800: fine for all
    Hardware("x64", 2, 4096, 250): 500,    # 8000 Elite: fine for all
    Hardware("x64", 2, 2048, 25): 76,      # a small disk: runs 8.1 (20 GB), not 10 (32 GB)
}


def test_the_verdict_is_dispose_when_the_os_cannot_run_then_replace_below_the_minimum() -> None:
    assert verdict(Hardware("x86", 2, 4096, 250), WIN81, FORCE) == "dispose"      # architecture
    assert verdict(Hardware("x64", 2, 1024, 250), WIN81, FORCE) == "dispose"      # RAM the OS needs
    assert verdict(Hardware("x64", 2, 2048, 25), WIN10, Minimum()) == "dispose"  # disk the OS needs
    assert verdict(Hardware("x64", 2, 2048, 25), WIN81, Minimum()) == "upgrade_in_place"
    assert verdict(Hardware("x64", 1, 2048, 160), WIN81, FORCE) == "replace"      # cores below the minimum
    assert verdict(Hardware("x64", 2, 2048, 40), WIN81, FORCE) == "replace"       # disk below the minimum
    assert verdict(Hardware("x64", 2, 2048, 80), WIN81, FORCE) == "upgrade_in_place"
    assert verdict(Hardware("x86", 1, 1024, 40), WIN7, FORCE) == "replace"


def test_the_hardware_key_round_trips() -> None:
    hw = Hardware("x64", 2, 2048, 160)
    assert hardware_key("x64", 2, 2048, 160) == "x64:2:2048:160"
    assert Hardware.parse(hardware_key("x64", 2, 2048, 160)) == hw
    with pytest.raises(ValueError):
        Hardware.parse("x64:two:2048:160")


def test_the_force_minimum_is_raised_to_what_the_new_target_needs_and_kept_otherwise() -> None:
    assert minimum_for(Minimum(ram_mb=1024, disk_gb=20, cpu_cores=2), WIN10) == Minimum(2048, 32, 2)
    assert minimum_for(FORCE, WIN10) == FORCE
    assert minimum_for(FORCE, WIN10, Minimum(4096, 80, 2)) == Minimum(4096, 80, 2)  # given: as given


def test_each_target_splits_the_remaining_legacy_devices() -> None:
    p81 = plan(GROUPS, WIN81, FORCE)
    assert (p81.upgrade_in_place, p81.replace, p81.dispose) == (1500, 76, 400)
    assert p81.new_devices == 476 and p81.devices == 1976
    p10 = plan(GROUPS, WIN10, FORCE)
    assert (p10.upgrade_in_place, p10.replace, p10.dispose) == (1500, 0, 476)  # the small disks cannot run 10
    p10_4gb = plan(GROUPS, WIN10, Minimum(4096, 80, 2))
    assert (p10_4gb.upgrade_in_place, p10_4gb.replace, p10_4gb.dispose) == (500, 1000, 476)
    p7 = plan(GROUPS, WIN7, FORCE)
    assert (p7.upgrade_in_place, p7.replace, p7.dispose) == (1500, 476, 0)


def retarget(scenario_minimum: Minimum | None = None, price: float | None = 600.0, lead: int = 56,
             to: OsNeeds = WIN10) -> Retarget:
    return Retarget(baseline=plan(GROUPS, WIN81, FORCE),
                    scenario=plan(GROUPS, to, minimum_for(FORCE, to, scenario_minimum)),
                    device_price_gbp=price, lead_days=lead)


def test_more_new_devices_cost_the_budget_their_price_and_the_target_support_end_is_shown() -> None:
    base = run(Changes())
    result = evaluate(SERIES, {}, Changes(), committed_gbp=0.0, budget_gbp=1_000_000.0, settings=SETTINGS,
                      retarget=retarget(Minimum(4096, 80, 2)))
    assert result.baseline.new_devices_needed == 476 and result.scenario.new_devices_needed == 1476
    assert result.extra_new_devices == 1000
    # what buying each side's new devices costs at the price; the scenario is charged the difference
    assert result.baseline.new_devices_cost_gbp == 476 * 600.0
    assert result.scenario.new_devices_cost_gbp == 1476 * 600.0
    assert result.baseline.budget_remaining_gbp == 1_000_000.0
    assert result.scenario.budget_remaining_gbp == 1_000_000.0 - 600_000.0
    assert (result.baseline.target, result.scenario.target) == ("windows:8.1", "windows:10")
    assert result.baseline.target_support_ends == date(2023, 1, 10)
    assert result.scenario.target_support_ends == date(2025, 10, 14)
    # the burn-down finishes within the lead time's reach: the dates are the baseline's
    assert result.scenario.p50 == base.baseline.p50 == result.baseline.p50
    assert result.baseline.supported_days_after_p50 == (date(2023, 1, 10) - base.baseline.p50).days
    assert result.scenario.supported_days_after_p50 == (date(2025, 10, 14) - base.baseline.p50).days
    assert any("1000 more devices need a new device" in a for a in result.assumptions)


def test_the_extra_replacements_cannot_leave_before_they_arrive() -> None:
    as_of = SERIES[-1][0]
    base = run(Changes())
    assert base.baseline.p50 is not None and base.baseline.p50 < as_of + timedelta(days=300)
    result = evaluate(SERIES, {}, Changes(), committed_gbp=0.0, budget_gbp=1_000_000.0, settings=SETTINGS,
                      retarget=retarget(Minimum(4096, 80, 2), lead=300))
    assert result.scenario.p50 == result.scenario.p95 == as_of + timedelta(days=300)
    assert result.p50_earlier_by_days == -(as_of + timedelta(days=300) - base.baseline.p50).days
    assert as_of + timedelta(days=300) > SETTINGS.deadline and result.scenario.probability_by_deadline == 0.0
    assert result.baseline.probability_by_deadline == base.baseline.probability_by_deadline > 0.9


def test_fewer_new_devices_give_the_money_back_and_do_not_hurry_the_burn_down() -> None:
    result = evaluate(SERIES, {}, Changes(), committed_gbp=100_000.0, budget_gbp=1_000_000.0, settings=SETTINGS,
                      retarget=retarget(to=WIN7, lead=300))
    assert result.extra_new_devices == 0  # 7: the same 476 need new devices (replace, not dispose)
    cheaper = Retarget(baseline=plan(GROUPS, WIN81, FORCE), scenario=plan(GROUPS, WIN7, Minimum(1024, 16, 1)),
                       device_price_gbp=500.0, lead_days=300)
    result = evaluate(SERIES, {}, Changes(), committed_gbp=100_000.0, budget_gbp=1_000_000.0, settings=SETTINGS,
                      retarget=cheaper)
    assert cheaper.scenario.new_devices == 0 and result.extra_new_devices == -476
    assert result.scenario.budget_remaining_gbp == 900_000.0 + 476 * 500.0
    assert result.scenario.p50 == result.baseline.p50  # no lead-time floor when nothing more is bought


def test_without_a_price_the_count_is_given_and_the_money_left_alone() -> None:
    result = evaluate(SERIES, {}, Changes(), committed_gbp=0.0, budget_gbp=1_000_000.0, settings=SETTINGS,
                      retarget=retarget(Minimum(4096, 80, 2), price=None))
    assert result.extra_new_devices == 1000 and result.scenario.new_devices_cost_gbp is None
    assert result.scenario.budget_remaining_gbp == 1_000_000.0
    assert any("no price" in a for a in result.assumptions)


# -- what reporting reads from the events for it -------------------------------------------------

T0 = datetime(2015, 8, 3, 9, tzinfo=UTC)
Event = tuple[str, str, dict[str, Any], datetime]


def _device(tag: str, version: int, os: str, hw: tuple[str, int, int, int], state: str = "in_service") -> Event:
    arch, cores, ram, disk = hw
    return (str(uuid.uuid4()), "inventory.device.registered.v1" if version == 1 else "inventory.device.updated.v1",
            {"device": {"asset_tag": tag, "kind": "desktop", "os": {"family": "windows", "version": os},
                        "hardware": {"model": "m", "cpu_model": "c", "cpu_arch": arch, "cpu_cores": cores,
                                     "ram_mb": ram, "disk_gb": disk, "tpm": "none", "firmware": "bios"},
                        "location": {"site": "Holborn", "borough": "Camden", "unit": "TP"}, "state": state,
                        "version": version, "updated_at": T0.isoformat()}}, T0)


def _policy(version: int, lifecycle: list[dict[str, Any]]) -> Event:
    return (str(uuid.uuid4()), "migration.policy.changed.v1", {
        "version": version, "target": {"family": "windows", "version": "8.1"}, "target_support_ends": "2023-01-10",
        "warning": None, "changed": ["lifecycle"], "scope": ["desktop"], "min_ram_mb": 2048, "min_disk_gb": 80,
        "min_cpu_cores": 2, "catalogue_size": 0, "blocking_applications": [], "lifecycle": lifecycle,
        "occurred_at": T0.isoformat()}, T0)


def _row(version: str, ends: str, ram: int, disk: int, archs: list[str]) -> dict[str, Any]:
    return {"os": {"family": "windows", "version": version}, "support_ends": ends, "min_ram_mb": ram,
            "min_disk_gb": disk, "architectures": archs}


LIFECYCLE = [_row("XP", "2014-04-08", 128, 2, ["x86", "x64"]), _row("8.1", "2023-01-10", 2048, 20, ["x64"]),
             _row("10", "2025-10-14", 2048, 32, ["x64"])]


async def test_the_legacy_devices_hardware_and_the_lifecycle_table_come_from_the_events() -> None:
    events = [_device("A", 1, "XP", ("x86", 1, 1024, 40)), _device("B", 1, "XP", ("x64", 2, 2048, 160)),
              _device("C", 1, "XP", ("x64", 2, 2048, 160)), _device("C", 2, "8.1", ("x64", 2, 2048, 160)),
              _device("D", 1, "XP", ("x64", 2, 2048, 160), state="disposed"),
              _device("E", 1, "7", ("x64", 4, 8192, 500)),
              _policy(1, LIFECYCLE[:2]), _policy(2, LIFECYCLE)]
    f = Fold(projector())
    f.apply_all(events)
    hardware = {d: c for d, c in f.dimensions.items() if d.startswith("hardware:") and c}
    assert hardware == {"hardware:x86:1:1024:40": {"legacy": 1}, "hardware:x64:2:2048:160": {"legacy": 1}}
    assert f.dimensions["policy:os:windows:10"] == {"support_ends_ordinal": date(2025, 10, 14).toordinal(),
                                                   "min_ram_mb": 2048, "min_disk_gb": 32, "arch:x64": 1}

    store = MemoryStore()
    model = ReadModel(store)
    await model.apply_batch(projector(), "t|0", list(enumerate(events)))
    handlers = ReportingHandlers(model, projector(), FixedClock(T0), ReportingConfig(),
                                 replay_model=ReadModel(store, "replay"), log=lambda: MemoryLog(None),  # type: ignore[arg-type]
                                 topics=())
    facts = await handlers.target_facts()
    assert facts.target == "windows:8.1" and facts.minimum == Minimum(2048, 80, 2)
    assert facts.lifecycle["windows:10"] == WIN10 and set(facts.lifecycle) == {"windows:XP", "windows:8.1",
                                                                              "windows:10"}
    assert facts.hardware == {Hardware("x86", 1, 1024, 40): 1, Hardware("x64", 2, 2048, 160): 1}
    assert facts.device_price_gbp is None  # nothing delivered
    assert plan(facts.hardware, facts.lifecycle["windows:8.1"], facts.minimum).new_devices == 1
