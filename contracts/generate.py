"""Writes the published contract artefacts from the code, and checks them.

    python -m contracts.generate           write schemas/, asyncapi.json, openapi/
    python -m contracts.generate --check   exit 1 if the committed files differ (drift)

``schemas/<event type>.json`` is the CloudEvents envelope with ``data`` replaced by the
event's data model and ``type`` pinned; ``asyncapi.json`` describes every topic, its
dead-letter topic and which service sends or receives it; ``openapi/<service>.json`` is
each service app's OpenAPI document. A published event schema is never overwritten by an
incompatible one (see ``breaking_changes``): bump the version (``…v2``) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.envelope import CONTENT_TYPE, Envelope
from contracts.registry import EVENT_TYPES, EventType
from services import embedded
from services.runtime.bus.base import dead_letter_topic
from services.runtime.runtime import Runtime
from services.runtime.settings import Mode, Settings

HERE = Path(__file__).resolve().parent
SCHEMAS, OPENAPI, ASYNCAPI = "schemas", "openapi", "asyncapi.json"
ENVELOPE = "envelope"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING = "0.5.0"
Schema = dict[str, Any]


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- JSON Schema per event --------------------------------------------------------------

def envelope_schema() -> Schema:
    return {"$schema": DIALECT, **Envelope.model_json_schema()}


def event_schema(event: EventType) -> Schema:
    """The envelope as it travels for ``event``: ``type`` pinned, ``data`` its model."""
    schema = envelope_schema()
    data = event.model.model_json_schema()
    defs = data.pop("$defs", {})
    defs[event.model.__name__] = data
    props = schema["properties"]
    props["type"] = {"title": "Type", "type": "string", "const": event.name}
    props["data"] = {"$ref": f"#/$defs/{event.model.__name__}"}
    return {**schema, "$defs": defs, "title": event.name, "description": event.summary}


# --- Compatibility -----------------------------------------------------------------------

def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What ``new`` breaks for events valid under ``old``: a property removed or retyped,
    an optional property made required, a new required property (old events lack it)."""
    problems: list[str] = []
    _compare(old, new, "", (old, new), problems, ())
    return problems


def _resolve(schema: Schema, root: Schema) -> Schema:
    for _ in range(50):
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not ref.startswith("#/"):
            raise ValueError(f"cannot resolve {ref!r}: only local references are supported")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    raise ValueError("reference chain too long")


def _leaves(schema: Schema, root: Schema) -> list[Schema]:
    schema = _resolve(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return [leaf for branch in branches for leaf in _leaves(branch, root)]
    return [schema]


_PY_TO_JSON = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"), (type(None), "null"))


def _types(leaf: Schema) -> set[str]:
    if "type" in leaf:
        return {leaf["type"]} if isinstance(leaf["type"], str) else set(leaf["type"])
    values = [leaf["const"]] if "const" in leaf else leaf.get("enum", [])
    found = {next(name for py, name in _PY_TO_JSON if isinstance(v, py)) for v in values}
    return found or ({"object"} if "properties" in leaf else set())


def _types_of(leaves: list[Schema]) -> set[str]:
    per_leaf = [_types(leaf) for leaf in leaves]
    return set().union(*per_leaf) if all(per_leaf) else set()  # an untyped leaf allows anything


def _leaf_of(leaves: list[Schema], kind: str) -> Schema | None:
    return next((leaf for leaf in leaves if kind in _types(leaf)), None)


def _compare(old: Schema, new: Schema, path: str, roots: tuple[Schema, Schema],
             problems: list[str], stack: tuple[tuple[str, str], ...]) -> None:
    refs = (old.get("$ref", ""), new.get("$ref", ""))
    if refs[0] and refs in stack:
        return  # a recursive model: this pair is already being compared further up
    stack += (refs,)
    old_leaves, new_leaves = _leaves(old, roots[0]), _leaves(new, roots[1])
    old_types, new_types = _types_of(old_leaves), _types_of(new_leaves)
    if old_types and new_types and old_types != new_types:
        problems.append(f"{path or '(root)'}: type changed from "
                        f"{'|'.join(sorted(old_types))} to {'|'.join(sorted(new_types))}")
        return
    o, n = _leaf_of(old_leaves, "array"), _leaf_of(new_leaves, "array")
    if o is not None and n is not None and "items" in o and "items" in n:
        _compare(o["items"], n["items"], f"{path}[]", roots, problems, stack)
    o, n = _leaf_of(old_leaves, "object"), _leaf_of(new_leaves, "object")
    if o is None or n is None:
        return
    old_props, new_props = o.get("properties", {}), n.get("properties", {})
    old_req, new_req = set(o.get("required", ())), set(n.get("required", ()))
    for name in sorted(old_props.keys() | new_props.keys()):
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed")
        elif name not in old_props:
            if name in new_req:
                problems.append(f"{where}: added as required (events already published lack it)")
        else:
            if name in new_req and name not in old_req:
                problems.append(f"{where}: was optional, now required")
            _compare(old_props[name], new_props[name], where, roots, problems, stack)


# --- AsyncAPI ----------------------------------------------------------------------------

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

    def subscribe(self, group: str, topics: Sequence[str], handler: object) -> None:
        self.subscriptions.append((group, tuple(topics)))


async def _wiring() -> list[Wiring]:
    """What each service publishes and consumes, found by running its ``setup`` against a
    bus that only records subscriptions (nothing is started)."""
    wiring = []
    for unit in embedded.units():
        bus = Wiring(unit.name, unit.publishes, [])
        runtime = Runtime.build(Settings(mode=Mode.EMBEDDED), bus=bus)  # type: ignore[arg-type]
        try:
            if unit.setup is not None:
                await unit.setup(runtime)
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


# --- OpenAPI -----------------------------------------------------------------------------

def openapi_documents() -> dict[str, Schema]:
    """Each service app's OpenAPI document, and the embedded platform's (``platform``)."""
    settings = Settings(mode=Mode.EMBEDDED)
    documents = {}
    for unit in embedded.units():
        app_module = importlib.import_module(f"services.{unit.name}.app")
        documents[unit.name] = app_module.create_app(settings).openapi()
    documents["platform"] = embedded.create_app(settings).openapi()
    return documents


# --- Files -------------------------------------------------------------------------------

def render() -> dict[str, str]:
    """Every artefact's text, by path relative to ``contracts/``."""
    files = {f"{SCHEMAS}/{ENVELOPE}.json": dumps(envelope_schema())}
    files |= {f"{SCHEMAS}/{e.name}.json": dumps(event_schema(e)) for e in EVENT_TYPES.values()}
    files[ASYNCAPI] = dumps(asyncapi())
    files |= {f"{OPENAPI}/{name}.json": dumps(doc) for name, doc in openapi_documents().items()}
    return files


def committed(root: Path = HERE) -> dict[str, str]:
    paths = [*root.glob(f"{SCHEMAS}/*.json"), *root.glob(f"{OPENAPI}/*.json"), root / ASYNCAPI]
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in paths if p.exists()}


def drift(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    return ([f"contracts/{p}: differs" for p in sorted(expected.keys() & actual.keys())
             if expected[p] != actual[p]]
            + [f"contracts/{p}: missing" for p in sorted(expected.keys() - actual.keys())]
            + [f"contracts/{p}: extra (no longer generated)"
               for p in sorted(actual.keys() - expected.keys())])


def incompatibilities(current: dict[str, str]) -> list[str]:
    """Breaking changes of the code's event schemas against the committed (published) ones."""
    problems = []
    for path, text in sorted(current.items()):
        name = path.removeprefix(f"{SCHEMAS}/").removesuffix(".json")
        if not path.startswith(f"{SCHEMAS}/") or name == ENVELOPE:
            continue
        if name not in EVENT_TYPES:
            problems.append(f"{name}: published, but no longer in contracts/registry.py")
            continue
        problems += [f"{name}: {p}" for p in breaking_changes(json.loads(text),
                                                              event_schema(EVENT_TYPES[name]))]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    expected, actual = render(), committed()
    if args.check:
        stale = drift(expected, actual)
        print("\n".join(stale) if stale else "contracts are up to date")
        if stale:
            print("run `python -m contracts.generate` to regenerate them", file=sys.stderr)
        return 1 if stale else 0
    breaking = incompatibilities(actual)
    if breaking:
        print("refusing to overwrite published event schemas with incompatible ones:\n  "
              + "\n  ".join(breaking) + "\nadd a new version (…v2) instead; to retract a schema "
              "on purpose, delete its file by hand first", file=sys.stderr)
        return 1
    for path in actual.keys() - expected.keys():
        (HERE / path).unlink()
    for path, text in expected.items():
        if actual.get(path) != text:
            (HERE / path).parent.mkdir(parents=True, exist_ok=True)
            (HERE / path).write_text(text, encoding="utf-8")
            print(f"wrote contracts/{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
