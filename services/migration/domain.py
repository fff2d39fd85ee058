"""Migration rules: the policy, readiness and the per-device saga (waves: waves.py).

Pure Python: no I/O, no framework. Each command takes the current aggregate (a device's
migration record, a wave, the policy) and returns the new one with the events it recorded
(``Change``); an unchanged aggregate records no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Self, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts import migration as ev
from contracts.common import (
    WINDOWS_VERSIONS,
    ApplicationName,
    AssetTag,
    CpuArch,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    OsFamily,
    Sanitisation,
    ShortText,
)
from contracts.inventory import DeviceSnapshot
from contracts.migration import (
    BlockingApplication,
    Compatibility,
    Readiness,
    SagaState,
    SagaStep,
)
from services.runtime.changes import Change

V = TypeVar("V")


class DomainError(ValueError):
    """A command the rules refuse; ``field`` names the input at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StateError(DomainError):
    """A move the aggregate's current state does not allow (answered 409)."""


def os_name(os: OperatingSystem) -> str:
    return f"Windows {os.version}" if os.family is OsFamily.WINDOWS else f"{os.family.value} {os.version}"


# -- policy -----------------------------------------------------------------------------------

class OsLifecycle(BaseModel):
    """One OS in the lifecycle table: when its support ends and what it needs to run at all."""

    model_config = ConfigDict(extra="forbid")

    os: OperatingSystem
    support_ends: date
    min_ram_mb: int = Field(default=0, ge=0)
    min_disk_gb: int = Field(default=0, ge=0)
    architectures: list[CpuArch] = Field(default_factory=lambda: [CpuArch.X86, CpuArch.X64], min_length=1)


class CatalogueEntry(BaseModel):
    """An application's compatibility with the target OS."""

    model_config = ConfigDict(extra="forbid")

    compatibility: Compatibility
    owner: str | None = Field(default=None, max_length=120)
    expected_fix: date | None = None
    critical: bool = False
    """Critical applications must be covered by a pilot wave."""


class MinimumHardware(BaseModel):
    """The force's minimum for the target OS (stricter than what the OS needs to run at all)."""

    model_config = ConfigDict(extra="forbid")

    ram_mb: int = Field(default=0, ge=0, le=1024 * 1024)
    disk_gb: int = Field(default=0, ge=0, le=100_000)
    cpu_cores: int = Field(default=1, ge=1, le=256)


class PolicySpec(BaseModel):
    """What the migration team sets: the target, the minimum, the catalogue, the lifecycle table."""

    model_config = ConfigDict(extra="forbid")

    target: OperatingSystem
    scope: list[DeviceKind] = Field(default_factory=lambda: [DeviceKind.DESKTOP, DeviceKind.LAPTOP],
                                    min_length=1, description="Device kinds the policy covers")
    minimum: MinimumHardware = Field(default_factory=MinimumHardware)
    catalogue: dict[ApplicationName, CatalogueEntry] = Field(default_factory=dict, max_length=2000)
    lifecycle: list[OsLifecycle] = Field(min_length=1, max_length=50)
    replacement_kind: DeviceKind = Field(default=DeviceKind.LAPTOP,
                                         description="What replaces a device to dispose of")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for i, entry in enumerate(self.lifecycle):
            key = (entry.os.family.value, entry.os.version)
            if key in seen:
                raise DomainError(f"{os_name(entry.os)} is in the lifecycle table twice", f"lifecycle.{i}")
            seen.add(key)
        if (self.target.family.value, self.target.version) not in seen:
            known = ", ".join(os_name(e.os) for e in self.lifecycle)
            raise DomainError(f"the target {os_name(self.target)} is not in the lifecycle table ({known})",
                              "target")
        return self

    def entry(self, os: OperatingSystem) -> OsLifecycle | None:
        return next((e for e in self.lifecycle if e.os == os), None)

    @property
    def target_entry(self) -> OsLifecycle:
        found = self.entry(self.target)
        assert found is not None  # validated
        return found


class Policy(PolicySpec):
    version: int = Field(ge=1)
    changed_at: AwareDatetime


def support_warning(spec: PolicySpec) -> ev.SupportWarning | None:
    """A warning when another OS of the target's family is supported for longer (the longest one)."""
    target = spec.target_entry
    longer = [e for e in spec.lifecycle if e.os.family is spec.target.family and e.support_ends > target.support_ends]
    if not longer:
        return None
    best = max(longer, key=lambda e: e.support_ends)
    return ev.SupportWarning(
        target=spec.target, target_support_ends=target.support_ends, alternative=best.os,
        alternative_support_ends=best.support_ends,
        message=(f"{os_name(spec.target)} support ends {target.support_ends}, sooner than "
                 f"{os_name(best.os)} ({best.support_ends})"))


POLICY_PARTS = ("target", "scope", "minimum", "catalogue", "lifecycle", "replacement_kind")


def changed_parts(old: PolicySpec | None, new: PolicySpec) -> list[str]:
    if old is None:
        return list(POLICY_PARTS)
    return [p for p in POLICY_PARTS if getattr(old, p) != getattr(new, p)]


def set_policy(current: Policy | None, spec: PolicySpec, now: datetime) -> Change[Policy]:
    changed = changed_parts(current, spec)
    if current is not None and not changed:
        return Change(current)
    policy = Policy(**spec.model_dump(), version=(current.version + 1) if current else 1, changed_at=now)
    blocking = sorted(n for n, e in spec.catalogue.items() if e.compatibility is not Compatibility.COMPATIBLE)
    event = ev.PolicyChangedV1(
        version=policy.version, target=spec.target, target_support_ends=spec.target_entry.support_ends,
        warning=support_warning(spec), changed=changed, scope=spec.scope, min_ram_mb=spec.minimum.ram_mb,
        min_disk_gb=spec.minimum.disk_gb, min_cpu_cores=spec.minimum.cpu_cores,
        catalogue_size=len(spec.catalogue), blocking_applications=blocking,
        lifecycle=[ev.OsSupport(os=e.os, support_ends=e.support_ends, min_ram_mb=e.min_ram_mb,
                                min_disk_gb=e.min_disk_gb, architectures=e.architectures) for e in spec.lifecycle],
        occurred_at=now)
    return Change(policy, [("migration.policy.changed.v1", event)])


@dataclass(frozen=True, slots=True)
class Affected:
    """Which devices a policy change concerns: all, or those with one of ``applications``."""

    everyone: bool
    applications: frozenset[str] = frozenset()

    def concerns(self, applications: list[str]) -> bool:
        return self.everyone or not self.applications.isdisjoint(applications)


def affected_by(old: PolicySpec | None, new: PolicySpec) -> Affected:
    """Only a catalogue change can spare devices: the ones without any application whose
    entry changed (a critical flag or an owner alone changes no outcome, but is cheap to
    reassess, so every changed entry counts)."""
    parts = changed_parts(old, new)
    if old is None or any(p != "catalogue" for p in parts):
        return Affected(everyone=bool(parts) or old is None)
    names = set(old.catalogue) | set(new.catalogue)
    return Affected(False, frozenset(n for n in names if old.catalogue.get(n) != new.catalogue.get(n)))


# -- readiness --------------------------------------------------------------------------------

class Assessment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Readiness
    blocking_applications: list[BlockingApplication] = Field(default_factory=list)
    hardware_shortfalls: list[str] = Field(default_factory=list)
    policy_version: int = Field(ge=1)
    target: OperatingSystem


def _runs_at_least(os: OperatingSystem, target: OperatingSystem) -> bool:
    if os.family is not target.family:
        return False
    if os.family is OsFamily.WINDOWS:
        return WINDOWS_VERSIONS.index(os.version) >= WINDOWS_VERSIONS.index(target.version)
    return tuple(int(p) for p in os.version.split(".")) >= tuple(int(p) for p in target.version.split("."))


def cannot_run(hardware: Hardware, needs: OsLifecycle) -> list[str]:
    """Why the hardware cannot run the OS at all (empty: it can)."""
    why = []
    if hardware.cpu_arch not in needs.architectures:
        allowed = "/".join(a.value for a in needs.architectures)
        why.append(f"CPU {hardware.cpu_arch.value} cannot run {os_name(needs.os)} ({allowed})")
    if hardware.ram_mb < needs.min_ram_mb:
        why.append(f"RAM {hardware.ram_mb} MB < {needs.min_ram_mb} MB that {os_name(needs.os)} needs")
    if hardware.disk_gb < needs.min_disk_gb:
        why.append(f"disk {hardware.disk_gb} GB < {needs.min_disk_gb} GB that {os_name(needs.os)} needs")
    return why


def below_minimum(hardware: Hardware, minimum: MinimumHardware) -> list[str]:
    why = []
    if hardware.ram_mb < minimum.ram_mb:
        why.append(f"RAM {hardware.ram_mb} MB < {minimum.ram_mb} MB minimum")
    if hardware.disk_gb < minimum.disk_gb:
        why.append(f"disk {hardware.disk_gb} GB < {minimum.disk_gb} GB minimum")
    if hardware.cpu_cores < minimum.cpu_cores:
        why.append(f"{hardware.cpu_cores} CPU cores < {minimum.cpu_cores} minimum")
    return why


def blockers(applications: list[str], catalogue: dict[str, CatalogueEntry]) -> list[BlockingApplication]:
    """Installed applications the catalogue marks incompatible or awaiting remediation (an
    application the catalogue does not list is taken as compatible)."""
    found = []
    for name in applications:
        entry = catalogue.get(name)
        if entry is not None and entry.compatibility is not Compatibility.COMPATIBLE:
            found.append(BlockingApplication(name=name, compatibility=entry.compatibility, owner=entry.owner,
                                             expected_fix=entry.expected_fix))
    return found


def assess(kind: DeviceKind, os: OperatingSystem, hardware: Hardware, applications: list[str],
           policy: Policy) -> Assessment:
    """Out of scope, already compliant, blocked, dispose, replace, upgrade in place: the first
    that holds. Blockers come before hardware: a new device would be blocked by the same
    application. Shortfalls are named whatever the outcome, so a blocked device's hardware
    verdict is known too."""
    shortfalls = cannot_run(hardware, policy.target_entry)
    unfit = bool(shortfalls)
    shortfalls += below_minimum(hardware, policy.minimum)
    blocking = blockers(applications, policy.catalogue)

    def verdict(outcome: Readiness, *, named: bool = True) -> Assessment:
        return Assessment(outcome=outcome, blocking_applications=blocking if named else [],
                          hardware_shortfalls=shortfalls if named else [], policy_version=policy.version,
                          target=policy.target)

    if kind not in policy.scope or os.family is not policy.target.family:
        return verdict(Readiness.OUT_OF_SCOPE, named=False)
    if _runs_at_least(os, policy.target):
        return verdict(Readiness.ALREADY_COMPLIANT, named=False)
    if blocking:
        return verdict(Readiness.BLOCKED)
    if unfit:
        return verdict(Readiness.DISPOSE)
    if shortfalls:
        return verdict(Readiness.REPLACE)
    return verdict(Readiness.UPGRADE_IN_PLACE)


# -- the device's migration record -----------------------------------------------------------

ENDED: tuple[SagaState, ...] = (SagaState.MIGRATED, SagaState.FAILED, SagaState.UNSCHEDULED)
"""The states a saga ends in."""


class Saga(BaseModel):
    """A device's migration in a wave: where it stands, which step is next and when it is due."""

    model_config = ConfigDict(extra="forbid")

    wave_id: ShortText
    state: SagaState
    scheduled_for: date
    next_step: SagaStep | None = None
    """The step to run next; None before the saga starts and after it ends."""
    attempt: int = Field(default=0, ge=0)
    due_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    os_before: OperatingSystem
    target: OperatingSystem
    failure_reason: str | None = None

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class DeviceRecord(BaseModel):
    """One device as migration knows it: the facts it was assessed on, its readiness, its
    replacement and its saga. One document per device, keyed by asset tag."""

    model_config = ConfigDict(extra="forbid")

    asset_tag: AssetTag
    version: int = Field(ge=1)
    inventory_version: int = Field(ge=1, description="The inventory version these facts come from")
    kind: DeviceKind
    os: OperatingSystem
    hardware: Hardware
    location: Location
    applications: list[ApplicationName] = Field(default_factory=list)
    readiness: Assessment | None = None
    assessed_at: AwareDatetime | None = None
    need_id: str | None = None
    replaced_by: AssetTag | None = None
    sanitisation: Sanitisation | None = None
    saga: Saga | None = None

    @property
    def wave_id(self) -> str | None:
        return self.saga.wave_id if self.saga is not None and self.saga.state is not SagaState.UNSCHEDULED else None


DeviceChange = Change[DeviceRecord]


@dataclass(frozen=True)
class Revised(Change[V]):
    """A value that changed without anything to announce (facts kept, a wave's daily
    admission): written all the same."""

    @property
    def changed(self) -> bool:
        return True


def _next(record: DeviceRecord, **changes: object) -> DeviceRecord:
    return record.model_copy(update={**changes, "version": record.version + 1})


def _assessed_event(record: DeviceRecord, assessment: Assessment, previous: Readiness | None,
                    now: datetime) -> ev.ReadinessAssessedV1:
    return ev.ReadinessAssessedV1(
        asset_tag=record.asset_tag, kind=record.kind, site=record.location.site, borough=record.location.borough,
        unit=record.location.unit, hardware_model=record.hardware.model, os=record.os,
        target=assessment.target, outcome=assessment.outcome, previous_outcome=previous,
        blocking_applications=assessment.blocking_applications,
        hardware_shortfalls=assessment.hardware_shortfalls, policy_version=assessment.policy_version,
        occurred_at=now)


def _same_verdict(a: Assessment | None, b: Assessment) -> bool:
    return a is not None and a.model_dump(exclude={"policy_version"}) == b.model_dump(exclude={"policy_version"})


def need_id_of(asset_tag: str) -> str:
    """One need per device to replace: the same device always asks under the same id."""
    return f"NEED-{asset_tag}"


NEEDS_REPLACEMENT = (Readiness.REPLACE, Readiness.DISPOSE)


def reassess(record: DeviceRecord, policy: Policy | None, now: datetime) -> DeviceChange:
    """Assess the record against ``policy``; announce it if the verdict changed, and ask for a
    replacement (once per device) when the device is to be replaced or disposed of. A device
    in a saga or already replaced keeps its verdict until that ends."""
    if policy is None or record.replaced_by is not None:
        return Change(record)
    if record.saga is not None and record.saga.started and not record.saga.ended:
        return Change(record)
    assessment = assess(record.kind, record.os, record.hardware, record.applications, policy)
    if _same_verdict(record.readiness, assessment):
        return Change(record)
    previous = record.readiness.outcome if record.readiness is not None else None
    events: list[tuple[str, BaseModel]] = [
        ("migration.device.assessed.v1", _assessed_event(record, assessment, previous, now))]
    need_id = record.need_id
    if assessment.outcome in NEEDS_REPLACEMENT and need_id is None:
        need_id = need_id_of(record.asset_tag)
        kind = record.kind if assessment.outcome is Readiness.REPLACE else policy.replacement_kind
        reason = "; ".join(assessment.hardware_shortfalls)[:120] or "hardware below the minimum"
        events.append(("migration.replacement.needed.v1", ev.ReplacementNeededV1(
            need_id=need_id, site=record.location.site, borough=record.location.borough, kind=kind, quantity=1,
            replaces=[record.asset_tag], reason=reason)))
    after = _next(record, readiness=assessment, assessed_at=now, need_id=need_id)
    saga = record.saga
    leaves = assessment.outcome is not Readiness.UPGRADE_IN_PLACE
    if saga is not None and not saga.started and not saga.ended and leaves:
        # scheduled, not started, and no longer ready: out of its wave, saying why
        named = ", ".join(b.name for b in assessment.blocking_applications)
        reason = f"readiness now {assessment.outcome.value}" + (f": {named}" if named else "")
        events.append(("migration.device.unscheduled.v1", ev.DeviceUnscheduledV1(
            **_where(after, saga, now), reason=reason[:120])))  # type: ignore[arg-type]
        after = after.model_copy(update={"saga": saga.model_copy(update={"state": SagaState.UNSCHEDULED,
                                                                        "ended_at": now})})
    return Change(after, events)


def observe(record: DeviceRecord | None, device: DeviceSnapshot, policy: Policy | None,
            now: datetime) -> DeviceChange | None:
    """A device as inventory announced it: take its facts (unless older than those held) and
    reassess. None when the announcement is older than what the record holds."""
    facts = {"kind": device.kind, "os": device.os, "hardware": device.hardware, "location": device.location,
             "applications": list(device.applications), "inventory_version": device.version}
    if record is None:
        fresh = DeviceRecord(asset_tag=device.asset_tag, version=1, **facts)  # type: ignore[arg-type]
        change = reassess(fresh, policy, now)
        return Change(change.value.model_copy(update={"version": 1}), change.events)
    if device.version <= record.inventory_version:
        return None
    updated = record.model_copy(update=facts)
    change = reassess(updated, policy, now)
    return Revised(change.value.model_copy(update={"version": record.version + 1}), change.events)


# -- replacement and disposal -----------------------------------------------------------------

def pair(record: DeviceRecord, replacement: str, replacement_kind: DeviceKind, now: datetime) -> DeviceChange:
    if record.replaced_by == replacement:
        return Change(record)
    if record.replaced_by is not None:
        raise StateError(f"device {record.asset_tag} is replaced by {record.replaced_by} already")
    if record.need_id is None:
        raise StateError(f"device {record.asset_tag} has no replacement need")
    event = ev.ReplacementPairedV1(
        asset_tag=record.asset_tag, replacement_asset_tag=replacement, need_id=record.need_id, kind=record.kind,
        replacement_kind=replacement_kind, site=record.location.site, borough=record.location.borough,
        occurred_at=now)
    return Change(_next(record, replaced_by=replacement), [("migration.device.replacement_paired.v1", event)])


def request_disposal(record: DeviceRecord, sanitisation: Sanitisation, now: datetime) -> DeviceChange:
    if record.sanitisation == sanitisation:
        return Change(record)
    if record.replaced_by is None:
        raise StateError(f"device {record.asset_tag} is not replaced yet; only a replaced device is disposed of")
    if record.sanitisation is not None:
        raise StateError(f"device {record.asset_tag} was sanitised already ({record.sanitisation.certificate_id})")
    if sanitisation.performed_on > now.date():
        raise DomainError(f"the sanitisation date {sanitisation.performed_on} is in the future", "performed_on")
    event = ev.DisposalRequestedV1(
        asset_tag=record.asset_tag, kind=record.kind, site=record.location.site, borough=record.location.borough,
        replaced_by=record.replaced_by, sanitisation=sanitisation, occurred_at=now)
    return Change(_next(record, sanitisation=sanitisation), [("migration.device.disposal_requested.v1", event)])


# -- the saga ---------------------------------------------------------------------------------

STEPS: tuple[tuple[SagaStep, SagaState], ...] = (
    (SagaStep.BACK_UP, SagaState.BACKED_UP),
    (SagaStep.DEPLOY_OS, SagaState.OS_DEPLOYED),
    (SagaStep.VERIFY, SagaState.VERIFIED),
)
STATE_AFTER = dict(STEPS)
NEXT_STEP: dict[SagaStep, SagaStep | None] = {
    SagaStep.BACK_UP: SagaStep.DEPLOY_OS, SagaStep.DEPLOY_OS: SagaStep.VERIFY, SagaStep.VERIFY: None}


@dataclass(frozen=True, slots=True)
class StepResult:
    ok: bool
    duration_s: float
    reason: str | None = None


def _where(record: DeviceRecord, saga: Saga, now: datetime) -> dict[str, object]:
    return {"asset_tag": record.asset_tag, "wave_id": saga.wave_id, "kind": record.kind,
            "site": record.location.site, "borough": record.location.borough, "occurred_at": now}


def schedule(record: DeviceRecord, wave_id: str, on: date, target: OperatingSystem, now: datetime) -> DeviceChange:
    """Put the device in a wave, due on ``on`` (again, with a new date, if the wave was resumed)."""
    saga = record.saga
    if saga is not None and saga.wave_id != wave_id and not saga.ended:
        raise StateError(f"device {record.asset_tag} is in wave {saga.wave_id} already")
    if saga is not None and saga.wave_id == wave_id and (saga.started or saga.ended):
        return Change(record)
    if saga is not None and saga.state is SagaState.MIGRATED:
        raise StateError(f"device {record.asset_tag} is migrated already")
    if saga is not None and saga.wave_id == wave_id and saga.scheduled_for == on:
        return Change(record)
    fresh = Saga(wave_id=wave_id, state=SagaState.SCHEDULED, scheduled_for=on, os_before=record.os, target=target)
    event = ev.DeviceScheduledV1(**_where(record, fresh, now), scheduled_for=on,  # type: ignore[arg-type]
                                 os_before=record.os, target=target)
    return Change(_next(record, saga=fresh), [("migration.device.scheduled.v1", event)])


def unschedule(record: DeviceRecord, reason: str, now: datetime) -> DeviceChange:
    saga = record.saga
    if saga is None or saga.started or saga.ended:
        return Change(record)
    after = saga.model_copy(update={"state": SagaState.UNSCHEDULED, "ended_at": now})
    event = ev.DeviceUnscheduledV1(**_where(record, saga, now), reason=reason)  # type: ignore[arg-type]
    return Change(_next(record, saga=after), [("migration.device.unscheduled.v1", event)])


def start(record: DeviceRecord, now: datetime) -> DeviceChange:
    saga = record.saga
    if saga is None:
        raise StateError(f"device {record.asset_tag} is in no wave")
    if saga.started or saga.ended:
        return Change(record)
    after = saga.model_copy(update={"next_step": SagaStep.BACK_UP, "attempt": 1, "due_at": now, "started_at": now})
    event = ev.MigrationStartedV1(**_where(record, saga, now), os_before=saga.os_before,  # type: ignore[arg-type]
                                  target=saga.target)
    return Change(_next(record, saga=after), [("migration.device.started.v1", event)])


def step_done(record: DeviceRecord, step: SagaStep, attempt: int, result: StepResult, max_attempts: int,
              now: datetime) -> DeviceChange:
    """The outcome of ``step`` (attempt ``attempt``): on to the next step (or migrated), a
    retry, or - when the attempts are used up - a rollback that marks the device failed.
    An outcome for a step or attempt the saga is no longer at changes nothing (a replay)."""
    saga = record.saga
    if saga is None or saga.ended or saga.next_step is not step or saga.attempt != attempt:
        return Change(record)
    where = _where(record, saga, now)
    due = now + timedelta(seconds=result.duration_s)
    if result.ok:
        state = STATE_AFTER[step]
        events: list[tuple[str, BaseModel]] = [("migration.device.step_completed.v1", ev.StepCompletedV1(
            **where, step=step, state=state, attempt=attempt, duration_s=result.duration_s))]  # type: ignore[arg-type]
        following = NEXT_STEP[step]
        if following is not None:
            after = saga.model_copy(update={"state": state, "next_step": following, "attempt": 1, "due_at": due})
            return Change(_next(record, saga=after), events)
        migrated = ev.DeviceMigratedV1(**where, os_before=saga.os_before, os_after=saga.target,  # type: ignore[arg-type]
                                       started_at=saga.started_at or now)
        events.append(("migration.device.migrated.v1", migrated))
        after = saga.model_copy(update={"state": SagaState.MIGRATED, "next_step": None, "due_at": None,
                                        "ended_at": now})
        return Change(_next(record, saga=after, os=saga.target), events)
    reason = (result.reason or f"{step.value} failed")[:120]
    retry = attempt < max_attempts
    events = [("migration.device.step_failed.v1", ev.StepFailedV1(
        **where, step=step, attempt=attempt, reason=reason, will_retry=retry,  # type: ignore[arg-type]
        duration_s=result.duration_s))]
    if retry:
        events.append(("migration.device.step_retried.v1", ev.StepRetriedV1(
            **where, step=step, attempt=attempt + 1)))  # type: ignore[arg-type]
        after = saga.model_copy(update={"attempt": attempt + 1, "due_at": due})
        return Change(_next(record, saga=after), events)
    events.append(("migration.device.rolled_back.v1", ev.DeviceRolledBackV1(
        **where, failed_step=step, reason=reason, attempts=attempt, os_restored=saga.os_before)))  # type: ignore[arg-type]
    after = saga.model_copy(update={"state": SagaState.FAILED, "next_step": None, "due_at": None, "ended_at": now,
                                    "failure_reason": f"{step.value} failed {attempt} times: {reason}"})
    return Change(_next(record, saga=after, os=saga.os_before), events)
