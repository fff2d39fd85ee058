"""The AsyncAPI 3.0 document: every topic, its dead-letter topics, who sends and who receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.envelope import CONTENT_TYPE
from contracts.registry import EVENT_TYPES, EventType
from services import registry
from services.runtime.bus.base import dead_letter_topic
from services.runtime.runtime import Runtime
from services.runtime.settings import Mode, Settings
from tools.contracts.schemas import Schema, event_schema

KAFKA_BINDING = "0.5.0"


def _id(name: str) -> str:
    """An AsyncAPI channel/operation/message id (``^[A-Za-z0-9_-]+$``) for a dotted name."""
    return name.replace(".", "_")


def _component_schema(schema: Schema, components: dict[str, Schema]) -> Schema:
    """``schema`` without its $defs (moved into ``components``), references rewritten."""
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    schema = json.loads(text)
    schema.pop("$schema", None)
    for name, definition in schema.pop("$defs", {}).items():
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two different models are both named {name!r}")
    return schema


_TRACE_HEADERS = {
    "traceparent": {"type": "string", "description": "W3C trace context of the producer span"},
    "tracestate": {"type": "string", "description": "W3C trace state, when there is one"},
}
_DLQ_HEADERS = {
    "dlq-error": "the exception, as `Type: message` (at most 2000 characters)",
    "dlq-error-type": "the exception's class name",
    "dlq-original-topic": "the topic the message was consumed from",
    "dlq-original-partition": "its partition, in decimal",
    "dlq-original-offset": "its offset, in decimal",
    "dlq-consumer-group": "the consumer group that gave up on it",
    "dlq-attempts": "how many times the handler ran, in decimal",
}
_KEY = {"type": "string", "minLength": 1,
        "description": "The envelope's `subject`: the aggregate id, so one aggregate's events "
                       "stay in order on one partition"}


def _event_message(event: EventType, components: dict[str, Schema]) -> Schema:
    components[event.name] = _component_schema(event_schema(event), components)
    headers = {**_TRACE_HEADERS, "content-type": {"const": CONTENT_TYPE, "type": "string"},
               "ce_type": {"const": event.name, "type": "string",
                           "description": "The envelope's `type`, to route without parsing"}}
    return {
        "name": event.name, "title": event.name, "summary": event.summary,
        "contentType": CONTENT_TYPE,
        "headers": {"type": "object", "properties": headers,
                    "required": ["content-type", "ce_type"]},
        "payload": {"$ref": f"#/components/schemas/{event.name}"},
        "correlationId": {"location": "$message.payload#/id",
                          "description": "The envelope id; consumers deduplicate on it"},
        "bindings": {"kafka": {"key": _KEY, "bindingVersion": KAFKA_BINDING}},
    }


def _dead_letter_message(topic: str, dlq: str) -> Schema:
    headers = {**_TRACE_HEADERS, "content-type": {"type": "string"}, "ce_type": {"type": "string"},
               **{name: {"type": "string", "description": text}
                  for name, text in _DLQ_HEADERS.items()}}
    return {
        "name": dlq, "title": f"A message from {topic} that could not be handled",
        "summary": "The original key, value and headers, unchanged, plus dlq-* headers saying why. "
                   "Replay by publishing the value back to the original topic.",
        "headers": {"type": "object", "properties": headers, "required": sorted(_DLQ_HEADERS)},
        "payload": {"description": "The original value, byte for byte: normally one of the "
                                   f"{topic} events, but a value that did not parse is "
                                   "dead-lettered too."},
        "bindings": {"kafka": {"key": {**_KEY, "minLength": 0, "description": "The original key"},
                               "bindingVersion": KAFKA_BINDING}},
    }


@dataclass
class Wiring:
    service: str
    publishes: tuple[str, ...]
    subscriptions: list[tuple[str, tuple[str, ...]]]
    """(consumer group, topics)"""

    def subscribe(self, group: str, topics: Sequence[str], handler: object, *, batch_handler: object = None) -> None:
        self.subscriptions.append((group, tuple(topics)))


async def _wiring() -> list[Wiring]:
    """What each service publishes and consumes, found by running its ``setup`` against a
    bus that only records subscriptions (nothing is started)."""
    wiring = []
    for unit in registry.units():
        bus = Wiring(unit.name, unit.publishes, [])
        runtime = Runtime.build(Settings(mode=Mode.EMBEDDED), bus=bus)  # type: ignore[arg-type]
        try:
            await runtime.prepare([unit])
        finally:
            await runtime.store.close()
            runtime.telemetry.shutdown()
        wiring.append(bus)
    return wiring


def asyncapi() -> Schema:
    loop = asyncio.new_event_loop()  # not asyncio.run: leave the caller's current loop alone
    try:
        wiring = loop.run_until_complete(_wiring())
    finally:
        loop.close()
    schemas: dict[str, Schema] = {}
    messages: dict[str, Schema] = {}
    channels: dict[str, Schema] = {}
    for topic in sorted({e.topic for e in EVENT_TYPES.values()}):
        events = [e for e in EVENT_TYPES.values() if e.topic == topic]
        publishers = [w.service for w in wiring if topic in w.publishes]
        channels[_id(topic)] = {
            "address": topic, "title": topic,
            "description": f"Published by: {', '.join(publishers) or 'no service here yet'}. "
                           "Key: the aggregate id (envelope subject).",
            "messages": {_id(e.name): {"$ref": f"#/components/messages/{_id(e.name)}"}
                         for e in events},
        }
        for event in events:
            messages[_id(event.name)] = _event_message(event, schemas)
    for group, topic in sorted({(g, t) for w in wiring for g, topics in w.subscriptions for t in topics}):
        dlq = dead_letter_topic(topic, group)
        messages[_id(dlq)] = _dead_letter_message(topic, dlq)
        channels[_id(dlq)] = {
            "address": dlq, "title": dlq,
            "description": f"Messages from {topic} that consumer group {group} gave up on "
                           "(unreadable, or failed every retry). Replayed with a dlq-replay-group "
                           "header, they reach only this group.",
            "messages": {_id(dlq): {"$ref": f"#/components/messages/{_id(dlq)}"}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Estate platform events", "version": "1.0.0",
                 "description": "Every message is one CloudEvents 1.0 envelope in structured JSON "
                                "mode; trace context travels in the Kafka headers."},
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": _operations(wiring, channels),
        "components": {"schemas": schemas, "messages": messages},
    }


def _operations(wiring: list[Wiring], channels: dict[str, Schema]) -> dict[str, Schema]:
    def operation(action: str, topic: str, **extra: Any) -> Schema:
        channel = _id(topic)
        if channel not in channels:
            raise ValueError(f"{w.service} uses topic {topic!r}, but no event type in "
                             "contracts/registry.py travels on it")
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"}
                             for m in channels[channel]["messages"]], **extra}

    ops: dict[str, Schema] = {}
    for w in wiring:
        service = w.service
        for topic in w.publishes:
            ops[f"{service}_sends_{_id(topic)}"] = operation(
                "send", topic, summary=f"{service} publishes through its outbox relay")
        for group, topics in w.subscriptions:
            for topic in topics:
                binding = {"groupId": {"type": "string", "const": group},
                           "bindingVersion": KAFKA_BINDING}
                ops[f"{group}_receives_{_id(topic)}"] = operation(
                    "receive", topic, summary=f"{service} consumes as consumer group {group}",
                    bindings={"kafka": binding})
                ops[f"{group}_dead_letters_{_id(topic)}"] = operation(
                    "send", dead_letter_topic(topic, group),
                    summary=f"consumer group {group} dead-letters what it cannot handle")
    return ops
