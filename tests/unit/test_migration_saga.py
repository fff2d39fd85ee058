"""The per-device saga: steps in order, retry with a limit, rollback, replays that change nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.common import DeviceKind, Hardware, Location, OperatingSystem
from contracts.migration import SagaState, SagaStep
from services.migration import domain, waves
from services.migration.domain import StepResult

NOW = datetime(2015, 8, 10, 8, tzinfo=UTC)
XP = OperatingSystem.model_validate({"family": "windows", "version": "XP"})
W81 = OperatingSystem.model_validate({"family": "windows", "version": "8.1"})
OK, BAD = StepResult(True, 60.0), StepResult(False, 30.0, "image download timed out")


def _record() -> domain.DeviceRecord:
    hw = Hardware.model_validate({"model": "Dell OptiPlex 760", "cpu_model": "E7400", "cpu_arch": "x64",
                                  "cpu_cores": 2, "ram_mb": 4096, "disk_gb": 250, "tpm": "1.2", "firmware": "bios"})
    return domain.DeviceRecord(asset_tag="MPS-D-000042", version=1, inventory_version=1, kind=DeviceKind.DESKTOP,
                               os=XP, hardware=hw, location=Location(site="Camden Police Station", borough="Camden",
                                                                     unit="TP"))


def _started() -> domain.DeviceRecord:
    scheduled = domain.schedule(_record(), "W-1", date(2015, 8, 10), W81, NOW).value
    return domain.start(scheduled, NOW).value


def test_schedule_and_start_announce_the_wave_date_and_the_os_before_and_after() -> None:
    scheduled = domain.schedule(_record(), "W-1", date(2015, 8, 10), W81, NOW)
    assert [n for n, _ in scheduled.events] == ["migration.device.scheduled.v1"]
    assert scheduled.value.saga is not None and scheduled.value.saga.state is SagaState.SCHEDULED
    started = domain.start(scheduled.value, NOW)
    event = started.events[0][1]
    assert started.events[0][0] == "migration.device.started.v1"
    assert (event.os_before, event.target, event.wave_id) == (XP, W81, "W-1")  # type: ignore[attr-defined]
    assert started.value.saga.next_step is SagaStep.BACK_UP  # type: ignore[union-attr]
    assert not domain.start(started.value, NOW).changed  # a second start is a replay


def test_every_step_in_order_then_migrated_with_the_new_os() -> None:
    record, names = _started(), []
    for i, step in enumerate((SagaStep.BACK_UP, SagaStep.DEPLOY_OS, SagaStep.VERIFY)):
        change = domain.step_done(record, step, 1, OK, 3, NOW + timedelta(minutes=i))
        names += [n for n, _ in change.events]
        record = change.value
    assert names == ["migration.device.step_completed.v1"] * 3 + ["migration.device.migrated.v1"]
    assert record.saga is not None and record.saga.state is SagaState.MIGRATED and record.saga.ended
    assert record.os == W81


def test_a_completed_step_is_due_after_its_duration() -> None:
    after = domain.step_done(_started(), SagaStep.BACK_UP, 1, OK, 3, NOW).value
    assert after.saga is not None
    assert after.saga.state is SagaState.BACKED_UP and after.saga.due_at == NOW + timedelta(seconds=60)


def test_a_failed_step_is_retried_until_the_limit_then_rolled_back_with_the_reason() -> None:
    record = _started()
    first = domain.step_done(record, SagaStep.BACK_UP, 1, BAD, 2, NOW)
    assert [n for n, _ in first.events] == ["migration.device.step_failed.v1", "migration.device.step_retried.v1"]
    assert first.events[0][1].will_retry is True  # type: ignore[attr-defined]
    assert first.value.saga is not None and first.value.saga.attempt == 2
    second = domain.step_done(first.value, SagaStep.BACK_UP, 2, BAD, 2, NOW)
    assert [n for n, _ in second.events] == ["migration.device.step_failed.v1", "migration.device.rolled_back.v1"]
    saga = second.value.saga
    assert saga is not None and saga.state is SagaState.FAILED and saga.ended
    assert saga.failure_reason == "back_up failed 2 times: image download timed out"
    assert second.value.os == XP
    rolled = second.events[1][1]
    assert rolled.os_restored == XP and rolled.failed_step is SagaStep.BACK_UP  # type: ignore[attr-defined]


def test_a_retry_that_succeeds_carries_on() -> None:
    retried = domain.step_done(_started(), SagaStep.BACK_UP, 1, BAD, 3, NOW).value
    on = domain.step_done(retried, SagaStep.BACK_UP, 2, OK, 3, NOW).value
    assert on.saga is not None and on.saga.next_step is SagaStep.DEPLOY_OS and on.saga.attempt == 1


@pytest.mark.parametrize(("step", "attempt"), [(SagaStep.DEPLOY_OS, 1), (SagaStep.BACK_UP, 2)])
def test_an_outcome_for_another_step_or_attempt_is_a_replay_and_changes_nothing(step: SagaStep,
                                                                                 attempt: int) -> None:
    assert not domain.step_done(_started(), step, attempt, OK, 3, NOW).changed


def test_a_restart_mid_saga_resumes_from_the_stored_record() -> None:
    """The saga lives in the record: a record read back from its stored form carries on."""
    mid = domain.step_done(_started(), SagaStep.BACK_UP, 1, OK, 3, NOW).value
    reloaded = domain.DeviceRecord.model_validate(mid.model_dump(mode="json"))
    assert reloaded == mid
    on = domain.step_done(reloaded, SagaStep.DEPLOY_OS, 1, OK, 3, NOW)
    assert [n for n, _ in on.events] == ["migration.device.step_completed.v1"]


def test_a_device_cannot_join_a_second_wave_while_in_one() -> None:
    scheduled = domain.schedule(_record(), "W-1", date(2015, 8, 10), W81, NOW).value
    with pytest.raises(domain.StateError, match="in wave W-1"):
        domain.schedule(scheduled, "W-2", date(2015, 8, 11), W81, NOW)


def test_unscheduling_only_touches_a_device_not_started() -> None:
    scheduled = domain.schedule(_record(), "W-1", date(2015, 8, 10), W81, NOW).value
    gone = domain.unschedule(scheduled, "wave cancelled", NOW)
    assert gone.value.saga is not None and gone.value.saga.state is SagaState.UNSCHEDULED
    assert not domain.unschedule(_started(), "wave cancelled", NOW).changed


def test_a_device_in_a_saga_keeps_its_verdict_until_the_saga_ends() -> None:
    from services.migration.sample_policy import sample_policy
    policy = domain.set_policy(None, sample_policy(), NOW).value
    assert not domain.reassess(_started(), policy, NOW).changed


def test_a_scheduled_device_whose_verdict_becomes_blocked_leaves_its_wave_saying_why() -> None:
    from services.migration.sample_policy import sample_policy
    policy = domain.set_policy(None, sample_policy(), NOW).value
    ready = domain.reassess(_record(), policy, NOW).value
    assert ready.readiness is not None and ready.readiness.outcome.value == "upgrade_in_place"
    scheduled = domain.schedule(ready, "W-1", date(2015, 8, 12), W81, NOW).value
    blocked = domain.reassess(scheduled.model_copy(update={"applications": ["NSPIS Custody"]}), policy, NOW)
    assert [n for n, _ in blocked.events] == ["migration.device.assessed.v1", "migration.device.unscheduled.v1"]
    assert blocked.value.saga is not None and blocked.value.saga.state is SagaState.UNSCHEDULED
    assert blocked.value.wave_id is None and blocked.value.version == scheduled.version + 1
    assert blocked.events[1][1].reason == "readiness now blocked: NSPIS Custody"  # type: ignore[attr-defined]
    # the wave's turn then finds it gone: it starts nothing, counts it unscheduled, and completes
    assert not domain.start(blocked.value, NOW).changed
    wave = waves.plan_wave("W-1", waves.WaveSpec(name="w", sites=["Camden Police Station"],
                                                   start_date=date(2015, 8, 10), daily_capacity=5),
                            [ready.asset_tag], NOW).value
    wave = waves.start_wave(wave, date(2015, 8, 10), True, NOW).value
    admitted = waves.take_turn(wave, date(2015, 8, 10), {}, NOW).value
    done = waves.take_turn(admitted, date(2015, 8, 10), {ready.asset_tag: SagaState.UNSCHEDULED}, NOW)
    assert done.value.state.value == "completed" and done.value.unscheduled == 1 and done.value.migrated == 0


def test_a_started_device_keeps_its_saga_when_its_verdict_changes() -> None:
    from services.migration.sample_policy import sample_policy
    policy = domain.set_policy(None, sample_policy(), NOW).value
    started = _started().model_copy(update={"applications": ["NSPIS Custody"]})
    assert not domain.reassess(started, policy, NOW).changed
