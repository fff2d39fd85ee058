"""Readiness rules and the policy: outcomes, their order, the support warning, what a change concerns."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from contracts.common import DeviceKind, Hardware, Location, OperatingSystem
from contracts.migration import Compatibility, Readiness
from services.migration import domain, waves
from services.migration.domain import CatalogueEntry, Policy, PolicySpec
from services.migration.sample_policy import sample_policy

NOW = datetime(2015, 8, 3, 9, tzinfo=UTC)


def _policy(spec: PolicySpec | None = None) -> Policy:
    change = domain.set_policy(None, spec or sample_policy(), NOW)
    return change.value


def _hw(**over: object) -> Hardware:
    base = {"model": "Dell OptiPlex 760", "cpu_model": "Core 2 Duo E7400", "cpu_arch": "x64", "cpu_cores": 2,
            "ram_mb": 4096, "disk_gb": 250, "tpm": "1.2", "firmware": "bios"}
    return Hardware.model_validate({**base, **over})


def _os(version: str, family: str = "windows") -> OperatingSystem:
    return OperatingSystem.model_validate({"family": family, "version": version})


def _assess(kind: DeviceKind = DeviceKind.DESKTOP, os: str = "XP", apps: list[str] | None = None,
            policy: Policy | None = None, **hw: object) -> domain.Assessment:
    return domain.assess(kind, _os(os), _hw(**hw), apps or [], policy or _policy())


def test_good_hardware_without_blockers_upgrades_in_place() -> None:
    found = _assess(apps=["Microsoft Office 2003", "CRIS Crime Reporting", "Unlisted Tool"])
    assert found.outcome is Readiness.UPGRADE_IN_PLACE
    assert found.blocking_applications == [] and found.hardware_shortfalls == []
    assert found.policy_version == 1 and found.target == _os("8.1")


def test_below_the_force_minimum_is_replaced_with_the_shortfalls_named() -> None:
    found = _assess(cpu_cores=1, disk_gb=40)
    assert found.outcome is Readiness.REPLACE
    assert found.hardware_shortfalls == ["disk 40 GB < 80 GB minimum", "1 CPU cores < 2 minimum"]


@pytest.mark.parametrize(("hw", "why"), [
    ({"cpu_arch": "x86"}, "CPU x86 cannot run Windows 8.1 (x64)"),
    ({"ram_mb": 1024}, "RAM 1024 MB < 2048 MB that Windows 8.1 needs"),
    ({"disk_gb": 10}, "disk 10 GB < 20 GB that Windows 8.1 needs"),
])
def test_hardware_that_cannot_run_the_target_is_disposed_of(hw: dict[str, object], why: str) -> None:
    found = domain.assess(DeviceKind.DESKTOP, _os("XP"), _hw(**hw), [], _policy())
    assert found.outcome is Readiness.DISPOSE
    assert why in found.hardware_shortfalls


def test_blocking_applications_are_named_with_owner_and_fix_date_and_win_over_hardware() -> None:
    found = _assess(apps=["NSPIS Custody", "CRIS Crime Reporting", "MERLIN Vulnerable Persons"], ram_mb=1024)
    assert found.outcome is Readiness.BLOCKED
    assert [(b.name, b.compatibility, b.owner) for b in found.blocking_applications] == [
        ("NSPIS Custody", Compatibility.INCOMPATIBLE, "Custody Systems"),
        ("MERLIN Vulnerable Persons", Compatibility.NEEDS_REMEDIATION, "Public Protection")]
    assert found.blocking_applications[1].expected_fix == date(2015, 11, 30)
    assert found.hardware_shortfalls  # the hardware verdict is kept for when the blocker goes


@pytest.mark.parametrize("version", ["8.1", "10"])
def test_the_target_or_a_later_version_is_already_compliant(version: str) -> None:
    found = _assess(os=version, apps=["NSPIS Custody"], ram_mb=1024)
    assert found.outcome is Readiness.ALREADY_COMPLIANT
    assert found.blocking_applications == [] and found.hardware_shortfalls == []


def test_kinds_and_families_the_policy_does_not_cover_are_out_of_scope() -> None:
    camera = domain.assess(DeviceKind.BODY_WORN_CAMERA, _os("1.12", "camera_firmware"),
                           _hw(cpu_arch="arm64"), [], _policy())
    ipad = domain.assess(DeviceKind.TABLET, _os("9.3", "ios"), _hw(cpu_arch="arm64"), [], _policy())
    linux = domain.assess(DeviceKind.DESKTOP, _os("14.4", "linux"), _hw(), [], _policy())
    assert {camera.outcome, ipad.outcome, linux.outcome} == {Readiness.OUT_OF_SCOPE}


def test_the_sample_policy_targets_windows_8_1_and_warns_that_windows_10_lasts_longer() -> None:
    change = domain.set_policy(None, sample_policy(), NOW)
    name, event = change.events[0]
    assert name == "migration.policy.changed.v1"
    warning = event.warning  # type: ignore[attr-defined]
    assert warning.target_support_ends == date(2023, 1, 10)
    assert warning.alternative == _os("10") and warning.alternative_support_ends == date(2025, 10, 14)
    assert "2023-01-10" in warning.message and "2025-10-14" in warning.message


def test_targeting_the_longest_supported_os_shows_no_warning() -> None:
    spec = sample_policy().model_copy(update={"target": _os("10")})
    assert domain.support_warning(spec) is None


def test_a_target_missing_from_the_lifecycle_table_is_refused_naming_the_field() -> None:
    raw = sample_policy().model_dump(mode="json")
    raw["target"] = {"family": "windows", "version": "Vista"}
    with pytest.raises(ValueError, match="not in the lifecycle table"):
        PolicySpec.model_validate(raw)


def test_the_same_policy_again_changes_nothing_and_a_new_one_bumps_the_version() -> None:
    first = _policy()
    assert not domain.set_policy(first, sample_policy(), NOW).changed
    spec = sample_policy().model_copy(update={"target": _os("10")})
    second = domain.set_policy(first, spec, NOW)
    assert second.value.version == 2
    assert second.events[0][1].changed == ["target"]  # type: ignore[attr-defined]


def test_a_catalogue_change_concerns_only_devices_with_the_changed_applications() -> None:
    old = sample_policy()
    catalogue = dict(old.catalogue)
    catalogue["NSPIS Custody"] = CatalogueEntry(compatibility=Compatibility.COMPATIBLE, owner="Custody Systems")
    new = old.model_copy(update={"catalogue": catalogue})
    affected = domain.affected_by(old, new)
    assert not affected.everyone and affected.applications == {"NSPIS Custody"}
    assert affected.concerns(["NSPIS Custody", "CRIS Crime Reporting"])
    assert not affected.concerns(["CRIS Crime Reporting"])
    assert domain.affected_by(old, old.model_copy(update={"target": _os("10")})).everyone
    assert not domain.affected_by(old, old).concerns(["NSPIS Custody"])


def _record(apps: list[str], **hw: object) -> domain.DeviceRecord:
    return domain.DeviceRecord(asset_tag="MPS-D-000042", version=1, inventory_version=1, kind=DeviceKind.DESKTOP,
                               os=_os("XP"), hardware=_hw(**hw), applications=apps,
                               location=Location(site="Camden Police Station", borough="Camden", unit="TP"))


def test_reassessing_announces_only_a_changed_verdict() -> None:
    policy = _policy()
    first = domain.reassess(_record(["CRIS Crime Reporting"]), policy, NOW)
    assert [n for n, _ in first.events] == ["migration.device.assessed.v1"]
    assert not domain.reassess(first.value, policy, NOW).changed


def test_a_device_to_replace_asks_procurement_once_under_a_stable_need_id() -> None:
    policy = _policy()
    first = domain.reassess(_record([], ram_mb=1024), policy, NOW)
    names = [n for n, _ in first.events]
    assert names == ["migration.device.assessed.v1", "migration.replacement.needed.v1"]
    need = first.events[1][1]
    assert need.need_id == "NEED-MPS-D-000042" and need.kind is DeviceKind.LAPTOP  # type: ignore[attr-defined]
    assert first.value.need_id == "NEED-MPS-D-000042"
    # a changed verdict (now blocked, then back to dispose) never asks again
    blocked = first.value.model_copy(update={"applications": ["NSPIS Custody"]})
    again = domain.reassess(domain.reassess(blocked, policy, NOW).value.model_copy(update={"applications": []}),
                            policy, NOW)
    assert [n for n, _ in again.events] == ["migration.device.assessed.v1"]


def test_pilot_recommendation_covers_every_item_with_few_devices() -> None:
    candidates = {"A": {"cris", "m1"}, "B": {"nspis", "m2"}, "C": {"cris", "nspis", "m1", "m2"}, "D": {"m3"}}
    chosen, missing = waves.recommend_pilot(candidates, {"cris", "nspis", "m1", "m2", "m3", "ghost"})
    assert chosen == ["C", "D"] and missing == {"ghost"}
