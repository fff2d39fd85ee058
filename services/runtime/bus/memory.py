"""The in-process bus: Kafka's delivery semantics without a broker.

Each topic is a set of append-only partitions; a message's partition comes from its key,
so one key's messages stay in order. Each consumer group keeps its own committed offset
per partition and sees every message; the offset moves only after the message was
handled (or dead-lettered), so a restart of the consumers redelivers what was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence

from services.runtime.bus.base import Handler, Message, OutgoingMessage, Subscription
from services.runtime.bus.delivery import Delivery, RetryPolicy
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


def partition_for(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class MemoryBus:
    def __init__(self, *, partitions: int, policy: RetryPolicy, telemetry: Telemetry, metrics: Metrics) -> None:
        self._partitions = partitions
        self._logs: dict[str, list[list[Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._appended = asyncio.Condition()
        self._metrics = metrics
        self._deliver = Delivery(policy=policy, telemetry=telemetry, metrics=metrics, publish=self.publish)

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        self._subscriptions.append(Subscription(group, tuple(topics), handler))

    def _log(self, topic: str) -> list[list[Message]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self._partitions)]
        return self._logs[topic]

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        for m in messages:
            partitions = self._log(m.topic)
            p = partition_for(m.key, len(partitions))
            partitions[p].append(Message(m.topic, m.key, m.value, m.headers, p, len(partitions[p])))
        async with self._appended:
            self._appended.notify_all()

    def messages(self, topic: str) -> list[Message]:
        """Everything ever published to a topic, partition by partition (for tests and replay)."""
        return [m for partition in self._log(topic) for m in partition]

    async def start(self) -> None:
        for sub in self._subscriptions:
            self._tasks.append(asyncio.create_task(self._consume(sub), name=f"consumer:{sub.group}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def ping(self) -> None:
        return None

    def _next_batch(self, sub: Subscription) -> list[tuple[str, int, list[Message]]]:
        batch = []
        for topic in sub.topics:
            for p, partition in enumerate(self._log(topic)):
                offset = self._committed.get((sub.group, topic, p), 0)
                pending = partition[offset:]
                self._metrics.consumer_lag.labels(topic, str(p), sub.group).set(len(pending))
                if pending:
                    batch.append((topic, p, pending[:500]))
        return batch

    async def _consume(self, sub: Subscription) -> None:
        while True:
            batch = self._next_batch(sub)
            if not batch:
                async with self._appended:
                    await self._appended.wait_for(lambda: bool(self._next_batch(sub)))
                continue
            for topic, p, messages in batch:
                for message in messages:
                    await self._deliver(sub.group, sub.handler, message)
                    self._committed[(sub.group, topic, p)] = message.offset + 1

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every consumer group has handled everything published so far."""
        async def caught_up() -> None:
            while any(self._next_batch(sub) for sub in self._subscriptions):
                await asyncio.sleep(0.01)
        await asyncio.wait_for(caught_up(), timeout)
