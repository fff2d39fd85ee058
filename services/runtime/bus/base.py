"""The bus port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


class BusUnavailable(Exception):
    """The bus cannot take or give messages now (broker unreachable, timed out, producer
    broken). Transient: the same operation may succeed once the broker is back."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: str | bytes
    """The aggregate id; bytes only to pass on a key that is not valid UTF-8 (dead letters)."""
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


Handler = Callable[[Message], Awaitable[str | None]]
"""Handles one message; may return an outcome for the metrics (e.g. "duplicate"), else "ok"."""
BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
"""Handles consecutive messages of one partition at once (optional, beside a ``Handler``): when
it fails for a reason other than unavailable infrastructure, the same messages go one by one
to the ``Handler`` (which retries and dead-letters as usual)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    group: str
    topics: tuple[str, ...]
    handler: Handler
    batch_handler: BatchHandler | None = None


def dead_letter_topic(topic: str, group: str) -> str:
    """Where ``group`` puts the messages of ``topic`` it could not handle: each consumer group
    has its own, so a replay reaches only the group that failed."""
    return f"{topic}.{group}.dead-letter"


REPLAY_GROUP_HEADER = "dlq-replay-group"
"""On a replayed message: the one consumer group it is meant for; other groups skip it."""


class Bus(Protocol):
    def subscribe(self, group: str, topics: Sequence[str], handler: Handler, *,
                  batch_handler: BatchHandler | None = None) -> None:
        """Add a member to a consumer group (several members share its partitions); only
        before ``start``, else RuntimeError. With a ``batch_handler``, each partition's fetched
        messages go to it together (see ``BatchHandler``)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish and wait until every message is acknowledged (acks=all on Kafka); raises
        BusUnavailable when the broker does not take them."""
        ...

    async def ping(self) -> None:
        """Raise, saying why, if the bus cannot be reached, keeps failing to publish, or a
        consumer has died or stalled."""
        ...
