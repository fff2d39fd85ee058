"""Migration events that other services react to.

Four streams:

- ``migration.replacements`` (key = need id): the replacement need procurement consumes: a
  device that cannot migrate on its own hardware is to be replaced, and migration asks
  procurement for a device of a kind at a site.
- ``migration.devices`` (key = asset tag): one device's readiness and its migration saga
  (scheduled, started, each step completed / failed / retried, rolled back, migrated), its
  pairing with a delivered replacement and the request to dispose of it. Inventory reacts to
  started, rolled back, migrated, paired (retire) and disposal requested; reporting reads all.
- ``migration.waves`` (key = wave id): a wave's life (planned, started, paused, resumed,
  cancelled, completed) with its progress counts.
- ``migration.policy`` (key = ``policy``): the migration policy as changed, with the
  support-lifecycle warning when the target's support ends sooner than an alternative's.

Every device event carries the device's asset tag, kind, site and borough, so a reader needs
no other stream to group it; every event carries when it happened (``occurred_at``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, Field

from contracts.common import (
    ApplicationName,
    AssetTag,
    Contract,
    CpuArch,
    DeviceKind,
    OperatingSystem,
    Sanitisation,
    ShortText,
)

REPLACEMENTS_TOPIC = "migration.replacements"
DEVICES_TOPIC = "migration.devices"
WAVES_TOPIC = "migration.waves"
POLICY_TOPIC = "migration.policy"

POLICY_KEY = "policy"
"""Key (and subject) of every policy event: there is one policy."""


class ReplacementNeededV1(Contract):
    """Devices of ``kind`` are needed at ``site`` to replace the devices listed. ``need_id`` is
    stable for one need: a redelivered or re-announced need carries the same id, so a consumer
    can act on it once."""

    need_id: ShortText
    site: ShortText
    borough: str | None = None
    kind: DeviceKind
    quantity: int = Field(ge=1, le=5000)
    replaces: list[AssetTag] = Field(default_factory=list, max_length=5000)
    needed_by: date | None = None
    reason: ShortText


# -- readiness --------------------------------------------------------------------------------

class Readiness(StrEnum):
    UPGRADE_IN_PLACE = "upgrade_in_place"
    """The hardware meets the minimum and no application blocks: the OS can be upgraded."""
    REPLACE = "replace"
    """The hardware is below the force's minimum for the target: a new device of the same kind."""
    BLOCKED = "blocked"
    """An installed application is incompatible with the target or awaits remediation."""
    DISPOSE = "dispose"
    """The hardware cannot run the target OS at all: dispose of it; a laptop or tablet replaces it."""
    ALREADY_COMPLIANT = "already_compliant"
    """The device runs the target OS (or a later one) already."""
    OUT_OF_SCOPE = "out_of_scope"
    """The policy does not cover this kind of device (e.g. body-worn cameras)."""


class Compatibility(StrEnum):
    COMPATIBLE = "compatible"
    NEEDS_REMEDIATION = "needs_remediation"
    INCOMPATIBLE = "incompatible"


class BlockingApplication(Contract):
    name: ApplicationName
    compatibility: Compatibility
    owner: str | None = None
    expected_fix: date | None = None


class ReadinessAssessedV1(Contract):
    """A device was assessed against the policy (first time, after its facts changed, or after
    the policy changed in a way that concerns it). Announced only when the outcome, its
    blockers or its shortfalls differ from the last assessment."""

    asset_tag: AssetTag
    kind: DeviceKind
    site: ShortText
    borough: str | None = None
    unit: str | None = None
    hardware_model: str | None = None
    os: OperatingSystem
    """The OS the device runs now."""
    target: OperatingSystem
    outcome: Readiness
    previous_outcome: Readiness | None = None
    blocking_applications: list[BlockingApplication] = Field(default_factory=list, max_length=200)
    hardware_shortfalls: list[str] = Field(default_factory=list, max_length=20,
                                           description="What falls short, e.g. 'RAM 1024 MB < 4096 MB'")
    policy_version: int = Field(ge=1)
    occurred_at: AwareDatetime


# -- per-device saga --------------------------------------------------------------------------

class SagaStep(StrEnum):
    BACK_UP = "back_up"
    DEPLOY_OS = "deploy_os"
    VERIFY = "verify"


class SagaState(StrEnum):
    SCHEDULED = "scheduled"
    BACKED_UP = "backed_up"
    OS_DEPLOYED = "os_deployed"
    VERIFIED = "verified"
    MIGRATED = "migrated"
    FAILED = "failed"
    """Rolled back after a step failed every attempt."""
    UNSCHEDULED = "unscheduled"
    """Taken out of its wave (the wave was cancelled before the device started)."""


class DeviceMigrationEvent(Contract):
    """What every saga event says about the device: which, where, in which wave, when."""

    asset_tag: AssetTag
    wave_id: ShortText
    kind: DeviceKind
    site: ShortText
    borough: str | None = None
    occurred_at: AwareDatetime


class DeviceScheduledV1(DeviceMigrationEvent):
    """The device joined a wave (or its wave was resumed) and is due on ``scheduled_for``."""

    scheduled_for: date
    os_before: OperatingSystem
    target: OperatingSystem


class DeviceUnscheduledV1(DeviceMigrationEvent):
    reason: ShortText


class MigrationStartedV1(DeviceMigrationEvent):
    """The device's saga began: inventory marks it migrating."""

    os_before: OperatingSystem
    target: OperatingSystem


class StepCompletedV1(DeviceMigrationEvent):
    step: SagaStep
    state: SagaState
    """The saga's state after this step."""
    attempt: int = Field(ge=1)
    duration_s: float = Field(ge=0)


class StepFailedV1(DeviceMigrationEvent):
    step: SagaStep
    attempt: int = Field(ge=1)
    reason: ShortText
    will_retry: bool
    """False when the attempts are used up: the device is rolled back next."""
    duration_s: float = Field(ge=0)


class StepRetriedV1(DeviceMigrationEvent):
    step: SagaStep
    attempt: int = Field(ge=2, description="The attempt now starting")


class DeviceRolledBackV1(DeviceMigrationEvent):
    """The device was restored to its OS before the saga and marked failed: inventory puts it
    back in service."""

    failed_step: SagaStep
    reason: ShortText
    attempts: int = Field(ge=1)
    os_restored: OperatingSystem
    state: SagaState = SagaState.FAILED


class DeviceMigratedV1(DeviceMigrationEvent):
    """The device runs the target OS: inventory records the new OS and marks it migrated."""

    os_before: OperatingSystem
    os_after: OperatingSystem
    started_at: AwareDatetime


# -- replacement and disposal -----------------------------------------------------------------

class ReplacementPairedV1(Contract):
    """A delivered device replaces ``asset_tag`` (subject): inventory retires the old device."""

    asset_tag: AssetTag
    replacement_asset_tag: AssetTag
    need_id: ShortText
    kind: DeviceKind
    replacement_kind: DeviceKind
    site: ShortText
    borough: str | None = None
    occurred_at: AwareDatetime


class DisposalRequestedV1(Contract):
    """A replaced device's data was destroyed: inventory disposes of it with the record."""

    asset_tag: AssetTag
    kind: DeviceKind
    site: ShortText
    borough: str | None = None
    replaced_by: AssetTag | None = None
    sanitisation: Sanitisation
    occurred_at: AwareDatetime


# -- waves ------------------------------------------------------------------------------------

class WaveState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class WaveProgress(Contract):
    devices: int = Field(ge=0)
    scheduled: int = Field(ge=0, description="Not started yet")
    in_progress: int = Field(ge=0)
    migrated: int = Field(ge=0)
    failed: int = Field(ge=0)
    unscheduled: int = Field(ge=0, default=0)
    success_rate: float = Field(ge=0, le=1, description="migrated / devices")


class SuccessGate(Contract):
    """The wave starts only once ``after_wave`` has migrated at least ``success_rate`` of its devices."""

    after_wave: ShortText
    success_rate: float = Field(gt=0, le=1)


class WavePlannedV1(Contract):
    wave_id: ShortText
    name: ShortText
    sites: list[ShortText] = Field(default_factory=list, max_length=500)
    boroughs: list[str] = Field(default_factory=list, max_length=40)
    kinds: list[DeviceKind] = Field(default_factory=list)
    start_date: date
    daily_capacity: int = Field(ge=1)
    gate: SuccessGate | None = None
    pilot: bool = False
    expected_end: date
    progress: WaveProgress
    occurred_at: AwareDatetime


class WaveChangedV1(Contract):
    """Base of the wave's life events: which wave, its state and progress, when."""

    wave_id: ShortText
    state: WaveState
    progress: WaveProgress
    occurred_at: AwareDatetime


class WaveStartedV1(WaveChangedV1):
    pass


class WavePausedV1(WaveChangedV1):
    reason: str | None = None


class WaveResumedV1(WaveChangedV1):
    expected_end: date


class WaveCancelledV1(WaveChangedV1):
    reason: str | None = None


class WaveCompletedV1(WaveChangedV1):
    gate_met: bool | None = None
    """Whether the success rate reached the rate the next gated wave needs (None: no gate waits on it)."""


# -- policy -----------------------------------------------------------------------------------

class SupportWarning(Contract):
    """The target's support ends sooner than an alternative's."""

    target: OperatingSystem
    target_support_ends: date
    alternative: OperatingSystem
    alternative_support_ends: date
    message: str


class OsSupport(Contract):
    """One row of the policy's lifecycle table: when an OS's support ends and what it needs to run at all."""

    os: OperatingSystem
    support_ends: date
    min_ram_mb: int = Field(ge=0)
    min_disk_gb: int = Field(ge=0)
    architectures: list[CpuArch] = Field(min_length=1, max_length=3)


class PolicyChangedV1(Contract):
    version: int = Field(ge=1)
    target: OperatingSystem
    target_support_ends: date | None = None
    warning: SupportWarning | None = None
    changed: list[str] = Field(min_length=1, description="Which parts changed, e.g. target, catalogue")
    scope: list[DeviceKind]
    min_ram_mb: int = Field(ge=0)
    min_disk_gb: int = Field(ge=0)
    min_cpu_cores: int = Field(ge=0)
    catalogue_size: int = Field(ge=0)
    blocking_applications: list[ApplicationName] = Field(default_factory=list, max_length=2000)
    lifecycle: list[OsSupport] = Field(default_factory=list, max_length=50,
                                       description="The lifecycle table: every OS the policy knows, with its end "
                                                   "of support and needs (what-if planning reads it)")
    occurred_at: AwareDatetime
