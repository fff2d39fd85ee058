"""Example inputs shared by tests."""

from __future__ import annotations

from typing import Any


def device_body(tag: str = "MPS-D-900001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "asset_tag": tag, "kind": "desktop", "os": {"family": "windows", "version": "XP"},
        "hardware": {"model": "Dell OptiPlex 745", "cpu_model": "Core 2 Duo E6300", "cpu_arch": "x64",
                     "cpu_cores": 2, "ram_mb": 2048, "disk_gb": 160, "tpm": "1.2", "firmware": "bios"},
        "location": {"site": "Hammersmith Police Station", "borough": "Hammersmith and Fulham",
                     "unit": "Territorial Policing"},
        "applications": ["CRIS Crime Reporting", "Microsoft Office 2003"],
    }
    body.update(overrides)
    return body


CSV_HEADER = ("asset_tag,kind,os_family,os_version,model,cpu_model,cpu_arch,cpu_cores,ram_mb,disk_gb,"
              "tpm,firmware,site,borough,unit,applications,state")


def csv_line(tag: str, *, os_version: str = "XP", ram_mb: str = "2048", borough: str = "Camden",
             kind: str = "desktop", apps: str = "CRIS Crime Reporting;Microsoft Office 2003") -> str:
    return (f"{tag},{kind},windows,{os_version},Dell OptiPlex 745,Core 2 Duo E6300,x64,2,{ram_mb},160,1.2,bios,"
            f"{borough} Police Station,{borough},Territorial Policing,{apps},in_service")
