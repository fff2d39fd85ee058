"""The bus port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: Headers = ()
    partition: int = 0
    offset: int = 0

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode()
        return None


Handler = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscription:
    group: str
    topics: tuple[str, ...]
    handler: Handler
    name: str = field(default="")


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dead-letter"


class Bus(Protocol):
    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        """Register a consumer group; call before ``start``."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish and wait until every message is acknowledged (acks=all on Kafka)."""
        ...

    async def ping(self) -> None:
        """Raise if the bus cannot be reached."""
        ...
