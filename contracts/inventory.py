"""Inventory events (topic ``inventory.devices``, key = asset tag) and the lifecycle they report."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from contracts.common import (
    ApplicationName,
    AssetTag,
    Contract,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    Sanitisation,
)

DEVICES_TOPIC = "inventory.devices"


class LifecycleState(StrEnum):
    IN_SERVICE = "in_service"
    MIGRATING = "migrating"
    MIGRATED = "migrated"
    AWAITING_REPLACEMENT = "awaiting_replacement"
    RETIRED = "retired"
    DISPOSED = "disposed"


class DeviceSnapshot(Contract):
    """A device as it stands after the change an event announces."""

    asset_tag: AssetTag
    kind: DeviceKind
    os: OperatingSystem
    hardware: Hardware
    location: Location
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)
    state: LifecycleState
    version: int = Field(ge=1)
    registered_at: AwareDatetime
    updated_at: AwareDatetime
    retirement_reason: str | None = None
    sanitisation: Sanitisation | None = None


class DeviceRegisteredV1(Contract):
    device: DeviceSnapshot


class DeviceUpdatedV1(Contract):
    asset_tag: AssetTag
    version: int = Field(ge=1)
    changed_fields: list[str] = Field(min_length=1)
    device: DeviceSnapshot


class DeviceStateChangedV1(Contract):
    asset_tag: AssetTag
    version: int = Field(ge=1)
    from_state: LifecycleState
    to_state: LifecycleState
    device: DeviceSnapshot


class DeviceRetiredV1(Contract):
    asset_tag: AssetTag
    version: int = Field(ge=1)
    reason: str
    device: DeviceSnapshot


class DeviceDisposedV1(Contract):
    asset_tag: AssetTag
    version: int = Field(ge=1)
    sanitisation: Sanitisation
    device: DeviceSnapshot
