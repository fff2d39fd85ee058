"""JSON Schema per event: the envelope with ``type`` pinned and ``data`` the event's model."""

from __future__ import annotations

import json
from typing import Any

from contracts.envelope import Envelope
from contracts.registry import EventType

DIALECT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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
