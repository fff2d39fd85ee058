"""What a domain decision returns: the aggregate's new state and the events that announce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel

A = TypeVar("A")


@dataclass(frozen=True)  # no slots: a frozen slotted generic cannot be built through Change[X](...)
class Change(Generic[A]):
    """``value`` as it stands after the decision; ``events`` (type name, data) announce it.
    No events means nothing changed, and nothing is written."""

    value: A
    events: list[tuple[str, BaseModel]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)
