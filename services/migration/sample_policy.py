"""The programme's own choice: Windows 8.1 on 64-bit hardware, with the specialist applications
as the force catalogued them. Windows 10 is in the lifecycle table, so the policy shows the
warning that the target's support ends sooner."""

from __future__ import annotations

from datetime import date

from contracts.common import DeviceKind
from services.migration.domain import CatalogueEntry, MinimumHardware, OsLifecycle, PolicySpec


def _entry(compatibility: str, owner: str, fix: date | None = None, critical: bool = True) -> CatalogueEntry:
    return CatalogueEntry.model_validate({"compatibility": compatibility, "owner": owner, "expected_fix": fix,
                                          "critical": critical})


def sample_policy() -> PolicySpec:
    return PolicySpec.model_validate({
        "target": {"family": "windows", "version": "8.1"},
        "scope": [DeviceKind.DESKTOP, DeviceKind.LAPTOP],
        "minimum": MinimumHardware(ram_mb=2048, disk_gb=80, cpu_cores=2),
        "replacement_kind": DeviceKind.LAPTOP,
        "lifecycle": [
            OsLifecycle.model_validate({"os": {"family": "windows", "version": "XP"}, "support_ends": date(2014, 4, 8),
                                        "min_ram_mb": 128, "min_disk_gb": 2}),
            OsLifecycle.model_validate({"os": {"family": "windows", "version": "7"}, "support_ends": date(2020, 1, 14),
                                        "min_ram_mb": 1024, "min_disk_gb": 16}),
            OsLifecycle.model_validate({"os": {"family": "windows", "version": "8.1"},
                                        "support_ends": date(2023, 1, 10), "min_ram_mb": 2048, "min_disk_gb": 20,
                                        "architectures": ["x64"]}),
            OsLifecycle.model_validate({"os": {"family": "windows", "version": "10"},
                                        "support_ends": date(2025, 10, 14), "min_ram_mb": 2048, "min_disk_gb": 32,
                                        "architectures": ["x64"]}),
        ],
        "catalogue": {
            "Microsoft Office 2003": _entry("compatible", "Desktop Services", critical=False),
            "CRIS Crime Reporting": _entry("compatible", "Crime Systems"),
            "CRIMINT Intelligence": _entry("compatible", "Intelligence Systems"),
            "PNC Terminal Client": _entry("compatible", "Home Office PNC"),
            "HOLMES 2 Major Incident": _entry("compatible", "Major Investigations"),
            "MERLIN Vulnerable Persons": _entry("needs_remediation", "Public Protection", date(2015, 11, 30)),
            "IDENT1 Livescan": _entry("needs_remediation", "Forensics", date(2016, 2, 29)),
            "Airwave Dispatch Console": _entry("needs_remediation", "Command and Control", date(2016, 6, 30)),
            "NSPIS Custody": _entry("incompatible", "Custody Systems", date(2016, 12, 31)),
            "AWARE Command and Control": _entry("incompatible", "Command and Control"),
        },
    })
