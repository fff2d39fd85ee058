"""The Kafka bus, on aiokafka.

Producer: idempotent, acks=all, keyed by aggregate id. Consumers: one AIOKafkaConsumer
per subscription, auto-commit off; a batch's offsets are committed only after every
message in it was handled or dead-lettered (see delivery.py), so a crash redelivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from services.runtime.bus.base import Handler, Message, OutgoingMessage, Subscription, dead_letter_topic
from services.runtime.bus.delivery import Delivery, RetryPolicy
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry

log = logging.getLogger(__name__)


class KafkaBus:
    def __init__(self, *, bootstrap: str, client_id: str, partitions: int, policy: RetryPolicy,
                 telemetry: Telemetry, metrics: Metrics, topics: Sequence[str] = ()) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._partitions = partitions
        self._declared = set(topics)
        self._metrics = metrics
        self._subscriptions: list[Subscription] = []
        self._consumers: list[AIOKafkaConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._deliver = Delivery(policy=policy, telemetry=telemetry, metrics=metrics, publish=self.publish)

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        self._subscriptions.append(Subscription(group, tuple(topics), handler))

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
            topics.update(dead_letter_topic(t) for t in sub.topics)
        if topics:
            await self.ensure_topics(sorted(topics))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id,
            enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=512 * 1024,
        )
        await self._producer.start()
        for sub in self._subscriptions:
            consumer = AIOKafkaConsumer(
                *sub.topics, bootstrap_servers=self._bootstrap, group_id=sub.group,
                client_id=f"{self._client_id}-{sub.group}", enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=500,
            )
            await consumer.start()
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(self._consume(sub, consumer), name=f"consumer:{sub.group}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self._producer is None:
            raise RuntimeError("the Kafka bus is not started")
        pending = [
            await self._producer.send(m.topic, m.value, key=m.key.encode(), headers=list(m.headers))
            for m in messages
        ]
        await asyncio.gather(*pending)

    async def ping(self) -> None:
        if self._producer is None:
            raise RuntimeError("the Kafka bus is not started")
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=5)

    async def _consume(self, sub: Subscription, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    await self._handle_partition(sub, consumer, tp, records)
            except asyncio.CancelledError:
                raise
            except CommitFailedError as error:
                log.warning("commit failed for %s (rebalanced; will be redelivered): %s", sub.group, error)
            except KafkaError as error:
                log.error("consumer %s: %s; retrying", sub.group, error)
                await asyncio.sleep(1)

    async def _handle_partition(self, sub: Subscription, consumer: AIOKafkaConsumer,
                                tp: TopicPartition, records: list) -> None:  # type: ignore[type-arg]
        for record in records:
            message = Message(
                topic=record.topic, key=(record.key or b"").decode(), value=record.value or b"",
                headers=tuple(record.headers or ()), partition=record.partition, offset=record.offset,
            )
            await self._deliver(sub.group, sub.handler, message)
        next_offset = records[-1].offset + 1
        await consumer.commit({tp: next_offset})
        highwater = consumer.highwater(tp)
        if highwater is not None:
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition), sub.group).set(
                max(0, highwater - next_offset))
