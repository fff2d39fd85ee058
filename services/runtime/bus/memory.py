"""The in-process bus: Kafka's delivery semantics without a broker.

Each topic is a set of append-only partitions; a message's partition comes from its key,
so one key's messages stay in order. Each consumer group keeps its own committed offset
per partition and sees every message; the members of a group (several subscriptions with
the same group) share its partitions, one member per partition. The offset moves only after
the message was handled (or dead-lettered), so a restart redelivers what was in flight; when
the infrastructure is unavailable, the partition waits and the same message is tried again.

``outage()`` makes publishing fail as a broker outage would (for tests of what depends on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Iterator, Sequence

from services.runtime.aio import cancel_and_wait, still_running
from services.runtime.bus.base import BatchHandler, BusUnavailable, Handler, Message, OutgoingMessage, Subscription
from services.runtime.bus.delivery import Delivery, RawRecord, RetryPolicy
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


def partition_for(key: str | bytes, partitions: int) -> int:
    return zlib.crc32(key if isinstance(key, bytes) else key.encode()) % partitions


class MemoryBus:
    def __init__(self, *, partitions: int, policy: RetryPolicy, telemetry: Telemetry, metrics: Metrics) -> None:
        self._partitions = partitions
        self._policy = policy
        self._logs: dict[str, list[list[RawRecord]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._appended = asyncio.Condition()
        self._metrics = metrics
        self._available = True
        self._started = False
        self._deliver = Delivery(policy=policy, telemetry=telemetry, metrics=metrics, publish=self.publish)

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler, *,
                  batch_handler: BatchHandler | None = None) -> None:
        if self._started:
            raise RuntimeError(f"subscribe {group} before the bus starts")
        self._subscriptions.append(Subscription(group, tuple(topics), handler, batch_handler))

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Publishing fails for the duration, as with a broker that is down."""
        self._available = False
        try:
            yield
        finally:
            self._available = True

    def _log(self, topic: str) -> list[list[RawRecord]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self._partitions)]
        return self._logs[topic]

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if not self._available:
            raise BusUnavailable("the in-process bus is in a simulated outage")
        for m in messages:
            partitions = self._log(m.topic)
            p = partition_for(m.key, len(partitions))
            key = m.key if isinstance(m.key, bytes) else m.key.encode()
            partitions[p].append(RawRecord(m.topic, p, len(partitions[p]), key, m.value, tuple(m.headers)))
        async with self._appended:
            self._appended.notify_all()

    def messages(self, topic: str) -> list[Message]:
        """Everything ever published to a topic, partition by partition (for tests and replay)."""
        return [Message(r.topic, (r.key or b"").decode(errors="surrogateescape"), r.value or b"", r.headers,
                        r.partition, r.offset) for partition in self._log(topic) for r in partition]

    async def start(self) -> None:
        self._started = True
        members: dict[str, list[Subscription]] = {}
        for sub in self._subscriptions:
            members.setdefault(sub.group, []).append(sub)
        for group, subs in members.items():
            for index, sub in enumerate(subs):
                self._tasks.append(asyncio.create_task(self._consume(sub, index, len(subs)),
                                                       name=f"consumer:{group}:{index}"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        self._started = False

    async def ping(self) -> None:
        for task in self._tasks:
            if task.done() and not task.cancelled():
                raise BusUnavailable(f"{task.get_name()} has stopped: {task.exception()!r}")

    def _next_batch(self, sub: Subscription, member: int, members: int) -> list[tuple[str, int, list[RawRecord]]]:
        batch = []
        for topic in sub.topics:
            for p, partition in enumerate(self._log(topic)):
                if p % members != member:
                    continue  # another member of the group owns this partition
                offset = self._committed.get((sub.group, topic, p), 0)
                pending = partition[offset:]
                self._metrics.consumer_lag.labels(topic, str(p), sub.group).set(len(pending))
                if pending:
                    batch.append((topic, p, pending[:500]))
        return batch

    async def _consume(self, sub: Subscription, member: int, members: int) -> None:
        backoff = 0.0
        while True:
            still_running()
            batch = self._next_batch(sub, member, members)
            if not batch:
                async with self._appended:
                    await self._appended.wait_for(lambda: bool(self._next_batch(sub, member, members)))
                continue
            waiting = False
            for topic, p, records in batch:
                if sub.batch_handler is not None:
                    try:
                        whole = await self._deliver.batch(sub.group, sub.batch_handler, records)
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # noqa: BLE001 - Unavailable: this batch again, later
                        log.warning("%s@%d/%d for %s is tried again: %s", topic, p, records[0].offset, sub.group,
                                    error)
                        waiting = True
                        continue
                    if whole:
                        self._committed[(sub.group, topic, p)] = records[-1].offset + 1
                        continue
                for record in records:
                    try:
                        await self._deliver(sub.group, sub.handler, record)
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # noqa: BLE001 - Unavailable: this message again, later
                        log.warning("%s@%d/%d for %s is tried again: %s", topic, p, record.offset, sub.group, error)
                        waiting = True
                        break
                    self._committed[(sub.group, topic, p)] = record.offset + 1
            if waiting:
                backoff = min(self._policy.backoff_max_s, max(self._policy.backoff_initial_s, backoff * 2))
                await asyncio.sleep(backoff)
            else:
                backoff = 0.0
