"""Inventory's repository: one document per device, keyed by asset tag, with its outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.inventory import DEVICES_TOPIC
from services.inventory.domain import Device
from services.runtime.repository import Repository

DEVICES = "devices"
SOURCE = "/estate/inventory"
ASSET_TAG_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    kind: str | None = None
    os_family: str | None = None
    os_version: str | None = None
    site: str | None = None
    borough: str | None = None
    unit: str | None = None
    state: str | None = None
    application: str | None = None

    def filter(self) -> dict[str, Any]:
        fields = {
            "kind": self.kind, "os.family": self.os_family, "os.version": self.os_version,
            "location.site": self.site, "location.borough": self.borough,
            "location.unit": self.unit, "state": self.state, "applications": self.application,
        }
        return {k: v for k, v in fields.items() if v is not None}


class DeviceStore(Repository[Device]):
    collection_name = DEVICES
    topic = DEVICES_TOPIC
    source = SOURCE
    model = Device
    noun = "device"
    key_name = "asset tag"
    indexes = (
        (("kind", 1), ("_id", 1)),
        (("os.family", 1), ("os.version", 1), ("_id", 1)),
        (("location.site", 1), ("_id", 1)),
        (("location.borough", 1), ("_id", 1)),
        (("state", 1), ("_id", 1)),
        (("applications", 1), ("_id", 1)),
    )

    def key(self, value: Device) -> str:
        return value.asset_tag
