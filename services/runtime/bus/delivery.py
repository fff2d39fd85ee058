"""What happens to one consumed message, the same for every bus adapter.

The handler runs inside a span continuing the producer's trace. A failure is retried with
exponential backoff up to ``max_attempts``; a message that cannot succeed (it does not
parse, or it failed every attempt) goes to ``<topic>.dead-letter`` with the error in its
headers, and the consumer moves on. Only after this returns does the adapter commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from services.runtime.bus.base import Handler, Message, OutgoingMessage, dead_letter_topic
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry, context_from_headers

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[None]]


class PermanentError(Exception):
    """A handler error that no retry can cure (the message is wrong, not the world)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1)))


def _is_permanent(error: Exception) -> bool:
    return isinstance(error, PermanentError | ValidationError | UnicodeDecodeError)


class Delivery:
    def __init__(self, *, policy: RetryPolicy, telemetry: Telemetry, metrics: Metrics, publish: Publish) -> None:
        self._policy = policy
        self._telemetry = telemetry
        self._metrics = metrics
        self._publish = publish

    async def __call__(self, group: str, handler: Handler, message: Message) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                await self._run(group, handler, message)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure is retried or dead-lettered
                self._metrics.events_consumed.labels(message.topic, group, "error").inc()
                if _is_permanent(error) or attempt >= self._policy.max_attempts:
                    await self._dead_letter(group, message, error, attempt)
                    return
                log.warning("handler failed (attempt %d) on %s@%d/%d: %s", attempt,
                            message.topic, message.partition, message.offset, error)
                await asyncio.sleep(self._policy.delay(attempt))
            else:
                self._metrics.events_consumed.labels(message.topic, group, "ok").inc()
                return
            finally:
                self._metrics.handler_latency.labels(message.topic, group).observe(
                    time.perf_counter() - started)

    async def _run(self, group: str, handler: Handler, message: Message) -> None:
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
                await handler(message)
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                raise

    async def _dead_letter(self, group: str, message: Message, error: Exception, attempts: int) -> None:
        log.error("dead-lettering %s@%d/%d for group %s after %d attempt(s): %s", message.topic,
                  message.partition, message.offset, group, attempts, error)
        detail = "".join(traceback.format_exception_only(error)).strip()[:2000]
        headers = tuple(h for h in message.headers if not h[0].startswith("dlq-")) + (
            ("dlq-error", detail.encode()),
            ("dlq-error-type", type(error).__name__.encode()),
            ("dlq-original-topic", message.topic.encode()),
            ("dlq-original-partition", str(message.partition).encode()),
            ("dlq-original-offset", str(message.offset).encode()),
            ("dlq-consumer-group", group.encode()),
            ("dlq-attempts", str(attempts).encode()),
        )
        await self._publish([OutgoingMessage(dead_letter_topic(message.topic), message.key, message.value, headers)])
        self._metrics.dead_letters.labels(message.topic, group).inc()
