"""Procurement events."""

from __future__ import annotations

from contracts.common import DeviceKind
from contracts.envelope import Envelope, new_envelope
from contracts.procurement import DeliveredDevice, DeliveryReceivedV1
from tests.contract.examples.inventory import T0, _spec, _windows


def examples() -> list[Envelope]:
    delivery = DeliveryReceivedV1(
        delivery_id="DEL-1", order_id="PO-7", framework="RM6068", supplier="Dell", received_at=T0,
        location=_spec().location,
        devices=[DeliveredDevice(asset_tag="MPS-L-000001", kind=DeviceKind.LAPTOP,
                                 os=_windows("10"),
                                 hardware=_spec().hardware)])
    return [new_envelope(type="procurement.delivery.received.v1", source="/procurement",
                         subject="DEL-1", time=T0, data=delivery)]
