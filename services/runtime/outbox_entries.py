"""What a writer stores: pending-event entries inside the changed document (``outbox``), and
the names of the collections the relay keeps beside it."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.envelope import Envelope
from services.runtime.store import Document
from services.runtime.telemetry import current_trace_carrier

OUTBOX = "outbox"
HAS_PENDING = {f"{OUTBOX}.0": {"$exists": True}}
LEASES = "outbox_leases"
PUBLISHED = "outbox_published"


def markers(collection: str) -> str:
    """The collection where replicas that do not publish leave word of what they wrote."""
    return f"outbox_pending_{collection}"


def outbox_entries(envelopes: Iterable[Envelope], topic: str,
                   trace: dict[str, str] | None = None) -> list[Document]:
    """Pending-event entries for the events of one change, bound for ``topic`` (keyed by
    each event's subject), with the trace context (the current one unless given). The event
    is kept as its JSON text: exactly the bytes that will be published, and cheap to store."""
    trace = current_trace_carrier() if trace is None else trace
    return [
        {"id": e.id, "topic": topic, "key": e.subject, "type": e.type,
         "event": e.model_dump_json(), "trace": trace}
        for e in envelopes
    ]


def new_with_outbox(doc: Document, entries: list[Document]) -> Document:
    """A document to insert, carrying the events that announce it. They are the document's
    first events (``seq`` 1, 2, ...), which lets the relay publish them without a read."""
    return {**doc, OUTBOX: [{**e, "seq": i} for i, e in enumerate(entries, start=1)]}


def set_with_outbox(changes: Document, entries: list[Document]) -> Document:
    """An update that sets ``changes`` and appends the events that announce them."""
    return {"$set": changes, "$push": {OUTBOX: {"$each": entries}}}
