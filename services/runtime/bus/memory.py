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
        self._wakes: dict[str, list[asyncio.Event]] = {}
        """Topic -> the events of the consumers subscribed to it (set when it gets a message)."""
        self._groups: dict[str, set[str]] = {}
        """Topic -> the groups subscribed to it."""
        self._outstanding = 0
        """Messages published and not yet handled, counted once per group subscribed (backlog())."""
        self._published = 0
        self._settled = asyncio.Event()
        """Set when nothing is outstanding, or a consumer stopped (idle() waits on it)."""
        self._lag: dict[tuple[str, int, str], object] = {}
        self._metrics = metrics
        self._available = True
        self._started = False
        self._deliver = Delivery(policy=policy, telemetry=telemetry, metrics=metrics, publish=self.publish)

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler, *,
                  batch_handler: BatchHandler | None = None) -> None:
        if self._started:
            raise RuntimeError(f"subscribe {group} before the bus starts")
        self._subscriptions.append(Subscription(group, tuple(topics), handler, batch_handler))
        for topic in topics:
            self._groups.setdefault(topic, set()).add(group)

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
        topics: set[str] = set()
        for m in messages:
            partitions = self._log(m.topic)
            p = partition_for(m.key, len(partitions))
            key = m.key if isinstance(m.key, bytes) else m.key.encode()
            partitions[p].append(RawRecord(m.topic, p, len(partitions[p]), key, m.value, tuple(m.headers)))
            self._outstanding += len(self._groups.get(m.topic, ()))
            topics.add(m.topic)
        self._published += len(messages)
        if self._outstanding:
            self._settled.clear()
        for topic in topics:
            for wake in self._wakes.get(topic, ()):
                wake.set()

    def backlog(self) -> int:
        """Messages published and not yet handled (committed) by every group subscribed to
        their topic; 0 when the bus is idle."""
        groups = {(sub.group, topic) for sub in self._subscriptions for topic in sub.topics}
        return sum(len(partition) - self._committed.get((group, topic, p), 0)
                   for group, topic in groups for p, partition in enumerate(self._log(topic)))

    def published(self) -> int:
        """How many messages were ever published (all topics)."""
        return self._published

    async def idle(self) -> None:
        """Wait until every group has handled every message published so far (a simulated
        clock moves on only once what the last step published has been consumed). Woken by
        the consumers' commits, not by polling."""
        while self._outstanding:
            for task in self._tasks:
                if task.done():
                    raise BusUnavailable(f"{task.get_name()} has stopped; the bus cannot become idle")
            await self._settled.wait()
            if self._outstanding:
                self._settled.clear()

    def _commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        key = (group, topic, partition)
        self._outstanding -= offset - self._committed.get(key, 0)
        self._committed[key] = offset
        if not self._outstanding:
            self._settled.set()

    def messages(self, topic: str) -> list[Message]:
        """Everything ever published to a topic, partition by partition (for tests and replay)."""
        return [Message(r.topic, (r.key or b"").decode(errors="surrogateescape"), r.value or b"", r.headers,
                        r.partition, r.offset) for partition in self._log(topic) for r in partition]

    async def start(self) -> None:
        self._started = True
        self._outstanding = self.backlog()
        self._wakes = {}
        members: dict[str, list[Subscription]] = {}
        for sub in self._subscriptions:
            members.setdefault(sub.group, []).append(sub)
        for group, subs in members.items():
            for index, sub in enumerate(subs):
                wake = asyncio.Event()
                for topic in sub.topics:
                    self._wakes.setdefault(topic, []).append(wake)
                task = asyncio.create_task(self._consume(sub, index, len(subs), wake),
                                           name=f"consumer:{group}:{index}")
                task.add_done_callback(lambda _: self._settled.set())
                self._tasks.append(task)

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
                pending = len(partition) - offset
                gauge = self._lag.get((topic, p, sub.group))
                if gauge is None:
                    gauge = self._lag[(topic, p, sub.group)] = self._metrics.consumer_lag.labels(
                        topic, str(p), sub.group)
                gauge.set(pending)  # type: ignore[attr-defined]
                if pending:
                    batch.append((topic, p, partition[offset:offset + 500]))
        return batch

    async def _consume(self, sub: Subscription, member: int, members: int, wake: asyncio.Event) -> None:
        backoff = 0.0
        while True:
            still_running()
            wake.clear()  # before looking: a publish from here on sets it again
            batch = self._next_batch(sub, member, members)
            if not batch:
                await wake.wait()
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
                        self._commit(sub.group, topic, p, records[-1].offset + 1)
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
                    self._commit(sub.group, topic, p, record.offset + 1)
            if waiting:
                backoff = min(self._policy.backoff_max_s, max(self._policy.backoff_initial_s, backoff * 2))
                await asyncio.sleep(backoff)
            else:
                backoff = 0.0
