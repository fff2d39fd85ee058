"""The Kafka bus, on aiokafka.

Producer: idempotent, acks=all, keyed by aggregate id; rebuilt after an error it cannot
recover from (say, the broker was re-created and no longer knows its sequence numbers).

Consumers: one AIOKafkaConsumer per subscription, auto-commit off, each run by a supervisor
that restarts it if it dies. A partition's offset is committed only up to the last message
handled or dead-lettered, never past one that was not: when the infrastructure is
unavailable the partition is rewound to that message, paused for a backoff and resumed, while
the consumer keeps polling (so it stays in its group). A batch that runs over its time budget
stops early and the rest is fetched again, which keeps every poll within the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from services.runtime.aio import cancel_and_wait, still_running
from services.runtime.bus.base import (
    BatchHandler,
    BusUnavailable,
    Handler,
    OutgoingMessage,
    Subscription,
    dead_letter_topic,
)
from services.runtime.bus.delivery import Delivery, RawRecord, RetryPolicy, Unavailable
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)

BATCH_BUDGET_S = 60.0
"""A batch stops after this long and fetches the rest again (max.poll.interval.ms is 300 s)."""
BATCH_MAX_RECORDS = 2000
BATCH_FETCH_BYTES = 4 * 2**20
"""A group with a batch handler fetches up to this many records (and bytes per partition) at
once: a bigger batch costs its handler fewer writes per message (migration writes each site of
a batch once, however many of its devices the batch holds)."""
STALL_AFTER_S = 120.0
"""Readiness fails when a consumer has not polled for this long."""
FAILING_AFTER_S = 15.0
"""Readiness fails when every publish has failed for this long."""
PUBLISH_TIMEOUT_MS = 5000
REBUILD_EVERY_S = 5.0
PRODUCER_BROKEN: tuple[type[KafkaError], ...] = (
    OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, InvalidProducerIdMapping, ProducerFenced)
"""Errors after which the idempotent producer's state (id, epoch, sequence numbers) is no good:
only a new producer can publish again. Anything else - a timeout (aiokafka's KafkaTimeoutError
says ``retriable = False``), an unreachable broker - is waited out with the same producer."""


@dataclass
class _ConsumerHealth:
    group: str
    last_poll: float = 0.0
    error: str | None = None
    restarts: int = 0
    task: asyncio.Task[None] | None = None
    paused: dict[TopicPartition, float] = field(default_factory=dict)
    """Partitions waiting for the infrastructure -> loop time to try again."""
    backoff: dict[TopicPartition, float] = field(default_factory=dict)


class KafkaBus:
    def __init__(self, *, bootstrap: str, client_id: str, partitions: int, policy: RetryPolicy,
                 telemetry: Telemetry, metrics: Metrics, topics: Sequence[str] = (),
                 batch_budget_s: float = BATCH_BUDGET_S, new_groups_from_end: bool = False) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._partitions = partitions
        self._declared = set(topics)
        self._metrics = metrics
        self._policy = policy
        self._batch_budget_s = batch_budget_s
        self._subscriptions: list[Subscription] = []
        self._health: list[_ConsumerHealth] = []
        self._producer: AIOKafkaProducer | None = None
        self._rebuilding = asyncio.Lock()
        self._last_rebuild = float("-inf")
        self._failing_since: float | None = None
        self._last_failure = ""
        self._started = False
        self._deliver = Delivery(policy=policy, telemetry=telemetry, metrics=metrics, publish=self.publish)
        self._new_groups_from_end = new_groups_from_end
        self._produced: dict[tuple[str, int], int] = {}
        """(topic, partition) -> the offset after the last message this process published there."""
        self._handled: dict[tuple[str, str, int], int] = {}
        """(group, topic, partition) -> the offset after the last message this process handled."""
        self._published = 0
        self._moved = asyncio.Event()

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler, *,
                  batch_handler: BatchHandler | None = None) -> None:
        if self._started:
            raise RuntimeError(f"subscribe {group} before the bus starts")
        self._subscriptions.append(Subscription(group, tuple(topics), handler, batch_handler))

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=f"{self._client_id}-admin")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in sorted(set(topics)) if t not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(t, num_partitions=self._partitions, replication_factor=1) for t in missing])
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def start(self) -> None:
        topics = set(self._declared)
        for sub in self._subscriptions:
            topics.update(sub.topics)
            topics.update(dead_letter_topic(t, sub.group) for t in sub.topics)
        if topics:
            await self.ensure_topics(sorted(topics))
        if self._new_groups_from_end:
            await self._start_new_groups_at_end()
        self._producer = self._new_producer()
        await self._producer.start()
        self._started = True
        for sub in self._subscriptions:
            consumer = self._new_consumer(sub)
            await consumer.start()
            health = _ConsumerHealth(sub.group, last_poll=asyncio.get_running_loop().time())
            health.task = asyncio.create_task(self._supervise(sub, consumer, health), name=f"consumer:{sub.group}")
            self._health.append(health)

    async def _start_new_groups_at_end(self) -> None:
        """Each subscribed group that has no committed offset on a partition gets one at the
        partition's end: it consumes what is published from now on, not what earlier runs left
        on the topics (a simulation run against a shared broker)."""
        groups: dict[str, set[str]] = {}
        for sub in self._subscriptions:
            groups.setdefault(sub.group, set()).update(sub.topics)
        for group, topics in groups.items():
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=group,
                                        client_id=f"{self._client_id}-{group}-start", enable_auto_commit=False)
            await consumer.start()
            try:
                tps = [TopicPartition(t, p) for t in sorted(topics)
                       for p in sorted(consumer.partitions_for_topic(t) or range(self._partitions))]
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                unset = {tp: ends[tp] for tp in tps if await consumer.committed(tp) is None}
                if unset:
                    await consumer.commit(unset)
            finally:
                await consumer.stop()

    def published(self) -> int:
        """How many messages this process published."""
        return self._published

    async def idle(self, check_s: float = 1.0) -> None:
        """Wait until every group this process runs has handled every message this process
        published (the in-process view: messages other processes publish are not waited for).
        A driver on a simulated clock moves on only then."""
        groups: dict[str, set[str]] = {}
        for sub in self._subscriptions:
            for topic in sub.topics:
                groups.setdefault(topic, set()).add(sub.group)
        while True:
            behind = [(g, t, p) for (t, p), end in list(self._produced.items()) for g in groups.get(t, ())
                      if self._handled.get((g, t, p), 0) < end]
            if not behind:
                return
            for health in self._health:
                if health.task is not None and health.task.done():
                    raise BusUnavailable(f"consumer group {health.group} has stopped: {health.error}")
            self._moved.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check_s):
                    await self._moved.wait()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, enable_idempotence=True, acks="all",
            linger_ms=5, max_batch_size=512 * 1024, request_timeout_ms=PUBLISH_TIMEOUT_MS,
        )

    def _new_consumer(self, sub: Subscription) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *sub.topics, bootstrap_servers=self._bootstrap, group_id=sub.group,
            client_id=f"{self._client_id}-{sub.group}", enable_auto_commit=False,
            auto_offset_reset="earliest",
            **({"max_poll_records": BATCH_MAX_RECORDS, "max_partition_fetch_bytes": BATCH_FETCH_BYTES}
               if sub.batch_handler is not None else {"max_poll_records": 500}),
        )

    async def stop(self) -> None:
        await cancel_and_wait(h.task for h in self._health)
        self._health.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        self._started = False

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        producer = self._producer
        if producer is None:
            raise BusUnavailable("the Kafka bus is not started")
        try:
            # Bounded: aiokafka retries a request to a broker that does not answer. A send that
            # times out here may still land later, in order, ahead of anything sent after it.
            async with asyncio.timeout(PUBLISH_TIMEOUT_MS / 1000 * 2):
                pending = [
                    await producer.send(m.topic, m.value, key=m.key if isinstance(m.key, bytes) else m.key.encode(),
                                        headers=list(m.headers))
                    for m in messages
                ]
                landed = await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as error:
            await self._publish_failed(producer, error)
            raise BusUnavailable(f"Kafka at {self._bootstrap} did not take the messages: "
                                 f"{type(error).__name__}: {error}") from error
        self._failing_since = None
        self._published += len(messages)
        for meta in landed:
            if meta is None:  # a producer that does not say where it put the message (a test's)
                continue
            key = (meta.topic, meta.partition)
            self._produced[key] = max(self._produced.get(key, 0), meta.offset + 1)

    async def _publish_failed(self, producer: AIOKafkaProducer, error: Exception) -> None:
        loop, broken = asyncio.get_running_loop(), producer
        if self._failing_since is None:
            self._failing_since = loop.time()
        self._last_failure = f"{type(error).__name__}: {error}"
        if not isinstance(error, PRODUCER_BROKEN):
            return
        async with self._rebuilding:
            if self._producer is not producer or loop.time() - self._last_rebuild < REBUILD_EVERY_S:
                return
            self._last_rebuild = loop.time()
            log.error("Kafka producer failed fatally (%s); building a new one", self._last_failure)
            fresh = self._new_producer()
            try:
                await fresh.start()
            except Exception as failure:  # noqa: BLE001 - the broker is away too: the next failure tries again
                log.error("the new Kafka producer did not start: %s: %s", type(failure).__name__, failure)
                with contextlib.suppress(Exception):
                    await fresh.stop()
                return
            self._producer = fresh
            with contextlib.suppress(Exception):
                await broken.stop()

    async def ping(self) -> None:
        if self._producer is None:
            raise BusUnavailable("the Kafka bus is not started")
        loop = asyncio.get_running_loop()
        for health in self._health:
            if health.task is not None and health.task.done():
                raise BusUnavailable(f"consumer group {health.group} has stopped: {health.error}")
            if health.error is not None:
                raise BusUnavailable(f"consumer group {health.group} is not consuming "
                                     f"(restarted {health.restarts} time(s)): {health.error}")
            if loop.time() - health.last_poll > STALL_AFTER_S:
                raise BusUnavailable(f"consumer group {health.group} has not polled Kafka for "
                                     f"{loop.time() - health.last_poll:.0f} s (a handler may be stuck)")
        if self._failing_since is not None and loop.time() - self._failing_since > FAILING_AFTER_S:
            raise BusUnavailable(f"every publish to Kafka at {self._bootstrap} has failed for "
                                 f"{loop.time() - self._failing_since:.0f} s; last: {self._last_failure}")
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=5)
        except (KafkaError, TimeoutError) as error:
            raise BusUnavailable(f"Kafka at {self._bootstrap} does not answer: {type(error).__name__}") from error

    # -- consuming ------------------------------------------------------------------------

    async def _supervise(self, sub: Subscription, consumer: AIOKafkaConsumer, health: _ConsumerHealth) -> None:
        """Run the consumer; if it dies, say so (readiness) and start a new one."""
        delay = 1.0
        loop = asyncio.get_running_loop()
        while True:
            still_running()
            began = loop.time()
            try:
                await self._consume(sub, consumer, health)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - reported by readiness and restarted
                health.error = f"{type(error).__name__}: {error}"
                health.restarts += 1
                if loop.time() - began > 300:
                    delay = 1.0  # it ran well for a while: this is a new failure, not a loop
                log.exception("consumer group %s died; restarting in %.0f s", sub.group, delay)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            consumer = self._new_consumer(sub)
            try:
                await consumer.start()
            except KafkaError as error:
                health.error = f"could not start a new consumer: {type(error).__name__}: {error}"
                log.warning("consumer group %s: %s", sub.group, health.error)

    async def _consume(self, sub: Subscription, consumer: AIOKafkaConsumer, health: _ConsumerHealth) -> None:
        loop = asyncio.get_running_loop()
        health.paused.clear()
        while True:
            still_running()
            health.last_poll = loop.time()
            self._resume_due(consumer, health, loop.time())
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except KafkaError as error:
                health.error = f"{type(error).__name__}: {error}"
                log.warning("consumer group %s could not poll Kafka: %s; retrying", sub.group, health.error)
                await asyncio.sleep(1)
                continue
            health.error = None  # polled: whatever failed before is mended
            started = loop.time()
            for tp, records in batches.items():
                if tp in health.paused or loop.time() - started > self._batch_budget_s:
                    consumer.seek(tp, records[0].offset)  # fetched again later, nothing skipped
                    continue
                await self._handle_partition(sub, consumer, health, tp, records, started)

    def _resume_due(self, consumer: AIOKafkaConsumer, health: _ConsumerHealth, now: float) -> None:
        for tp, at in list(health.paused.items()):
            if now >= at:
                del health.paused[tp]
                if tp in consumer.assignment():
                    consumer.resume(tp)

    async def _handle_partition(self, sub: Subscription, consumer: AIOKafkaConsumer, health: _ConsumerHealth,
                                tp: TopicPartition, records: list, started: float) -> None:  # type: ignore[type-arg]
        loop = asyncio.get_running_loop()
        handled: int | None = None
        if sub.batch_handler is not None:
            raws = [RawRecord(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ())) for r in records]
            try:
                whole = await self._deliver.batch(sub.group, sub.batch_handler, raws)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Unavailable: the batch again, later
                self._pause(consumer, health, tp, records[0].offset, error)
                return
            if whole:
                handled = records[-1].offset + 1
                records = []
        for record in records:
            if loop.time() - started > self._batch_budget_s:
                consumer.seek(tp, record.offset)
                break
            try:
                await self._deliver(sub.group, sub.handler, RawRecord(
                    record.topic, record.partition, record.offset, record.key, record.value,
                    tuple(record.headers or ())))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Unavailable or a fault: try this message again later
                self._pause(consumer, health, tp, record.offset, error)
                break
            handled = record.offset + 1
            health.backoff.pop(tp, None)
        if handled is None:
            return
        key = (sub.group, tp.topic, tp.partition)
        self._handled[key] = max(self._handled.get(key, 0), handled)
        self._moved.set()
        try:
            await consumer.commit({tp: handled})
        except CommitFailedError as error:
            log.warning("commit failed for %s (rebalanced; will be redelivered): %s", sub.group, error)
        except KafkaError as error:
            log.warning("commit failed for %s: %s; a later commit covers it, or it is redelivered", sub.group, error)
        highwater = consumer.highwater(tp)
        if highwater is not None:
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition), sub.group).set(max(0, highwater - handled))

    def _pause(self, consumer: AIOKafkaConsumer, health: _ConsumerHealth, tp: TopicPartition, offset: int,
               error: Exception) -> None:
        delay = min(self._policy.backoff_max_s, max(self._policy.backoff_initial_s, 2 * health.backoff.get(tp, 0.0)))
        health.backoff[tp] = delay
        health.paused[tp] = asyncio.get_running_loop().time() + delay
        consumer.seek(tp, offset)
        consumer.pause(tp)
        level = logging.WARNING if isinstance(error, Unavailable) else logging.ERROR
        log.log(level, "%s@%d/%d for %s waits %.1f s and is tried again: %s: %s", tp.topic, tp.partition,
                offset, health.group, delay, type(error).__name__, error)
