"""Outbox entries as bus messages, with the trace context each event was stored with."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import SpanKind

from services.runtime.bus import OutgoingMessage
from services.runtime.store import Document
from services.runtime.telemetry import (
    Telemetry,
    context_from_headers,
    current_trace_carrier,
    headers_from_carrier,
)

CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")


def messages_for(entries: Sequence[Document], telemetry: Telemetry) -> list[OutgoingMessage]:
    """Messages for the entries, in order; one producer span per originating trace (an
    import's thousands of events share one), whose context every message carries."""
    by_trace: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for index, entry in enumerate(entries):
        by_trace.setdefault(tuple(sorted((entry.get("trace") or {}).items())), []).append(index)
    messages: list[OutgoingMessage | None] = [None] * len(entries)
    for carrier, indexes in by_trace.items():
        first = entries[indexes[0]]
        with telemetry.tracer.start_as_current_span(
            f"{first['topic']} publish", context=context_from_headers(headers_from_carrier(dict(carrier))),
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": first["topic"],
                        "messaging.batch.message_count": len(indexes)},
        ):
            headers = (*headers_from_carrier(current_trace_carrier()), CONTENT_TYPE_HEADER)
        for index in indexes:
            entry = entries[index]
            messages[index] = OutgoingMessage(entry["topic"], entry["key"], entry["event"].encode(),
                                              (*headers, ("ce_type", entry["type"].encode())))
    return [m for m in messages if m is not None]
