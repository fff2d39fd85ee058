"""Migration waves: planning by site, borough or kind, a daily capacity, a success gate
between waves, pause/resume/cancel, and the recommended pilot. Pure Python, like domain.py:
each command takes the wave and returns it changed with the events it recorded.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts import migration as ev
from contracts.common import AssetTag, DeviceKind, ShortText
from contracts.migration import SagaState, SuccessGate, WaveProgress, WaveState
from services.migration.domain import DomainError, Revised, StateError
from services.runtime.changes import Change


class WaveSpec(BaseModel):
    """A wave to plan: which devices (by site, borough, kind), from when, how many a day."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    sites: list[ShortText] = Field(default_factory=list, max_length=500)
    boroughs: list[str] = Field(default_factory=list, max_length=40)
    kinds: list[DeviceKind] = Field(default_factory=list, description="Empty: every kind the policy covers")
    start_date: date
    daily_capacity: int = Field(ge=1, le=100_000)
    gate: SuccessGate | None = None
    max_devices: int | None = Field(default=None, ge=1, le=50_000)
    pilot: bool = False

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if not self.sites and not self.boroughs:
            raise DomainError("name at least one site or borough", "sites")
        return self


class Wave(WaveSpec):
    wave_id: ShortText
    version: int = Field(ge=1)
    state: WaveState
    ready: bool = Field(default=True, description="False while its devices are being scheduled: the wave "
                                                 "job leaves it alone until then")
    planned_at: AwareDatetime | None = None
    devices: list[AssetTag] = Field(default_factory=list)
    """In the order they are scheduled."""
    started: int = Field(default=0, ge=0, description="How many of ``devices`` have started")
    active: list[AssetTag] = Field(default_factory=list, description="Started, not yet ended")
    migrated: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    unscheduled: int = Field(default=0, ge=0)
    began_on: date | None = None
    schedule_from: date
    """The day the not-yet-started devices count their schedule from (the start, or a resume)."""
    started_before: int = Field(default=0, ge=0, description="Started before ``schedule_from``")

    def progress(self) -> WaveProgress:
        n = len(self.devices)
        remaining = 0 if self.state is WaveState.CANCELLED else n - self.started
        return WaveProgress(devices=n, scheduled=remaining, in_progress=len(self.active), migrated=self.migrated,
                            failed=self.failed, unscheduled=self.unscheduled,
                            success_rate=round(self.migrated / n, 6) if n else 0.0)

    def day_of(self, index: int) -> date:
        """When device number ``index`` (0-based) of the wave is due."""
        if index < self.started_before:
            return self.schedule_from
        return self.schedule_from + timedelta(days=(index - self.started_before) // self.daily_capacity)

    def expected_end(self) -> date:
        return self.day_of(max(len(self.devices) - 1, 0))

    def due_by(self, today: date) -> int:
        """How many devices should have started by the end of ``today``."""
        if today < self.schedule_from:
            return self.started_before
        days = (today - self.schedule_from).days + 1
        return min(len(self.devices), self.started_before + days * self.daily_capacity)


WaveChange = Change[Wave]
TERMINAL_WAVES = (WaveState.CANCELLED, WaveState.COMPLETED)


def plan_wave(wave_id: str, spec: WaveSpec, devices: list[str], now: datetime) -> WaveChange:
    if not devices:
        raise DomainError("no device in that scope is ready to upgrade in place and free of another wave", "sites")
    wave = Wave(**spec.model_dump(), wave_id=wave_id, version=1, state=WaveState.PLANNED, devices=devices,
                ready=False, planned_at=now,
                schedule_from=spec.start_date)
    event = ev.WavePlannedV1(wave_id=wave_id, name=spec.name, sites=spec.sites, boroughs=spec.boroughs,
                             kinds=spec.kinds, start_date=spec.start_date, daily_capacity=spec.daily_capacity,
                             gate=spec.gate, pilot=spec.pilot, expected_end=wave.expected_end(),
                             progress=wave.progress(), occurred_at=now)
    return Change(wave, [("migration.wave.planned.v1", event)])


def _wave_next(wave: Wave, **changes: object) -> Wave:
    return wave.model_copy(update={**changes, "version": wave.version + 1})


def gate_open(wave: Wave, previous: Wave | None) -> bool:
    if wave.gate is None:
        return True
    return previous is not None and previous.progress().success_rate >= wave.gate.success_rate


def start_wave(wave: Wave, today: date, gate_is_open: bool, now: datetime) -> WaveChange:
    """A planned wave starts on its start date once its gate is open."""
    if wave.state is not WaveState.PLANNED or today < wave.start_date or not gate_is_open:
        return Change(wave)
    after = _wave_next(wave, state=WaveState.RUNNING, schedule_from=max(today, wave.start_date), began_on=today)
    return Change(after, [("migration.wave.started.v1", ev.WaveStartedV1(
        wave_id=wave.wave_id, state=after.state, progress=after.progress(), occurred_at=now))])


def pause_wave(wave: Wave, reason: str | None, now: datetime) -> WaveChange:
    if wave.state is WaveState.PAUSED:
        return Change(wave)
    if wave.state is not WaveState.RUNNING and wave.state is not WaveState.PLANNED:
        raise StateError(f"wave {wave.wave_id} is {wave.state.value}; only a planned or running wave can pause")
    after = _wave_next(wave, state=WaveState.PAUSED)
    return Change(after, [("migration.wave.paused.v1", ev.WavePausedV1(
        wave_id=wave.wave_id, state=after.state, progress=after.progress(), reason=reason, occurred_at=now))])


def resume_wave(wave: Wave, today: date, now: datetime) -> WaveChange:
    """The devices not yet started are due again from ``today`` (or the start date, if later)
    at the daily capacity; a wave paused before it started is planned again."""
    if wave.state is not WaveState.PAUSED:
        raise StateError(f"wave {wave.wave_id} is {wave.state.value}; only a paused wave can resume")
    state = WaveState.RUNNING if wave.began_on is not None else WaveState.PLANNED
    after = _wave_next(wave, state=state, schedule_from=max(today, wave.start_date), started_before=wave.started)
    return Change(after, [("migration.wave.resumed.v1", ev.WaveResumedV1(
        wave_id=wave.wave_id, state=after.state, progress=after.progress(), expected_end=after.expected_end(),
        occurred_at=now))])


def cancel_wave(wave: Wave, reason: str | None, now: datetime) -> WaveChange:
    if wave.state is WaveState.CANCELLED:
        return Change(wave)
    if wave.state is WaveState.COMPLETED:
        raise StateError(f"wave {wave.wave_id} is completed; there is nothing to cancel")
    after = _wave_next(wave, state=WaveState.CANCELLED, unscheduled=len(wave.devices) - wave.started)
    return Change(after, [("migration.wave.cancelled.v1", ev.WaveCancelledV1(
        wave_id=wave.wave_id, state=after.state, progress=after.progress(), reason=reason, occurred_at=now))])


def take_turn(wave: Wave, today: date, ended: dict[str, SagaState], now: datetime) -> WaveChange:
    """The wave's day: count the active devices that ended (``ended``: asset tag -> final
    state; unscheduled for one taken out of the wave before it started), admit the devices
    due by ``today`` into ``active`` (a running wave only), and
    complete the wave when every device has ended."""
    if wave.state in TERMINAL_WAVES and not wave.active:
        return Change(wave)
    migrated = wave.migrated + sum(1 for t in wave.active if ended.get(t) is SagaState.MIGRATED)
    failed = wave.failed + sum(1 for t in wave.active if ended.get(t) is SagaState.FAILED)
    unscheduled = wave.unscheduled + sum(1 for t in wave.active if ended.get(t) is SagaState.UNSCHEDULED)
    active = [t for t in wave.active if t not in ended]
    started = wave.started
    if wave.state is WaveState.RUNNING:
        due = wave.due_by(today)
        active += wave.devices[started:due] if due > started else []
        started = max(started, due)
    changes: dict[str, object] = {"migrated": migrated, "failed": failed, "unscheduled": unscheduled,
                                  "active": active, "started": started}
    if all(getattr(wave, k) == v for k, v in changes.items()):
        return Change(wave)
    after = _wave_next(wave, **changes)
    events: list[tuple[str, BaseModel]] = []
    if after.state is WaveState.RUNNING and after.started == len(after.devices) and not after.active:
        after = after.model_copy(update={"state": WaveState.COMPLETED})
        events.append(("migration.wave.completed.v1", ev.WaveCompletedV1(
            wave_id=wave.wave_id, state=after.state, progress=after.progress(), occurred_at=now)))
    return Revised(after, events)


def recommend_pilot(candidates: dict[str, set[str]], must_cover: set[str]) -> tuple[list[str], set[str]]:
    """Devices covering every item of ``must_cover`` (critical applications and hardware
    models, each device listing the items it carries): greedy set cover, which picks the
    device covering most uncovered items each time. Greedy is within a factor ln(n)+1 of the
    smallest cover (n = items); returns the devices and the items no device carries."""
    uncovered = set(must_cover)
    chosen: list[str] = []
    pool = {tag: items & uncovered for tag, items in candidates.items()}
    while uncovered:
        best = max(sorted(pool), key=lambda t: len(pool[t] & uncovered), default=None)
        if best is None or not pool[best] & uncovered:
            break
        chosen.append(best)
        uncovered -= pool.pop(best)
    return chosen, uncovered
