"""A different target OS, pure: which of the remaining legacy devices it could take in place and
which would need a new device, from what reporting reads in the events.

* The hardware of every legacy device still in the estate, grouped by CPU architecture, cores,
  RAM and disk (inventory's device events; reporting's ``hardware:<key>`` dimensions).
* Each operating system's own needs and end of support (the lifecycle table migration's policy
  events carry), and the force's minimum for the target (``min_ram_mb`` and the rest).

A device is judged as migration judges it (services/migration/domain.py ``assess``), hardware
only: ``dispose`` when the OS cannot run on it at all (architecture, or RAM or disk below what
the OS needs), ``replace`` when it is below the force's minimum, else ``upgrade_in_place``.
Both of the first two need a new device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

Verdict = Literal["dispose", "replace", "upgrade_in_place"]


def hardware_key(arch: str, cpu_cores: int, ram_mb: int, disk_gb: int) -> str:
    return f"{arch}:{cpu_cores}:{ram_mb}:{disk_gb}"


@dataclass(frozen=True, slots=True)
class Hardware:
    arch: str
    cpu_cores: int
    ram_mb: int
    disk_gb: int

    @classmethod
    def parse(cls, key: str) -> Hardware:
        """From ``hardware_key``'s form. ValueError if it is not that."""
        arch, cores, ram, disk = key.split(":")
        return cls(arch, int(cores), int(ram), int(disk))


@dataclass(frozen=True, slots=True)
class OsNeeds:
    """One row of the policy's lifecycle table."""

    os: str
    """``family:version``, as reporting names operating systems."""
    support_ends: date
    min_ram_mb: int
    min_disk_gb: int
    architectures: frozenset[str]


@dataclass(frozen=True, slots=True)
class Minimum:
    """The force's minimum for a target (stricter than what the OS needs to run at all)."""

    ram_mb: int = 0
    disk_gb: int = 0
    cpu_cores: int = 0


def minimum_for(current: Minimum, needs: OsNeeds, given: Minimum | None = None) -> Minimum:
    """The minimum for another target: as given, or the one in force raised to what that OS
    itself needs (the force keeps its own bar and never sets it below the OS's)."""
    if given is not None:
        return given
    return Minimum(max(current.ram_mb, needs.min_ram_mb), max(current.disk_gb, needs.min_disk_gb),
                   current.cpu_cores)


def verdict(hw: Hardware, needs: OsNeeds, minimum: Minimum) -> Verdict:
    if hw.arch not in needs.architectures or hw.ram_mb < needs.min_ram_mb or hw.disk_gb < needs.min_disk_gb:
        return "dispose"
    if hw.ram_mb < minimum.ram_mb or hw.disk_gb < minimum.disk_gb or hw.cpu_cores < minimum.cpu_cores:
        return "replace"
    return "upgrade_in_place"


@dataclass(frozen=True, slots=True)
class TargetPlan:
    target: str
    support_ends: date
    minimum: Minimum
    upgrade_in_place: int
    replace: int
    dispose: int

    @property
    def new_devices(self) -> int:
        return self.replace + self.dispose

    @property
    def devices(self) -> int:
        return self.upgrade_in_place + self.new_devices


def plan(groups: Mapping[Hardware, int], needs: OsNeeds, minimum: Minimum) -> TargetPlan:
    """The remaining legacy devices (count per hardware group) split by their verdict."""
    counts = {"dispose": 0, "replace": 0, "upgrade_in_place": 0}
    for hw, n in groups.items():
        counts[verdict(hw, needs, minimum)] += n
    return TargetPlan(needs.os, needs.support_ends, minimum, counts["upgrade_in_place"], counts["replace"],
                      counts["dispose"])


@dataclass(frozen=True, slots=True)
class Retarget:
    """The target in force and the one asked about, each applied to the same devices; what a
    new device costs (None: unknown) and how long one takes to arrive."""

    baseline: TargetPlan
    scenario: TargetPlan
    device_price_gbp: float | None
    lead_days: int

    @property
    def extra_new_devices(self) -> int:
        return self.scenario.new_devices - self.baseline.new_devices
