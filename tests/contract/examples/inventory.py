"""Inventory events as the service makes them: one device through its whole lifecycle."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from contracts.common import OperatingSystem, OsFamily, Sanitisation
from contracts.envelope import Envelope, new_envelope
from contracts.inventory import LifecycleState
from services.inventory import domain

T0 = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)


def _windows(version: str) -> OperatingSystem:
    return OperatingSystem(family=OsFamily.WINDOWS, version=version)


def _spec() -> domain.DeviceSpec:
    return domain.DeviceSpec.model_validate({
        "asset_tag": "MPS-D-000042", "kind": "desktop",
        "os": {"family": "windows", "version": "XP"},
        "hardware": {"model": "Dell OptiPlex 745", "cpu_model": "Core 2 Duo E6300",
                     "cpu_arch": "x64", "cpu_cores": 2, "ram_mb": 2048, "disk_gb": 160,
                     "tpm": "1.2", "firmware": "bios"},
        "location": {"site": "Camden Police Station", "borough": "Camden", "unit": "Territorial"},
        "applications": ["CRIS Crime Reporting"],
    })


def examples() -> list[Envelope]:
    at = [T0 + timedelta(days=i) for i in range(6)]
    changes = [domain.register(_spec(), at[0])]
    patch = domain.DevicePatch(os=_windows("10"))
    changes.append(domain.update(changes[-1].value, patch, at[1]))
    changes.append(domain.move(changes[-1].value, LifecycleState.MIGRATING, at[2]))
    changes.append(domain.move(changes[-1].value, LifecycleState.MIGRATED, at[3]))
    changes.append(domain.retire(changes[-1].value, "replaced by a laptop", at[4]))
    sanitised = Sanitisation(method="NIST 800-88 purge", certificate_id="CERT-0042",
                             performed_on=date(2015, 8, 8), operator="Blancco Ltd")
    changes.append(domain.dispose(changes[-1].value, sanitised, at[5]))
    envelopes = [new_envelope(type=name, source="/inventory", subject=c.value.asset_tag,
                              time=c.value.updated_at, data=event)
                 for c in changes for name, event in c.events]
    return envelopes
