"""Procurement events that other services react to.

Only the delivery is defined so far: inventory turns each delivered device into a new
device record. The procurement service that emits it is built separately; the contract
comes first so both sides meet here.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from contracts.common import (
    ApplicationName,
    AssetTag,
    Contract,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    ShortText,
)

DELIVERIES_TOPIC = "procurement.deliveries"


class DeliveredDevice(Contract):
    asset_tag: AssetTag
    kind: DeviceKind
    os: OperatingSystem
    hardware: Hardware
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)


class DeliveryReceivedV1(Contract):
    delivery_id: ShortText
    order_id: ShortText
    framework: ShortText
    supplier: ShortText
    received_at: AwareDatetime
    location: Location
    devices: list[DeliveredDevice] = Field(min_length=1, max_length=5000)
