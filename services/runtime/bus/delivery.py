"""What happens to one consumed message, the same for every bus adapter.

The handler runs inside a span continuing the producer's trace. Two kinds of failure:

* the infrastructure is unavailable (store or broker unreachable, a timeout): the message is
  fine and the handler may be too, so nothing is dead-lettered; ``Unavailable`` tells the
  adapter to stop at this message, back off and try it again until the infrastructure is
  back (it pauses the partition and keeps polling, so the group does not rebalance);
* the handler fails: retried with exponential backoff up to ``max_attempts``; a message that
  cannot succeed (it cannot be read or parsed, or failed every attempt) goes to its group's
  dead-letter topic with the error in its headers, and the consumer moves on.

Only after ``deliver`` returns does the adapter commit the offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from pydantic import ValidationError

from services.runtime.bus.base import (
    REPLAY_GROUP_HEADER,
    BatchHandler,
    BusUnavailable,
    Handler,
    Headers,
    Message,
    OutgoingMessage,
    dead_letter_topic,
)
from services.runtime.metrics import Metrics
from services.runtime.store import StoreUnavailable
from services.runtime.telemetry import Telemetry, context_from_headers

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[None]]
TRANSIENT: tuple[type[BaseException], ...] = (StoreUnavailable, BusUnavailable, ConnectionError, TimeoutError)
"""Errors that say the infrastructure is away, not that the message or the handler is wrong."""


class PermanentError(Exception):
    """A handler error that no retry can cure (the message is wrong, not the world)."""


class Unavailable(Exception):
    """The infrastructure is unavailable: handle this message again later; skip nothing."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed record as the broker gave it, before anything is decoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers


def _is_permanent(error: Exception) -> bool:
    return isinstance(error, PermanentError | ValidationError | UnicodeDecodeError | ValueError)


class Delivery:
    def __init__(self, *, policy: RetryPolicy, telemetry: Telemetry, metrics: Metrics, publish: Publish) -> None:
        self._policy = policy
        self._telemetry = telemetry
        self._metrics = metrics
        self._publish = publish

    async def __call__(self, group: str, handler: Handler, record: RawRecord) -> None:
        """Handle one record, or dead-letter it; raises ``Unavailable`` to be called again."""
        try:
            message = Message(topic=record.topic, key=(record.key or b"").decode(), value=record.value or b"",
                              headers=record.headers, partition=record.partition, offset=record.offset)
        except UnicodeDecodeError as error:
            await self._dead_letter(group, record, ValueError(f"the message key is not valid UTF-8: {error}"), 1)
            return
        replay_for = next((v for k, v in record.headers if k == REPLAY_GROUP_HEADER), None)
        if replay_for is not None and replay_for != group.encode():
            self._metrics.events_consumed.labels(record.topic, group, "skipped").inc()
            return  # a replay meant for another group
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                outcome = await self._run(group, handler, message)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as error:
                self._metrics.events_consumed.labels(message.topic, group, "unavailable").inc()
                raise Unavailable(f"{type(error).__name__}: {error}") from error
            except Exception as error:  # noqa: BLE001 - every handler failure is retried or dead-lettered
                self._metrics.events_consumed.labels(message.topic, group, "error").inc()
                if _is_permanent(error) or attempt >= self._policy.max_attempts:
                    await self._dead_letter(group, record, error, attempt)
                    return
                log.warning("handler failed (attempt %d) on %s@%d/%d: %s", attempt,
                            message.topic, message.partition, message.offset, error)
                await asyncio.sleep(self._policy.delay(attempt))
            else:
                self._metrics.events_consumed.labels(message.topic, group, outcome or "ok").inc()
                return
            finally:
                self._metrics.handler_latency.labels(message.topic, group).observe(time.perf_counter() - started)

    async def batch(self, group: str, handler: BatchHandler, records: Sequence[RawRecord]) -> bool:
        """Handle one partition's consecutive records together: True if the batch handler took
        them all; False if they must go one by one through ``__call__`` (a record that cannot be
        decoded, a dead-letter replay, or a handler failure other than unavailability, which is
        logged). Raises ``Unavailable`` as ``__call__`` does."""
        if not records:
            return True
        messages = []
        for r in records:
            if any(k == REPLAY_GROUP_HEADER for k, _ in r.headers) or r.key is None or r.value is None:
                return False
            try:
                key = r.key.decode()
            except UnicodeDecodeError:
                return False
            messages.append(Message(topic=r.topic, key=key, value=r.value, headers=r.headers,
                                    partition=r.partition, offset=r.offset))
        first = records[0]
        parent, links = _batch_parent(messages)
        started = time.perf_counter()
        with self._telemetry.tracer.start_as_current_span(
            f"{first.topic} process", context=parent, links=links, kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": first.topic,
                        "messaging.consumer.group.name": group, "messaging.batch.message_count": len(records),
                        "messaging.kafka.offset": first.offset},
        ) as span:
            try:
                await handler(messages)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as error:
                self._metrics.events_consumed.labels(first.topic, group, "unavailable").inc()
                raise Unavailable(f"{type(error).__name__}: {error}") from error
            except Exception as error:  # noqa: BLE001 - handled again one by one (retries, dead letters)
                span.record_exception(error)
                log.warning("batch handler failed on %s@%d/%d-%d for %s (%s: %s); handling them one by one",
                            first.topic, first.partition, first.offset, records[-1].offset, group,
                            type(error).__name__, error)
                return False
            finally:
                self._metrics.handler_latency.labels(first.topic, group).observe(time.perf_counter() - started)
        self._metrics.events_consumed.labels(first.topic, group, "ok").inc(len(records))
        return True

    async def _run(self, group: str, handler: Handler, message: Message) -> str | None:
        with self._telemetry.tracer.start_as_current_span(
            f"{message.topic} process",
            context=context_from_headers(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": message.topic,
                "messaging.consumer.group.name": group,
                "messaging.kafka.message.key": message.key,
                "messaging.kafka.offset": message.offset,
            },
        ) as span:
            try:
                return await handler(message)
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                raise

    async def _dead_letter(self, group: str, record: RawRecord, error: Exception, attempts: int) -> None:
        log.error("dead-lettering %s@%d/%d for group %s after %d attempt(s): %s", record.topic,
                  record.partition, record.offset, group, attempts, error)
        detail = "".join(traceback.format_exception_only(error)).strip()[:2000]
        headers = tuple(h for h in record.headers if not h[0].startswith("dlq-")) + (
            ("dlq-error", detail.encode()),
            ("dlq-error-type", type(error).__name__.encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
            ("dlq-consumer-group", group.encode()),
            ("dlq-attempts", str(attempts).encode()),
        )
        try:
            await self._publish([OutgoingMessage(dead_letter_topic(record.topic, group), record.key or b"",
                                                 record.value or b"", headers)])
        except Exception as failure:  # noqa: BLE001 - not dead-lettered: must be handled again, not skipped
            raise Unavailable(f"could not dead-letter: {type(failure).__name__}: {failure}") from failure
        self._metrics.dead_letters.labels(record.topic, group).inc()


def _batch_parent(messages: Sequence[Message]) -> tuple[Context | None, list[Link]]:
    """Where a batch's consumer span belongs. Its messages all from one trace (the usual case:
    one request's events, though a relay may have published them under more than one producer
    span, e.g. in two rounds): under the first message's producer span, with a link to each
    other producer span, so the trace runs on unbroken. From several traces: a root with a link
    to each producer span (OpenTelemetry's way for a batch of many traces)."""
    parents: dict[tuple[int, int], tuple[Context, SpanContext]] = {}
    for message in messages:
        context = context_from_headers(message.headers)
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            parents.setdefault((span_context.trace_id, span_context.span_id), (context, span_context))
    if len({trace_id for trace_id, _ in parents}) == 1:
        (context, _), *others = parents.values()
        return context, [Link(span_context) for _, span_context in others]
    return None, [Link(span_context) for _, span_context in parents.values()]
