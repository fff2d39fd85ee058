"""Migration events."""

from __future__ import annotations

from contracts.common import DeviceKind
from contracts.envelope import Envelope, new_envelope
from contracts.migration import ReplacementNeededV1
from tests.contract.examples.inventory import T0


def examples() -> list[Envelope]:
    need = ReplacementNeededV1(need_id="NEED-Camden-laptop-1", site="Holborn Police Station", borough="Camden",
                               kind=DeviceKind.LAPTOP, quantity=2, replaces=["MPS-D-000001", "MPS-D-000002"],
                               reason="hardware below the Windows 8.1 minimum")
    return [new_envelope(type="migration.replacement.needed.v1", source="/migration",
                         subject=need.need_id, time=T0, data=need)]
