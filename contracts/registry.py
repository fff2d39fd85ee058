"""Every published event type: its data model and the topic it travels on."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts import inventory, migration, procurement


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    topic: str
    model: type[BaseModel]
    summary: str


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("inventory.device.registered.v1", inventory.DEVICES_TOPIC,
                  inventory.DeviceRegisteredV1, "A device joined the estate."),
        EventType("inventory.device.updated.v1", inventory.DEVICES_TOPIC,
                  inventory.DeviceUpdatedV1, "A device's recorded facts changed."),
        EventType("inventory.device.state_changed.v1", inventory.DEVICES_TOPIC,
                  inventory.DeviceStateChangedV1,
                  "A device moved along its lifecycle (e.g. migrating -> migrated)."),
        EventType("inventory.device.retired.v1", inventory.DEVICES_TOPIC,
                  inventory.DeviceRetiredV1, "A device was taken out of service."),
        EventType("inventory.device.disposed.v1", inventory.DEVICES_TOPIC,
                  inventory.DeviceDisposedV1,
                  "A retired device left the force, with its data-sanitisation record."),
        EventType("migration.replacement.needed.v1", migration.REPLACEMENTS_TOPIC,
                  migration.ReplacementNeededV1,
                  "Devices of a kind are needed at a site to replace devices that cannot migrate."),
        EventType("procurement.delivery.received.v1", procurement.DELIVERIES_TOPIC,
                  procurement.DeliveryReceivedV1,
                  "Devices bought through a framework call-off arrived at a site."),
    )
}


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None
