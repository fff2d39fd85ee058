"""Value shapes that several services' contracts share: devices' parts, places, the base model."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

LONDON_BOROUGHS: tuple[str, ...] = (
    "Barking and Dagenham", "Barnet", "Bexley", "Brent", "Bromley", "Camden", "Croydon",
    "Ealing", "Enfield", "Greenwich", "Hackney", "Hammersmith and Fulham", "Haringey",
    "Harrow", "Havering", "Hillingdon", "Hounslow", "Islington", "Kensington and Chelsea",
    "Kingston upon Thames", "Lambeth", "Lewisham", "Merton", "Newham", "Redbridge",
    "Richmond upon Thames", "Southwark", "Sutton", "Tower Hamlets", "Waltham Forest",
    "Wandsworth", "Westminster",
)

AssetTag = Annotated[
    str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$", strip_whitespace=True)
]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]


class Contract(BaseModel):
    """Base of every published shape: unknown fields are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceKind(StrEnum):
    DESKTOP = "desktop"
    LAPTOP = "laptop"
    TABLET = "tablet"
    BODY_WORN_CAMERA = "body_worn_camera"


class OsFamily(StrEnum):
    WINDOWS = "windows"
    IOS = "ios"
    ANDROID = "android"
    LINUX = "linux"
    CAMERA_FIRMWARE = "camera_firmware"


OS_FOR_KIND: dict[DeviceKind, frozenset[OsFamily]] = {
    DeviceKind.DESKTOP: frozenset({OsFamily.WINDOWS, OsFamily.LINUX}),
    DeviceKind.LAPTOP: frozenset({OsFamily.WINDOWS, OsFamily.LINUX}),
    DeviceKind.TABLET: frozenset({OsFamily.WINDOWS, OsFamily.IOS, OsFamily.ANDROID}),
    DeviceKind.BODY_WORN_CAMERA: frozenset({OsFamily.CAMERA_FIRMWARE}),
}
"""What each kind of device may run: inventory refuses a device that breaks this, and
procurement checks deliveries against it first."""

WINDOWS_VERSIONS: tuple[str, ...] = ("XP", "Vista", "7", "8", "8.1", "10", "11")
_NUMERIC_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,3}$")


class OperatingSystem(Contract):
    family: OsFamily
    version: Annotated[str, StringConstraints(min_length=1, max_length=20, strip_whitespace=True)]

    @model_validator(mode="after")
    def _known_version(self) -> Self:
        if self.family is OsFamily.WINDOWS:
            if self.version not in WINDOWS_VERSIONS:
                raise ValueError(
                    f"unknown Windows version {self.version!r}; "
                    f"expected one of {', '.join(WINDOWS_VERSIONS)}"
                )
        elif not _NUMERIC_VERSION.match(self.version):
            raise ValueError(
                f"unknown {self.family.value} version {self.version!r}; expected digits like 9.3"
            )
        return self


class CpuArch(StrEnum):
    X86 = "x86"
    X64 = "x64"
    ARM64 = "arm64"


class Tpm(StrEnum):
    NONE = "none"
    V1_2 = "1.2"
    V2_0 = "2.0"


class Firmware(StrEnum):
    BIOS = "bios"
    UEFI = "uefi"
    VENDOR = "vendor"
    """Vendor boot firmware of an appliance (cameras, tablets that are neither BIOS nor UEFI)."""


class Hardware(Contract):
    model: ShortText
    cpu_model: ShortText
    cpu_arch: CpuArch
    cpu_cores: int = Field(ge=1, le=256)
    ram_mb: int = Field(ge=64, le=4 * 1024 * 1024)
    disk_gb: int = Field(ge=1, le=100_000)
    tpm: Tpm
    firmware: Firmware


class Location(Contract):
    site: ShortText
    borough: str | None = Field(default=None, description="One of the 32 London boroughs; none for central units")
    unit: ShortText

    @model_validator(mode="after")
    def _known_borough(self) -> Self:
        if self.borough is not None and self.borough not in LONDON_BOROUGHS:
            raise ValueError(f"unknown borough {self.borough!r}; expected a London borough")
        return self


class Sanitisation(Contract):
    """Evidence that a device's data was destroyed before it left the force."""

    method: Annotated[str, StringConstraints(min_length=2, max_length=60, strip_whitespace=True)]
    certificate_id: Annotated[str, StringConstraints(min_length=3, max_length=60, strip_whitespace=True)]
    performed_on: date
    operator: ShortText


ApplicationName = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
