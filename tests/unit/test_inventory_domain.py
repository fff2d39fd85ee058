"""Inventory rules, without a broker, a store or FastAPI."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from contracts.common import Sanitisation
from contracts.inventory import LifecycleState
from services.inventory import domain
from services.inventory.domain import TRANSITIONS, Device, DevicePatch, DeviceSpec
from tests.conftest import AT
from tests.samples import device_body

S = LifecycleState
LATER = AT + timedelta(days=1)
RECORD = Sanitisation(method="NIST 800-88 purge", certificate_id="CERT-9", performed_on=date(2015, 8, 3),
                      operator="Disposals Ltd")


def device_in(state: LifecycleState) -> Device:
    return domain.register(DeviceSpec.model_validate(device_body()), AT).value.model_copy(update={"state": state})


def test_register_records_one_event_at_version_one() -> None:
    change = domain.register(DeviceSpec.model_validate(device_body(applications=["A", "B", "A"])), AT)
    assert change.value.version == 1 and change.value.state is S.IN_SERVICE
    assert change.value.applications == ["A", "B"]
    assert [name for name, _ in change.events] == ["inventory.device.registered.v1"]


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("target", [S.IN_SERVICE, S.MIGRATING, S.MIGRATED, S.AWAITING_REPLACEMENT])
def test_move_allows_exactly_the_listed_transitions(start: LifecycleState, target: LifecycleState) -> None:
    device = device_in(start)
    if start is target:
        assert not domain.move(device, target, LATER).changed
    elif target in TRANSITIONS[start]:
        change = domain.move(device, target, LATER)
        assert change.value.state is target and change.value.version == device.version + 1
        event = change.events[0][1]
        assert (event.from_state, event.to_state) == (start, target)  # type: ignore[attr-defined]
    else:
        with pytest.raises(domain.LifecycleError, match=f"cannot go from {start.value} to {target.value}"):
            domain.move(device, target, LATER)


@pytest.mark.parametrize("target", [S.RETIRED, S.DISPOSED])
def test_retired_and_disposed_need_their_own_commands(target: LifecycleState) -> None:
    with pytest.raises(domain.LifecycleError, match="use the"):
        domain.move(device_in(S.IN_SERVICE), target, LATER)


@pytest.mark.parametrize("start", list(S))
def test_retire_from_where_the_lifecycle_allows(start: LifecycleState) -> None:
    device = device_in(start)
    if start is S.RETIRED:
        assert not domain.retire(device, "old", LATER).changed
    elif S.RETIRED in TRANSITIONS[start]:
        change = domain.retire(device, "replaced", LATER)
        assert change.value.retirement_reason == "replaced"
    else:
        with pytest.raises(domain.LifecycleError):
            domain.retire(device, "replaced", LATER)


def test_dispose_only_a_retired_device_with_a_plausible_sanitisation_date() -> None:
    with pytest.raises(domain.LifecycleError):
        domain.dispose(device_in(S.IN_SERVICE), RECORD, LATER)
    retired = device_in(S.RETIRED)
    future = RECORD.model_copy(update={"performed_on": LATER.date() + timedelta(days=1)})
    with pytest.raises(domain.DomainError, match="future"):
        domain.dispose(retired, future, LATER)
    before = RECORD.model_copy(update={"performed_on": date(2001, 1, 1)})
    with pytest.raises(domain.DomainError, match="before the device joined"):
        domain.dispose(retired, before, LATER)
    change = domain.dispose(retired, RECORD, LATER)
    assert change.value.state is S.DISPOSED and change.value.sanitisation == RECORD
    assert not domain.dispose(change.value, RECORD, LATER).changed, "disposing again changes nothing"


def test_update_records_only_real_changes() -> None:
    device = device_in(S.IN_SERVICE)
    assert not domain.update(device, DevicePatch(applications=list(device.applications)), LATER).changed
    change = domain.update(device, DevicePatch.model_validate(
        {"os": {"family": "windows", "version": "8.1"}, "applications": device.applications}), LATER)
    assert change.events[0][1].changed_fields == ["os"]  # type: ignore[attr-defined]
    assert change.value.updated_at == LATER and change.value.registered_at == AT
    with pytest.raises(domain.DomainError, match="cannot run ios"):
        domain.update(device, DevicePatch.model_validate({"os": {"family": "ios", "version": "9.3"}}), LATER)
    with pytest.raises(domain.LifecycleError, match="closed"):
        domain.update(device_in(S.RETIRED), DevicePatch(applications=[]), LATER)


@pytest.mark.parametrize(("change", "message"), [
    ({"os": {"family": "windows", "version": "2000"}}, "unknown Windows version"),
    ({"os": {"family": "android", "version": "lollipop"}}, "expected digits"),
    ({"state": "disposed"}, "cannot join the inventory as disposed"),
    ({"kind": "tablet", "os": {"family": "linux", "version": "3.2"}}, "a tablet cannot run linux"),
])
def test_a_spec_that_breaks_a_rule_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeviceSpec.model_validate({**device_body(), **change})
