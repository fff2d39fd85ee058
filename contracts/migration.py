"""Migration events that other services react to.

The replacement need is defined first, because procurement consumes it: a device that cannot
run the target OS (or blocks on hardware) is to be replaced, and migration asks procurement
for devices of a kind at a site. The rest of migration's events live here too as the service
is built.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from contracts.common import AssetTag, Contract, DeviceKind, ShortText

REPLACEMENTS_TOPIC = "migration.replacements"


class ReplacementNeededV1(Contract):
    """Devices of ``kind`` are needed at ``site`` to replace the devices listed. ``need_id`` is
    stable for one need: a redelivered or re-announced need carries the same id, so a consumer
    can act on it once."""

    need_id: ShortText
    site: ShortText
    borough: str | None = None
    kind: DeviceKind
    quantity: int = Field(ge=1, le=5000)
    replaces: list[AssetTag] = Field(default_factory=list, max_length=5000)
    needed_by: date | None = None
    reason: ShortText
