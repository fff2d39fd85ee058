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
        EventType("procurement.contract.awarded.v1", procurement.CONTRACTS_TOPIC,
                  procurement.ContractAwardedV1,
                  "A call-off contract was awarded under a framework lot."),
        EventType("procurement.contract.varied.v1", procurement.CONTRACTS_TOPIC,
                  procurement.ContractVariedV1,
                  "A call-off contract's value or end date changed (within the 10% rule and term limits)."),
        EventType("procurement.contract.expiring.v1", procurement.CONTRACTS_TOPIC,
                  procurement.ContractExpiringV1,
                  "A call-off contract entered its notice window before expiry (once per contract and window)."),
        EventType("procurement.purchase.requested.v1", procurement.PURCHASES_TOPIC,
                  procurement.PurchaseRequestedV1,
                  "A purchase request was submitted for approval."),
        EventType("procurement.purchase.approved.v1", procurement.PURCHASES_TOPIC,
                  procurement.PurchaseApprovedV1,
                  "An approval of a purchase request was recorded (fully_approved once all are in)."),
        EventType("procurement.purchase.rejected.v1", procurement.PURCHASES_TOPIC,
                  procurement.PurchaseRejectedV1,
                  "A purchase request was rejected, with the reason."),
        EventType("procurement.purchase.ordered.v1", procurement.PURCHASES_TOPIC,
                  procurement.PurchaseOrderedV1,
                  "An approved purchase request was ordered; its value is committed against the budget."),
        EventType("migration.device.assessed.v1", migration.DEVICES_TOPIC,
                  migration.ReadinessAssessedV1,
                  "A device's readiness for the target OS, and what blocks it, was (re)assessed."),
        EventType("migration.device.scheduled.v1", migration.DEVICES_TOPIC, migration.DeviceScheduledV1,
                  "A device joined a migration wave and is due on a date."),
        EventType("migration.device.unscheduled.v1", migration.DEVICES_TOPIC, migration.DeviceUnscheduledV1,
                  "A device left its wave before starting (the wave was cancelled)."),
        EventType("migration.device.started.v1", migration.DEVICES_TOPIC, migration.MigrationStartedV1,
                  "A device's migration saga began (inventory: migrating)."),
        EventType("migration.device.step_completed.v1", migration.DEVICES_TOPIC, migration.StepCompletedV1,
                  "A saga step (back up, deploy OS, verify) succeeded."),
        EventType("migration.device.step_failed.v1", migration.DEVICES_TOPIC, migration.StepFailedV1,
                  "A saga step failed; it is retried unless its attempts are used up."),
        EventType("migration.device.step_retried.v1", migration.DEVICES_TOPIC, migration.StepRetriedV1,
                  "A failed saga step is tried again."),
        EventType("migration.device.rolled_back.v1", migration.DEVICES_TOPIC, migration.DeviceRolledBackV1,
                  "A device was restored to its old OS and marked failed (inventory: back in service)."),
        EventType("migration.device.migrated.v1", migration.DEVICES_TOPIC, migration.DeviceMigratedV1,
                  "A device runs the target OS (inventory: new OS, migrated)."),
        EventType("migration.device.replacement_paired.v1", migration.DEVICES_TOPIC,
                  migration.ReplacementPairedV1,
                  "A delivered device replaces an old one at its site (inventory: the old one retired)."),
        EventType("migration.device.disposal_requested.v1", migration.DEVICES_TOPIC,
                  migration.DisposalRequestedV1,
                  "A replaced device was sanitised and is to be disposed of (inventory: disposed)."),
        EventType("migration.wave.planned.v1", migration.WAVES_TOPIC, migration.WavePlannedV1,
                  "A migration wave was planned: scope, start date, daily capacity, gate."),
        EventType("migration.wave.started.v1", migration.WAVES_TOPIC, migration.WaveStartedV1,
                  "A wave began migrating its devices."),
        EventType("migration.wave.paused.v1", migration.WAVES_TOPIC, migration.WavePausedV1,
                  "A wave stopped starting devices."),
        EventType("migration.wave.resumed.v1", migration.WAVES_TOPIC, migration.WaveResumedV1,
                  "A paused wave starts devices again, rescheduled from today."),
        EventType("migration.wave.cancelled.v1", migration.WAVES_TOPIC, migration.WaveCancelledV1,
                  "A wave was cancelled; its devices not yet started left it."),
        EventType("migration.wave.completed.v1", migration.WAVES_TOPIC, migration.WaveCompletedV1,
                  "Every device of a wave migrated or failed."),
        EventType("migration.policy.changed.v1", migration.POLICY_TOPIC, migration.PolicyChangedV1,
                  "The migration policy (target OS, hardware minimum, application catalogue) changed."),
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
