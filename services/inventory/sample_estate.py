"""A deterministic sample estate modelled on the Metropolitan Police Service in April 2014.

35,000 Windows XP desktops across the 32 London boroughs and the central units, on
hardware from 2004-2010 (the older part of it cannot run a 64-bit Windows 10), a share of
them carrying specialist legacy applications; Windows 7 desktops and laptops already
upgraded; tablets for officers; and the 1,000-camera body-worn video pilot in Hammersmith
and Fulham. The same seed always gives the same estate.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from contracts.common import LONDON_BOROUGHS, DeviceKind
from services.inventory.domain import DeviceSpec
from services.inventory.imports import APPLICATION_SEPARATOR, CSV_COLUMNS, ParsedRow

CENTRAL_UNITS: tuple[tuple[str, str], ...] = (
    ("New Scotland Yard", "Met Headquarters"),
    ("Empress State Building", "Specialist Crime and Operations"),
    ("Lambeth Command and Control Centre", "Met Command and Control"),
    ("Hendon Peel Centre", "Training"),
    ("Counter Terrorism Command Building", "Specialist Operations"),
)
BOROUGH_SITES = ("Police Station", "Custody Centre", "Safer Neighbourhoods Base")

# name -> (share of XP desktops carrying it, units that use it; empty = every unit)
SPECIALIST_APPLICATIONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "CRIS Crime Reporting": (0.24, ()),
    "CRIMINT Intelligence": (0.12, ()),
    "PNC Terminal Client": (0.10, ()),
    "MERLIN Vulnerable Persons": (0.07, ("Territorial Policing",)),
    "NSPIS Custody": (0.05, ("Territorial Policing",)),
    "IDENT1 Livescan": (0.02, ("Territorial Policing",)),
    "HOLMES 2 Major Incident": (0.04, ("Specialist Crime and Operations", "Specialist Operations")),
    "AWARE Command and Control": (0.03, ("Met Command and Control",)),
    "Airwave Dispatch Console": (0.02, ("Met Command and Control",)),
}
OFFICE_XP_ERA = "Microsoft Office 2003"


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    model: str
    cpu_model: str
    cpu_arch: str
    cpu_cores: int
    ram_mb: tuple[int, ...]
    disk_gb: tuple[int, ...]
    tpm: str
    firmware: str
    weight: int


XP_DESKTOPS = (
    HardwareProfile("Dell OptiPlex GX280", "Pentium 4 530", "x86", 1, (512, 1024), (40,), "none", "bios", 6),
    HardwareProfile("Dell OptiPlex GX620", "Pentium 4 630", "x64", 1, (1024,), (80,), "none", "bios", 14),
    HardwareProfile("HP Compaq dc7600", "Pentium 4 640", "x64", 1, (1024, 2048), (80,), "none", "bios", 10),
    HardwareProfile("Dell OptiPlex 745", "Core 2 Duo E6300", "x64", 2, (1024, 2048), (80, 160), "1.2", "bios", 20),
    HardwareProfile("HP Compaq dc7800", "Core 2 Duo E6550", "x64", 2, (2048,), (160,), "1.2", "bios", 20),
    HardwareProfile("Dell OptiPlex 760", "Core 2 Duo E7400", "x64", 2, (2048, 4096), (250,), "1.2", "bios", 18),
    HardwareProfile("HP Compaq 8000 Elite", "Core 2 Duo E8400", "x64", 2, (4096,), (250,), "1.2", "bios", 12),
)
WIN7_DESKTOP = HardwareProfile("HP EliteDesk 800 G1", "Core i5-4570", "x64", 4, (8192,), (500,), "2.0", "uefi", 1)
LAPTOPS = (
    HardwareProfile("Dell Latitude E6420", "Core i5-2520M", "x64", 2, (4096,), (320,), "1.2", "bios", 3),
    HardwareProfile("Lenovo ThinkPad T440", "Core i5-4300U", "x64", 2, (8192,), (256,), "1.2", "uefi", 1),
)
TABLETS = (
    ("ios", "9.3", HardwareProfile("Apple iPad Air 2", "Apple A8X", "arm64", 3, (2048,), (64,), "none", "vendor", 3)),
    ("windows", "8.1",
     HardwareProfile("Microsoft Surface Pro 3", "Core i5-4300U", "x64", 2, (4096,), (128,), "2.0", "uefi", 2)),
)
CAMERA = HardwareProfile("Axon Body", "ARM Cortex-A9", "arm64", 1, (256,), (32,), "none", "vendor", 1)
CAMERA_SITES = ("Hammersmith Police Station", "Shepherd's Bush Police Station", "Fulham Police Station")


@dataclass(frozen=True, slots=True)
class EstateSize:
    xp_desktops: int = 35_000
    win7_desktops: int = 3_000
    laptops: int = 4_000
    tablets: int = 2_500
    cameras: int = 1_000

    def scaled(self, fraction: float) -> EstateSize:
        """The same mix at ``fraction`` of the size (each kind rounded, at least one)."""
        return EstateSize(*(max(1, round(n * fraction)) for n in (
            self.xp_desktops, self.win7_desktops, self.laptops, self.tablets, self.cameras)))


def _hardware(p: HardwareProfile, rng: random.Random) -> dict[str, object]:
    return {"model": p.model, "cpu_model": p.cpu_model, "cpu_arch": p.cpu_arch, "cpu_cores": p.cpu_cores,
            "ram_mb": rng.choice(p.ram_mb), "disk_gb": rng.choice(p.disk_gb), "tpm": p.tpm,
            "firmware": p.firmware}


def _location(rng: random.Random) -> dict[str, str | None]:
    if rng.random() < 0.2:
        site, unit = rng.choice(CENTRAL_UNITS)
        return {"site": site, "borough": None, "unit": unit}
    borough = rng.choice(LONDON_BOROUGHS)
    return {"site": f"{borough} {rng.choice(BOROUGH_SITES)}", "borough": borough, "unit": "Territorial Policing"}


def _legacy_applications(unit: str, rng: random.Random) -> list[str]:
    apps = [OFFICE_XP_ERA] if rng.random() < 0.9 else []
    for name, (share, units) in SPECIALIST_APPLICATIONS.items():
        fits = not units or unit in units
        if fits and rng.random() < (share * (2.5 if units else 1)):
            apps.append(name)
    return apps


def generate(seed: int = 2014, size: EstateSize = EstateSize()) -> Iterator[DeviceSpec]:
    rng = random.Random(seed)
    cum_weights = list(itertools.accumulate(p.weight for p in XP_DESKTOPS))
    for n in range(1, size.xp_desktops + 1):
        location = _location(rng)
        yield DeviceSpec.model_validate({
            "asset_tag": f"MPS-D-{n:06d}", "kind": DeviceKind.DESKTOP, "os": {"family": "windows", "version": "XP"},
            "hardware": _hardware(rng.choices(XP_DESKTOPS, cum_weights=cum_weights)[0], rng), "location": location,
            "applications": _legacy_applications(str(location["unit"]), rng)})
    for n in range(size.xp_desktops + 1, size.xp_desktops + size.win7_desktops + 1):
        yield DeviceSpec.model_validate({
            "asset_tag": f"MPS-D-{n:06d}", "kind": DeviceKind.DESKTOP, "os": {"family": "windows", "version": "7"},
            "hardware": _hardware(WIN7_DESKTOP, rng), "location": _location(rng),
            "applications": ["Microsoft Office 2010"], "state": "migrated"})
    for n in range(1, size.laptops + 1):
        profile = rng.choices(LAPTOPS, [p.weight for p in LAPTOPS])[0]
        yield DeviceSpec.model_validate({
            "asset_tag": f"MPS-L-{n:06d}", "kind": DeviceKind.LAPTOP,
            "os": {"family": "windows", "version": "7" if profile is LAPTOPS[0] else "8.1"},
            "hardware": _hardware(profile, rng), "location": _location(rng),
            "applications": ["Microsoft Office 2010"]})
    for n in range(1, size.tablets + 1):
        family, version, profile = rng.choices(TABLETS, [t[2].weight for t in TABLETS])[0]
        yield DeviceSpec.model_validate({
            "asset_tag": f"MPS-T-{n:06d}", "kind": DeviceKind.TABLET, "os": {"family": family, "version": version},
            "hardware": _hardware(profile, rng), "location": _location(rng), "applications": []})
    for n in range(1, size.cameras + 1):
        yield DeviceSpec.model_validate({
            "asset_tag": f"MPS-C-{n:06d}", "kind": DeviceKind.BODY_WORN_CAMERA,
            "os": {"family": "camera_firmware", "version": "1.12"}, "hardware": _hardware(CAMERA, rng),
            "location": {"site": rng.choice(CAMERA_SITES), "borough": "Hammersmith and Fulham",
                         "unit": "Territorial Policing"}, "applications": []})


def csv_row(spec: DeviceSpec) -> dict[str, object]:
    h, loc = spec.hardware, spec.location
    return {
        "asset_tag": spec.asset_tag, "kind": spec.kind.value, "os_family": spec.os.family.value,
        "os_version": spec.os.version, "model": h.model, "cpu_model": h.cpu_model, "cpu_arch": h.cpu_arch.value,
        "cpu_cores": h.cpu_cores, "ram_mb": h.ram_mb, "disk_gb": h.disk_gb, "tpm": h.tpm.value,
        "firmware": h.firmware.value, "site": loc.site, "borough": loc.borough or "", "unit": loc.unit,
        "applications": APPLICATION_SEPARATOR.join(spec.applications), "state": spec.state.value,
    }


def write_csv(specs: Iterable[DeviceSpec], out: io.TextIOBase) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for spec in specs:
        writer.writerow(csv_row(spec))
        count += 1
    return count


def as_rows(specs: Iterable[DeviceSpec]) -> Iterator[ParsedRow]:
    for line, spec in enumerate(specs, start=2):
        yield ParsedRow(line, spec=spec)


async def load_sample_estate(handlers, seed: int, fraction: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    await handlers.import_rows(as_rows(generate(seed, EstateSize().scaled(fraction))))
