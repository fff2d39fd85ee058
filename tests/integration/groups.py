"""Consumer groups on the shared test broker: a service started by a test should read what that
test publishes, not the history every earlier test left on the same topics."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from contracts.registry import EVENT_TYPES
from services import registry


async def begin_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commit the topics' end offsets for ``group`` before its service starts: it then reads
    only what this test publishes, not every earlier test's events on the shared topics."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - topics may be new
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        if partitions:
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in ends.items()})
    finally:
        await consumer.stop()


async def every_service_begins_at_end(bootstrap: str, prefix: str) -> None:
    """Each service's consumer group (``prefix`` + service name) starts at the end of every
    event topic."""
    topics = sorted({e.topic for e in EVENT_TYPES.values()})
    for name in registry.SERVICES:
        await begin_at_end(bootstrap, prefix + name, topics)
