"""Waves: daily capacity, pause/resume/cancel, completion, the success gate between waves."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from contracts.migration import SagaState, SuccessGate, WaveState
from services.migration import domain, waves
from services.migration.waves import WaveSpec

NOW = datetime(2015, 8, 10, 8, tzinfo=UTC)
START = date(2015, 8, 10)
TAGS = [f"MPS-D-{n:06d}" for n in range(1, 6)]


def _spec(**over: object) -> WaveSpec:
    return WaveSpec.model_validate({"name": "Camden", "sites": ["Camden Police Station"], "start_date": START,
                                    "daily_capacity": 2, **over})


def _running() -> waves.Wave:
    planned = waves.plan_wave("W-1", _spec(), TAGS, NOW).value
    return waves.start_wave(planned, START, True, NOW).value


def test_a_plan_schedules_devices_by_daily_capacity() -> None:
    change = waves.plan_wave("W-1", _spec(), TAGS, NOW)
    wave = change.value
    assert [wave.day_of(i) for i in range(5)] == [START, START, date(2015, 8, 11), date(2015, 8, 11),
                                                   date(2015, 8, 12)]
    assert change.events[0][1].expected_end == date(2015, 8, 12)  # type: ignore[attr-defined]
    assert wave.progress().scheduled == 5


@pytest.mark.parametrize(("over", "field"), [({"daily_capacity": 0}, "daily_capacity"),
                                             ({"sites": []}, "sites")])
def test_bad_wave_specs_are_refused(over: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field if field == "daily_capacity" else "site"):
        _spec(**over)


def test_an_empty_scope_is_refused() -> None:
    with pytest.raises(domain.DomainError, match="no device"):
        waves.plan_wave("W-1", _spec(), [], NOW)


def test_a_wave_starts_on_its_date_only_when_its_gate_is_open() -> None:
    planned = waves.plan_wave("W-1", _spec(), TAGS, NOW).value
    assert not waves.start_wave(planned, date(2015, 8, 9), True, NOW).changed
    assert not waves.start_wave(planned, START, False, NOW).changed
    started = waves.start_wave(planned, START, True, NOW)
    assert started.value.state is WaveState.RUNNING
    assert [n for n, _ in started.events] == ["migration.wave.started.v1"]


def test_each_day_admits_the_capacity_and_the_wave_completes_when_all_ended() -> None:
    wave = waves.take_turn(_running(), START, {}, NOW).value
    assert wave.active == TAGS[:2] and wave.started == 2
    assert not waves.take_turn(wave, START, {}, NOW).changed  # same day again: nothing new
    wave = waves.take_turn(wave, date(2015, 8, 12), {TAGS[0]: SagaState.MIGRATED}, NOW).value
    assert wave.active == TAGS[1:] and wave.migrated == 1
    done = waves.take_turn(wave, date(2015, 8, 12), dict.fromkeys(TAGS[1:4], SagaState.MIGRATED)
                            | {TAGS[4]: SagaState.FAILED}, NOW)
    assert done.value.state is WaveState.COMPLETED
    assert [n for n, _ in done.events] == ["migration.wave.completed.v1"]
    progress = done.value.progress()
    assert (progress.migrated, progress.failed, progress.success_rate) == (4, 1, 0.8)


def test_a_paused_wave_admits_no_one_and_resumes_from_today() -> None:
    wave = waves.take_turn(_running(), START, {}, NOW).value
    paused = waves.pause_wave(wave, "change freeze", NOW).value
    assert not waves.take_turn(paused, date(2015, 8, 20), {}, NOW).changed
    resumed = waves.resume_wave(paused, date(2015, 8, 20), NOW)
    assert resumed.value.state is WaveState.RUNNING
    assert resumed.events[0][1].expected_end == date(2015, 8, 21)  # type: ignore[attr-defined]
    assert waves.take_turn(resumed.value, date(2015, 8, 20), {}, NOW).value.started == 4


def test_cancelling_leaves_the_unstarted_devices_out_and_finished_waves_refuse_changes() -> None:
    wave = waves.take_turn(_running(), START, {}, NOW).value
    cancelled = waves.cancel_wave(wave, "sites closing", NOW).value
    assert cancelled.progress().unscheduled == 3 and cancelled.progress().scheduled == 0
    after = waves.take_turn(cancelled, date(2015, 8, 20), dict.fromkeys(TAGS[:2], SagaState.MIGRATED), NOW).value
    assert after.migrated == 2 and after.active == [] and after.state is WaveState.CANCELLED
    with pytest.raises(domain.StateError, match="only a planned or running wave can pause"):
        waves.pause_wave(cancelled, None, NOW)
    completed = after.model_copy(update={"state": WaveState.COMPLETED})
    for act in (lambda: waves.pause_wave(completed, None, NOW), lambda: waves.resume_wave(completed, START, NOW),
                lambda: waves.cancel_wave(completed, None, NOW)):
        with pytest.raises(domain.StateError):
            act()


def test_the_gate_opens_when_the_previous_wave_reaches_its_success_rate() -> None:
    gated = waves.plan_wave("W-2", _spec(gate=SuccessGate(after_wave="W-1", success_rate=0.6)), TAGS, NOW).value
    previous = _running()
    assert not waves.gate_open(gated, None)
    assert not waves.gate_open(gated, previous.model_copy(update={"migrated": 2}))  # 40%
    assert waves.gate_open(gated, previous.model_copy(update={"migrated": 3}))  # 60%
    assert waves.gate_open(_running(), None)  # no gate
