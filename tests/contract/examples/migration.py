"""Migration events: a device assessed, migrated in a wave (one step retried), another rolled
back, a third replaced and disposed of; the wave's life; the policy with its support warning."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel

from contracts import migration as m
from contracts.common import CpuArch, DeviceKind, Sanitisation
from contracts.envelope import Envelope, new_envelope
from tests.contract.examples.inventory import T0, _windows

WAVE = "W-CAMDEN-1"
TAG, OTHER, OLD, NEW = "MPS-D-000042", "MPS-D-000043", "MPS-D-000001", "MPS-L-000001"
SITE, BOROUGH = "Camden Police Station", "Camden"


def _at(minutes: int) -> object:
    return T0 + timedelta(minutes=minutes)


def _device(tag: str, minutes: int) -> dict[str, object]:
    return {"asset_tag": tag, "wave_id": WAVE, "kind": DeviceKind.DESKTOP, "site": SITE,
            "borough": BOROUGH, "occurred_at": _at(minutes)}


def _progress(**counts: int) -> m.WaveProgress:
    values = {"devices": 2, "scheduled": 0, "in_progress": 0, "migrated": 0, "failed": 0, **counts}
    return m.WaveProgress(**values, success_rate=values["migrated"] / values["devices"])


def examples() -> list[Envelope]:
    xp, target = _windows("XP"), _windows("8.1")
    need = m.ReplacementNeededV1(need_id="NEED-MPS-D-000001", site=SITE, borough=BOROUGH,
                                 kind=DeviceKind.LAPTOP, quantity=1, replaces=[OLD],
                                 reason="hardware cannot run Windows 8.1")
    sanitised = Sanitisation(method="NIST 800-88 purge", certificate_id="CERT-0001",
                             performed_on=date(2015, 8, 5), operator="Blancco Ltd")
    warning = m.SupportWarning(
        target=target, target_support_ends=date(2023, 1, 10), alternative=_windows("10"),
        alternative_support_ends=date(2025, 10, 14),
        message="Windows 8.1 support ends 2023-01-10, sooner than Windows 10 (2025-10-14)")
    device_events: list[tuple[str, str, BaseModel]] = [
        ("migration.device.assessed.v1", TAG, m.ReadinessAssessedV1(
            asset_tag=TAG, kind=DeviceKind.DESKTOP, site=SITE, borough=BOROUGH, unit="Territorial",
            hardware_model="Dell OptiPlex 745", os=xp, target=target, outcome=m.Readiness.UPGRADE_IN_PLACE,
            policy_version=1, occurred_at=_at(0))),
        ("migration.device.assessed.v1", OTHER, m.ReadinessAssessedV1(
            asset_tag=OTHER, kind=DeviceKind.DESKTOP, site=SITE, borough=BOROUGH, os=xp, target=target,
            outcome=m.Readiness.BLOCKED, previous_outcome=m.Readiness.UPGRADE_IN_PLACE,
            blocking_applications=[m.BlockingApplication(
                name="CRIS Crime Reporting", compatibility=m.Compatibility.NEEDS_REMEDIATION,
                owner="Crime Systems", expected_fix=date(2016, 3, 31))],
            policy_version=2, occurred_at=_at(1))),
        ("migration.device.scheduled.v1", TAG, m.DeviceScheduledV1(
            **_device(TAG, 2), scheduled_for=date(2015, 8, 10), os_before=xp, target=target)),
        ("migration.device.started.v1", TAG, m.MigrationStartedV1(**_device(TAG, 3), os_before=xp, target=target)),
        ("migration.device.step_completed.v1", TAG, m.StepCompletedV1(
            **_device(TAG, 4), step=m.SagaStep.BACK_UP, state=m.SagaState.BACKED_UP, attempt=1, duration_s=600)),
        ("migration.device.step_failed.v1", TAG, m.StepFailedV1(
            **_device(TAG, 5), step=m.SagaStep.DEPLOY_OS, attempt=1, reason="image download timed out",
            will_retry=True, duration_s=900)),
        ("migration.device.step_retried.v1", TAG, m.StepRetriedV1(**_device(TAG, 6), step=m.SagaStep.DEPLOY_OS,
                                                                  attempt=2)),
        ("migration.device.migrated.v1", TAG, m.DeviceMigratedV1(
            **_device(TAG, 9), os_before=xp, os_after=target, started_at=_at(3))),
        ("migration.device.rolled_back.v1", OTHER, m.DeviceRolledBackV1(
            **_device(OTHER, 9), failed_step=m.SagaStep.VERIFY, reason="verification failed: CAD client",
            attempts=3, os_restored=xp)),
        ("migration.device.unscheduled.v1", OTHER, m.DeviceUnscheduledV1(**_device(OTHER, 10),
                                                                         reason="wave cancelled")),
        ("migration.device.replacement_paired.v1", OLD, m.ReplacementPairedV1(
            asset_tag=OLD, replacement_asset_tag=NEW, need_id=need.need_id, kind=DeviceKind.DESKTOP,
            replacement_kind=DeviceKind.LAPTOP, site=SITE, borough=BOROUGH, occurred_at=_at(20))),
        ("migration.device.disposal_requested.v1", OLD, m.DisposalRequestedV1(
            asset_tag=OLD, kind=DeviceKind.DESKTOP, site=SITE, borough=BOROUGH, replaced_by=NEW,
            sanitisation=sanitised, occurred_at=_at(30))),
    ]
    planned = m.WavePlannedV1(wave_id=WAVE, name="Camden pilot", sites=[SITE], boroughs=[BOROUGH],
                              kinds=[DeviceKind.DESKTOP], start_date=date(2015, 8, 10), daily_capacity=50,
                              gate=m.SuccessGate(after_wave="W-PILOT", success_rate=0.95), pilot=False,
                              expected_end=date(2015, 8, 10), progress=_progress(scheduled=2), occurred_at=_at(2))
    wave_events: list[tuple[str, m.WavePlannedV1 | m.WaveChangedV1]] = [
        ("migration.wave.planned.v1", planned),
        ("migration.wave.started.v1", m.WaveStartedV1(wave_id=WAVE, state=m.WaveState.RUNNING,
                                                      progress=_progress(scheduled=2), occurred_at=_at(3))),
        ("migration.wave.paused.v1", m.WavePausedV1(wave_id=WAVE, state=m.WaveState.PAUSED,
                                                    progress=_progress(scheduled=1, in_progress=1),
                                                    reason="change freeze", occurred_at=_at(4))),
        ("migration.wave.resumed.v1", m.WaveResumedV1(wave_id=WAVE, state=m.WaveState.RUNNING,
                                                      progress=_progress(scheduled=1, in_progress=1),
                                                      expected_end=date(2015, 8, 11), occurred_at=_at(5))),
        ("migration.wave.completed.v1", m.WaveCompletedV1(wave_id=WAVE, state=m.WaveState.COMPLETED,
                                                          progress=_progress(migrated=1, failed=1),
                                                          gate_met=False, occurred_at=_at(9))),
        ("migration.wave.cancelled.v1", m.WaveCancelledV1(wave_id="W-CAMDEN-2", state=m.WaveState.CANCELLED,
                                                          progress=_progress(unscheduled=2),
                                                          reason="sites closing", occurred_at=_at(10))),
    ]
    policy = m.PolicyChangedV1(version=1, target=target, target_support_ends=date(2023, 1, 10), warning=warning,
                               changed=["target", "minimum", "catalogue"],
                               scope=[DeviceKind.DESKTOP, DeviceKind.LAPTOP], min_ram_mb=2048, min_disk_gb=60,
                               min_cpu_cores=2, catalogue_size=12, blocking_applications=["CRIS Crime Reporting"],
                               lifecycle=[m.OsSupport(os=target, support_ends=date(2023, 1, 10), min_ram_mb=2048,
                                                      min_disk_gb=20, architectures=[CpuArch.X64])],
                               occurred_at=T0)

    def envelope(name: str, subject: str, data: BaseModel) -> Envelope:
        return new_envelope(type=name, source="/estate/migration", subject=subject, time=T0, data=data)

    return [
        envelope("migration.replacement.needed.v1", need.need_id, need),
        envelope("migration.policy.changed.v1", m.POLICY_KEY, policy),
        *(envelope(name, tag, data) for name, tag, data in device_events),
        *(envelope(name, data.wave_id, data) for name, data in wave_events),
    ]
