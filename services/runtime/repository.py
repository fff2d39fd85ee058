"""The repository base: one aggregate type in one collection, written with its events.

One document per aggregate, keyed by the aggregate's id, so every read of one aggregate is a
lone ``_id`` lookup (indexed on MongoDB and on FerretDB 1.x alike). Every write carries the
events that announce it inside the same document (the transactional outbox) and hands them to
the relay; every change is guarded by the version it was decided on (optimistic concurrency).

A service declares its repository as a subclass naming the collection, the topic its events
travel on, the aggregate model and how to read its key; the rest is here. Errors are the
repository's own (a missing aggregate, a stale version): the HTTP edge turns them into
problem responses, so storage code never speaks HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from contracts.envelope import new_envelope
from services.runtime.changes import Change
from services.runtime.clock import Clock
from services.runtime.outbox import OUTBOX, OutboxRelay, new_with_outbox, outbox_entries, set_with_outbox
from services.runtime.store import Collection, Document, DuplicateKeyError, Filter, Store, UpdateOp

A = TypeVar("A", bound=BaseModel)

LOOKUP_CONCURRENCY = 50
"""Lone ``_id`` lookups in flight at once when loading many aggregates."""
MAX_WRITE_ATTEMPTS = 3
"""Reads and retries of one change that keeps losing to concurrent writers."""

_INTERNAL = ("_id", OUTBOX)


class RepositoryError(Exception):
    """A write or read the repository refused; the message names the aggregate."""


class NotStored(RepositoryError):
    """No aggregate with that key."""


class AlreadyStored(RepositoryError):
    """An aggregate with that key exists already."""


class VersionMismatch(RepositoryError):
    """The aggregate is not (or no longer) at the version the caller expected."""


class KeptChanging(RepositoryError):
    """Concurrent writers won every attempt of this change."""


@dataclass(frozen=True)
class Page(Generic[A]):
    items: list[A]
    last: str | None
    """Key to continue after, when there is more."""


@dataclass(frozen=True)
class VersionedWrite(Generic[A]):
    """A change decided on the aggregate as read at ``read_version``."""

    change: Change[A]
    read_version: int


class Repository(Generic[A]):
    collection_name: ClassVar[str]
    topic: ClassVar[str]
    """Where this aggregate's events are published (keyed by the aggregate's key)."""
    source: ClassVar[str]
    """CloudEvents ``source`` of those events, e.g. ``/estate/inventory``."""
    model: type[A]
    noun: ClassVar[str] = "aggregate"
    """How messages name one aggregate: "no device with asset tag X"."""
    key_name: ClassVar[str] = "key"
    indexes: ClassVar[tuple[tuple[tuple[str, int], ...], ...]] = ()
    incremental: ClassVar[bool] = False
    """For aggregates that grow (a budget's spend by delivery, a request's deliveries): a change
    is written as what it adds (new dict entries, items appended to a list) or replaces (a
    whole field), not as the whole document, and the aggregate last read or written is kept
    parsed by version (a read fetches the stored version and parses only when that moved). Only
    for aggregates whose decisions build new containers and never change one in place: a field
    is compared with its value before the change by identity."""

    def __init__(self, store: Store, relay: OutboxRelay, clock: Clock) -> None:
        self.collection: Collection = store.collection(self.collection_name)
        self._relay = relay
        self._clock = clock
        self._parsed: dict[str, tuple[int, A]] = {}
        relay.watch(self.collection_name)

    def key(self, value: A) -> str:
        raise NotImplementedError

    def version(self, value: A) -> int:
        return int(value.version)  # type: ignore[attr-defined]

    # -- documents ------------------------------------------------------------------------

    def to_document(self, value: A) -> Document:
        doc = value.model_dump(mode="json")
        doc["_id"] = self.key(value)
        return doc

    def from_document(self, doc: Mapping[str, Any]) -> A:
        return self.model.model_validate({k: v for k, v in doc.items() if k not in _INTERNAL})

    def entries(self, change: Change[A], trace: dict[str, str] | None = None) -> list[Document]:
        """Outbox entries announcing ``change`` (with the current trace unless given)."""
        now, subject = self._clock.now(), self.key(change.value)
        return outbox_entries(
            (new_envelope(type=name, source=self.source, subject=subject, time=now, data=data)
             for name, data in change.events), self.topic, trace)

    def new_document(self, change: Change[A], trace: dict[str, str] | None = None) -> Document:
        """A new aggregate's document, carrying the events that announce it."""
        return new_with_outbox(self.to_document(change.value), self.entries(change, trace))

    # -- reads ----------------------------------------------------------------------------

    async def create_indexes(self) -> None:
        for keys in self.indexes:
            await self.collection.create_index(keys)

    async def load(self, key: str) -> A | None:
        if self.incremental and key in self._parsed:
            stored = await self.collection.find_one({"_id": key}, projection=["version"])
            version, value = self._parsed[key]
            if stored is not None and stored.get("version") == version:
                return value
        doc = await self.collection.find_one({"_id": key})
        if doc is None:
            self._parsed.pop(key, None)
            return None
        value = self.from_document(doc)
        if self.incremental:
            self._parsed[key] = (self.version(value), value)
        return value

    async def get(self, key: str) -> A:
        found = await self.load(key)
        if found is None:
            raise NotStored(f"no {self.noun} with {self.key_name} {key}")
        return found

    async def load_many(self, keys: Iterable[str]) -> dict[str, A]:
        """Aggregates by key (the missing ones left out)."""
        return {k: self.from_document(d) for k, d in (await self._documents(keys)).items()}

    async def page(self, criteria: Filter, *, after: str | None, limit: int) -> Page[A]:
        """Up to ``limit`` aggregates matching ``criteria`` in key order, after ``after``."""
        flt = dict(criteria)
        if after is not None:
            flt["_id"] = {"$gt": after}
        docs = await self.collection.find(flt, sort=[("_id", 1)], limit=limit + 1)
        items = [self.from_document(d) for d in docs[:limit]]
        return Page(items, self.key(items[-1]) if len(docs) > limit else None)

    async def _documents(self, keys: Iterable[str], projection: Sequence[str] | None = None) -> dict[str, Document]:
        """Stored documents by key, read by lone ``_id`` lookups a few at a time: an ``$in``
        over many keys is a full scan on a stock FerretDB 1.x."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Document] = {}
        for start in range(0, len(wanted), LOOKUP_CONCURRENCY):
            docs = await asyncio.gather(*(self.collection.find_one({"_id": k}, projection)
                                          for k in wanted[start:start + LOOKUP_CONCURRENCY]))
            found.update((d["_id"], d) for d in docs if d is not None)
        return found

    # -- writes ---------------------------------------------------------------------------

    async def insert(self, change: Change[A]) -> A:
        """Store a new aggregate with its events; AlreadyStored if the key is taken."""
        doc = self.new_document(change)
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise AlreadyStored(f"{self.key_name} {self.key(change.value)} is already registered") from None
        self._relay.submit(self.collection_name, [doc])
        return change.value

    async def insert_documents(self, docs: Sequence[Document]) -> set[int]:
        """Store new aggregates' documents (from :meth:`new_document`) in one unordered
        batch; returns the indexes of those refused because their key is taken."""
        result = await self.collection.insert_many(docs)
        refused = set(result.duplicate_indexes)
        self._relay.submit(self.collection_name, (d for i, d in enumerate(docs) if i not in refused))
        return refused

    async def mutate(self, key: str, expected_version: int | None, decide: Callable[[A], Change[A]]) -> A:
        """Read the aggregate, decide, and write the change only onto the version it was
        decided on; a lost race is decided again on the newer version, unless the caller
        named the version it expects (then it is told to read again)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = await self.get(key)
            if expected_version is not None and self.version(current) != expected_version:
                raise VersionMismatch(
                    f"{self.noun} {key} is at version {self.version(current)}, not {expected_version}; "
                    "read it again and retry")
            change = decide(current)
            if not change.changed:
                return current
            entries = self.entries(change)
            written = await self.collection.update_one(
                {"_id": key, "version": self.version(current)},
                self._update(change, entries, current if self.incremental else None))
            if written.matched:
                self._relay.submit(self.collection_name, [{"_id": key, OUTBOX: entries}])
                if self.incremental:
                    self._parsed[key] = (self.version(change.value), change.value)
                return change.value
            if expected_version is not None:
                raise VersionMismatch(f"{self.noun} {key} changed while this request ran; retry")
        raise KeptChanging(f"{self.noun} {key} kept changing under this request; retry")

    async def write_many(self, writes: Sequence[VersionedWrite[A]]) -> set[str]:
        """Write changes in one unordered batch, each only onto the version it was decided
        on; returns the keys of those that landed (the others lost to a concurrent writer)."""
        if not writes:
            return set()
        entries = [self.entries(w.change) for w in writes]
        keys = [self.key(w.change.value) for w in writes]
        result = await self.collection.bulk_update([
            UpdateOp({"_id": k, "version": w.read_version}, self._update(w.change, e))
            for k, w, e in zip(keys, writes, entries, strict=True)])
        landed = set(keys)
        if result.matched < len(writes):
            landed = await self._holding_their_events(dict(zip(keys, entries, strict=True)))
        self._relay.submit(self.collection_name,
                           ({"_id": k, OUTBOX: e} for k, e in zip(keys, entries, strict=True) if k in landed))
        return landed

    async def _holding_their_events(self, entries: dict[str, list[Document]]) -> set[str]:
        """After a partly matched batch: the aggregates whose stored outbox holds their
        change's own first event. (The version number cannot tell: a concurrent change from
        the same version writes the same number.)"""
        first = {k: e[0]["id"] for k, e in entries.items() if e}
        docs = await self._documents(first, projection=[OUTBOX])
        return {k for k, d in docs.items()
                if any(isinstance(e, dict) and e.get("id") == first[k] for e in d.get(OUTBOX) or ())}

    def _update(self, change: Change[A], entries: list[Document], before: A | None = None) -> dict[str, object]:
        """The update that stores ``change`` with its events: every field, or with ``before``
        (``incremental``) only what changed since it."""
        if before is None:
            fields = self.to_document(change.value)
            del fields["_id"]
            return set_with_outbox(fields, entries)
        return _changed_fields(before, change.value, entries)


def _plain_key(key: object) -> bool:
    return isinstance(key, str) and bool(key) and "." not in key and not key.startswith("$")


def _changed_fields(before: BaseModel, after: BaseModel, entries: list[Document]) -> dict[str, object]:
    """``$set`` of the new entries of a dict field and of the fields replaced, ``$push`` of the
    items appended to a list field, beside the events; a field still holding the same object
    is left alone."""
    include: dict[str, Any] = {}
    paths: list[tuple[str, str | None]] = []
    pushes: dict[str, range] = {}
    for name in type(after).model_fields:
        old, new = getattr(before, name), getattr(after, name)
        if old is new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and all(new.get(k, _GONE) is v for k, v in old.items()) \
                and all(_plain_key(k) for k in new if k not in old):
            added = [k for k in new if k not in old]
            if added:
                include[name] = set(added)
                paths += [(name, k) for k in added]
        elif isinstance(old, list) and isinstance(new, list) and len(new) >= len(old) \
                and all(a is b for a, b in zip(old, new, strict=False)):
            if len(new) > len(old):
                include[name] = set(range(len(old), len(new)))
                pushes[name] = range(len(old), len(new))
        else:
            include[name] = True
            paths.append((name, None))
    dumped = after.model_dump(mode="json", include=include) if include else {}
    sets: dict[str, Any] = {name if key is None else f"{name}.{key}": dumped[name] if key is None else dumped[name][key]
                            for name, key in paths}
    push: dict[str, Any] = {name: {"$each": dumped[name]} for name in pushes}
    push[OUTBOX] = {"$each": entries}
    update: dict[str, object] = {"$push": push}
    if sets:
        update["$set"] = sets
    return update


_GONE = object()
