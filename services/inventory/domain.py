"""Inventory rules: what a device is, which lifecycle moves are allowed, what each change announces.

Pure Python: no I/O, no framework. A device's state is exactly the ``DeviceSnapshot`` that
events publish; each command takes the current device and returns the new one with the
events it recorded (``Change``). An unchanged device records no event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import (
    OS_FOR_KIND,
    ApplicationName,
    AssetTag,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    Sanitisation,
)
from contracts.inventory import (
    DeviceDisposedV1,
    DeviceRegisteredV1,
    DeviceRetiredV1,
    DeviceSnapshot,
    DeviceStateChangedV1,
    DeviceUpdatedV1,
    LifecycleState,
)
from services.runtime.changes import Change as Changed

Device = DeviceSnapshot

S = LifecycleState
TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    S.IN_SERVICE: frozenset({S.MIGRATING, S.AWAITING_REPLACEMENT, S.RETIRED}),
    S.MIGRATING: frozenset({S.MIGRATED, S.IN_SERVICE, S.AWAITING_REPLACEMENT}),
    S.MIGRATED: frozenset({S.MIGRATING, S.RETIRED}),
    S.AWAITING_REPLACEMENT: frozenset({S.RETIRED}),
    S.RETIRED: frozenset({S.DISPOSED}),
    S.DISPOSED: frozenset(),
}
"""Allowed lifecycle moves. ``retired`` and ``disposed`` are reached only through
``retire`` and ``dispose``, which carry a reason and a sanitisation record."""

INITIAL_STATES = frozenset({S.IN_SERVICE, S.MIGRATED, S.AWAITING_REPLACEMENT})
"""States a device may be recorded in when it first joins the inventory (e.g. by import)."""

EDITABLE_FIELDS = ("os", "hardware", "location", "applications")


class DomainError(ValueError):
    """A command the rules refuse; ``field`` names the input at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LifecycleError(DomainError):
    """A move the lifecycle does not allow from the device's current state."""


def _check_os_fits_kind(kind: DeviceKind, os: OperatingSystem) -> None:
    if os.family not in OS_FOR_KIND[kind]:
        allowed = ", ".join(sorted(f.value for f in OS_FOR_KIND[kind]))
        raise DomainError(f"a {kind.value} cannot run {os.family.value}; expected one of {allowed}", "os.family")


def _unique_applications(apps: list[str]) -> list[str]:
    return list(dict.fromkeys(apps))


class DeviceSpec(BaseModel):
    """What it takes to register a device."""

    model_config = ConfigDict(extra="forbid")

    asset_tag: AssetTag
    kind: DeviceKind
    os: OperatingSystem
    hardware: Hardware
    location: Location
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)
    state: LifecycleState = S.IN_SERVICE

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # DomainError names the field at fault; pydantic keeps it (ctx["error"]) for the caller
        _check_os_fits_kind(self.kind, self.os)
        if self.state not in INITIAL_STATES:
            allowed = ", ".join(sorted(s.value for s in INITIAL_STATES))
            raise DomainError(f"a device cannot join the inventory as {self.state.value}; "
                              f"expected one of {allowed}", "state")
        self.applications = _unique_applications(self.applications)
        return self


class DevicePatch(BaseModel):
    """Facts to change on a device; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    os: OperatingSystem | None = None
    hardware: Hardware | None = None
    location: Location | None = None
    applications: list[ApplicationName] | None = Field(default=None, max_length=200)


Change = Changed[Device]
"""A command's outcome: the device as it now stands (``value``) and the events announcing it."""


def register(spec: DeviceSpec, now: datetime) -> Change:
    # The spec is validated already; building the device from its parts skips a second pass.
    device = Device.model_construct(
        asset_tag=spec.asset_tag, kind=spec.kind, os=spec.os, hardware=spec.hardware,
        location=spec.location, applications=list(spec.applications), state=spec.state, version=1,
        registered_at=now, updated_at=now, retirement_reason=None, sanitisation=None)
    return Change(device, [("inventory.device.registered.v1", DeviceRegisteredV1(device=device))])


def _next(device: Device, now: datetime, **changes: object) -> Device:
    return device.model_copy(update={**changes, "version": device.version + 1, "updated_at": now})


def update(device: Device, patch: DevicePatch, now: datetime) -> Change:
    if device.state in (S.RETIRED, S.DISPOSED):
        raise LifecycleError(f"device {device.asset_tag} is {device.state.value}; its facts are closed")
    changes: dict[str, object] = {}
    for name in patch.model_fields_set & set(EDITABLE_FIELDS):
        value = getattr(patch, name)
        if name == "applications" and value is not None:
            value = _unique_applications(value)
        if value is not None and getattr(device, name) != value:
            changes[name] = value
    if not changes:
        return Change(device)
    try:
        _check_os_fits_kind(device.kind, changes.get("os", device.os))  # type: ignore[arg-type]
    except ValueError as error:
        raise DomainError(str(error), "os") from None
    after = _next(device, now, **changes)
    event = DeviceUpdatedV1(asset_tag=device.asset_tag, version=after.version,
                            changed_fields=sorted(changes), device=after)
    return Change(after, [("inventory.device.updated.v1", event)])


def _require_move(device: Device, to: LifecycleState) -> None:
    if to not in TRANSITIONS[device.state]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[device.state])) or "nothing"
        raise LifecycleError(
            f"device {device.asset_tag} cannot go from {device.state.value} to {to.value}; "
            f"from {device.state.value} it can go to {allowed}", "state")


def move(device: Device, to: LifecycleState, now: datetime) -> Change:
    """A lifecycle move other than retirement and disposal (e.g. migrating -> migrated)."""
    to = LifecycleState(to)
    if to in (S.RETIRED, S.DISPOSED):
        raise LifecycleError(f"use the {'retire' if to is S.RETIRED else 'dispose'} command "
                             f"to make a device {to.value}", "state")
    if to is device.state:
        return Change(device)
    _require_move(device, to)
    after = _next(device, now, state=to)
    event = DeviceStateChangedV1(asset_tag=device.asset_tag, version=after.version,
                                 from_state=device.state, to_state=to, device=after)
    return Change(after, [("inventory.device.state_changed.v1", event)])


def retire(device: Device, reason: str, now: datetime) -> Change:
    if device.state is S.RETIRED:
        return Change(device)
    _require_move(device, S.RETIRED)
    after = _next(device, now, state=S.RETIRED, retirement_reason=reason)
    event = DeviceRetiredV1(asset_tag=device.asset_tag, version=after.version, reason=reason, device=after)
    return Change(after, [("inventory.device.retired.v1", event)])


def dispose(device: Device, sanitisation: Sanitisation, now: datetime) -> Change:
    if device.state is S.DISPOSED and device.sanitisation == sanitisation:
        return Change(device)
    _require_move(device, S.DISPOSED)
    if sanitisation.performed_on > now.date():
        raise DomainError(f"the sanitisation date {sanitisation.performed_on} is in the future",
                          "sanitisation.performed_on")
    if sanitisation.performed_on < device.registered_at.date():
        raise DomainError("the sanitisation date is before the device joined the inventory",
                          "sanitisation.performed_on")
    after = _next(device, now, state=S.DISPOSED, sanitisation=sanitisation)
    event = DeviceDisposedV1(asset_tag=device.asset_tag, version=after.version,
                             sanitisation=sanitisation, device=after)
    return Change(after, [("inventory.device.disposed.v1", event)])
