"""Migration's collections: one document per device record (asset tag), per wave (wave id), the
policy (one document), and a per-site projection listing the devices ready to upgrade and those
awaiting a replacement, so waves and pairing read sites by ``_id`` instead of filtering devices."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contracts.envelope import new_envelope
from contracts.migration import DEVICES_TOPIC, POLICY_KEY, POLICY_TOPIC, WAVES_TOPIC
from contracts.registry import event_type
from services.migration.domain import DeviceRecord, Policy
from services.migration.waves import TERMINAL_WAVES, Wave
from services.runtime.changes import Change
from services.runtime.outbox import outbox_entries
from services.runtime.repository import Repository
from services.runtime.store import Collection, Document, Store, UpdateOp

SOURCE = "/estate/migration"
ASSET_TAG_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"
WAVE_ID_PATTERN = r"^W-[0-9A-F]{8}$"
IN_CHUNK = 500
"""Device records read per ``_id $in`` query (one that long has the store's query limit, not
the short lookup limit: 250 at once had timed out at 2 s on a loaded FerretDB)."""


class DeviceRecords(Repository[DeviceRecord]):
    collection_name = "migration_devices"
    topic = DEVICES_TOPIC
    source = SOURCE
    model = DeviceRecord
    noun = "device"
    key_name = "asset tag"

    def key(self, value: DeviceRecord) -> str:
        return value.asset_tag

    async def load_many(self, keys: Iterable[str]) -> dict[str, DeviceRecord]:
        """Records by asset tag (the missing ones left out), ``IN_CHUNK`` per ``_id $in`` query:
        one round trip where lone lookups cost one each (about 6 ms apiece on FerretDB, which
        answers them one after another). MongoDB and the project's FerretDB build answer an
        ``_id $in`` from the ``_id`` index (see ``_by_id`` in the store)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, DeviceRecord] = {}
        for start in range(0, len(wanted), IN_CHUNK):
            for doc in await self.collection.find({"_id": {"$in": wanted[start:start + IN_CHUNK]}}):
                found[str(doc["_id"])] = self.from_document(doc)
        return found

    async def applications_page(self, *, after: str | None, limit: int) -> tuple[dict[str, list[str]], str | None]:
        """Up to ``limit`` records' installed applications by asset tag, in tag order after
        ``after`` (the record itself is not read: a catalogue change concerns few of them), and
        the tag to continue after when there is more."""
        docs = await self.collection.find({"_id": {"$gt": after}} if after is not None else {},
                                          sort=[("_id", 1)], limit=limit + 1, projection=["applications"])
        found = {str(d["_id"]): list(d.get("applications") or ()) for d in docs[:limit]}
        return found, (str(docs[limit - 1]["_id"]) if len(docs) > limit else None)

    def entries(self, change: Change[DeviceRecord], trace: dict[str, str] | None = None) -> list[Document]:
        """Each event on its own type's topic: a replacement need travels to procurement on
        ``migration.replacements`` keyed by its need id; the rest by asset tag."""
        now, tag = self._clock.now(), self.key(change.value)
        found: list[Document] = []
        for name, data in change.events:
            subject = str(getattr(data, "need_id", tag)) if name == "migration.replacement.needed.v1" else tag
            envelope = new_envelope(type=name, source=self.source, subject=subject, time=now, data=data)
            found += outbox_entries([envelope], event_type(name).topic, trace)
        return found


class Waves(Repository[Wave]):
    collection_name = "migration_waves"
    topic = WAVES_TOPIC
    source = SOURCE
    model = Wave
    noun = "wave"
    key_name = "id"

    def key(self, value: Wave) -> str:
        return value.wave_id

    async def every(self) -> list[Wave]:
        """All waves (a handful a month: a small collection, read whole)."""
        return [self.from_document(d) for d in await self.collection.find({}, sort=[("_id", 1)])]

    _finished: set[str] | None = None

    async def unfinished(self) -> list[Wave]:
        """The waves the wave job may still have to move, by id: all but those this process saw
        finished (ended, no device active: that never changes again), which are not read whole
        (their device lists) on every turn."""
        if self._finished is None:
            self._finished = set()
        ids = [str(d["_id"]) for d in await self.collection.find({}, sort=[("_id", 1)], projection=["_id"])]
        found = await self.load_many(i for i in ids if i not in self._finished)
        waves = [found[i] for i in ids if i in found]
        self._finished.update(w.wave_id for w in waves if w.state in TERMINAL_WAVES and not w.active)
        return waves


class Policies(Repository[Policy]):
    collection_name = "migration_policy"
    topic = POLICY_TOPIC
    source = SOURCE
    model = Policy
    noun = "policy"
    key_name = "key"

    def key(self, value: Policy) -> str:
        return POLICY_KEY

    _cached: Policy | None = None

    async def current(self) -> Policy | None:
        """The stored policy, read by ``_id`` for its version and parsed again only when that
        changed. On FerretDB the read still costs about as much as reading the whole document
        (6 ms measured at 1,000 events): the next step is a small version marker document."""
        doc = await self.collection.find_one({"_id": POLICY_KEY}, projection=["version"])
        if doc is None:
            return None
        if self._cached is None or self._cached.version != doc.get("version"):
            self._cached = await self.load(POLICY_KEY)
        return self._cached


COUNTS_KEY = "devices"


def tally(before: DeviceRecord | None, after: DeviceRecord | None) -> Counter[str]:
    """How a record going from ``before`` to ``after`` changes the counts (``readiness.<outcome>``,
    ``saga.<state>``): empty when neither its verdict nor its saga state changed."""
    delta: Counter[str] = Counter()
    for record, sign in ((before, -1), (after, 1)):
        if record is None:
            continue
        if record.readiness is not None:
            delta[f"readiness.{record.readiness.outcome.value}"] += sign
        if record.saga is not None:
            delta[f"saga.{record.saga.state.value}"] += sign
    return Counter({k: v for k, v in delta.items() if v})


class Counts:
    """``{_id: "devices", readiness: {outcome: n}, saga: {state: n}}``: devices by readiness
    outcome and by saga state, kept by ``$inc`` as records change (one write per batch or
    change), so the gauges read one document by ``_id`` instead of counting the records. A
    process that stops between a record's write and its count's leaves that change uncounted."""

    def __init__(self, store: Store) -> None:
        self.collection: Collection = store.collection("migration_counts")

    async def add(self, delta: Counter[str]) -> None:
        changes = {k: v for k, v in delta.items() if v}
        if changes:
            await self.collection.update_one({"_id": COUNTS_KEY}, {"$inc": changes}, upsert=True)

    async def get(self) -> tuple[dict[str, int], dict[str, int]]:
        """(devices by readiness outcome, devices by saga state)."""
        doc = await self.collection.find_one({"_id": COUNTS_KEY}) or {}
        return ({str(k): int(v) for k, v in (doc.get("readiness") or {}).items()},
                {str(k): int(v) for k, v in (doc.get("saga") or {}).items()})


@dataclass(frozen=True)
class Placement:
    """One device's entry at one site: placed (ready to upgrade as ``ready``, awaiting a
    replacement of kind ``awaiting``, or neither) or, with ``leaves``, taken off the site."""

    site: str
    tag: str
    borough: str | None = None
    ready: str | None = None
    awaiting: str | None = None
    leaves: bool = False


class Sites:
    """``{_id: site, borough, ready: {tag: kind}, awaiting: {tag: needed kind}, paired: {new: old}}``,
    changed by ``$set``/``$unset`` of one tag at a time (idempotent, no version needed)."""

    def __init__(self, store: Store) -> None:
        self.collection: Collection = store.collection("migration_sites")

    async def get(self, site: str) -> Document | None:
        return await self.collection.find_one({"_id": site})

    async def in_boroughs(self, boroughs: list[str]) -> list[Document]:
        """A few hundred sites: read whole, small."""
        return [d for d in await self.collection.find({}, sort=[("_id", 1)]) if d.get("borough") in boroughs]

    async def place(self, site: str, borough: str | None, tag: str, *, ready: str | None,
                    awaiting: str | None) -> None:
        sets: dict[str, Any] = {"borough": borough}
        unsets: dict[str, Any] = {}
        for field, value in (("ready", ready), ("awaiting", awaiting)):
            if value is None:
                unsets[f"{field}.{tag}"] = ""
            else:
                sets[f"{field}.{tag}"] = value
        update: dict[str, Any] = {"$set": sets}
        if unsets:
            update["$unset"] = unsets
        await self.collection.update_one({"_id": site}, update, upsert=True)

    async def apply(self, placements: list[Placement]) -> None:
        """Many placements in one bulk write, one update per site: the last placement of a
        device at a site is the one that counts (each sets or unsets both of its entries, so
        the result is that of applying them in order). Idempotent, like ``place``."""
        last: dict[tuple[str, str], Placement] = {}
        for p in placements:
            last.pop((p.site, p.tag), None)
            last[(p.site, p.tag)] = p
        updates: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        upsert: set[str] = set()
        for p in last.values():
            sets, unsets = updates.setdefault(p.site, ({}, {}))
            if p.leaves:
                unsets[f"ready.{p.tag}"] = unsets[f"awaiting.{p.tag}"] = ""
                continue
            upsert.add(p.site)
            sets["borough"] = p.borough
            for field, value in (("ready", p.ready), ("awaiting", p.awaiting)):
                if value is None:
                    unsets[f"{field}.{p.tag}"] = ""
                else:
                    sets[f"{field}.{p.tag}"] = value
        ops = []
        for site, (sets, unsets) in updates.items():
            update: dict[str, Any] = {}
            if sets:
                update["$set"] = sets
            if unsets:
                update["$unset"] = unsets
            ops.append(UpdateOp({"_id": site}, update, upsert=site in upsert))
        if ops:
            await self.collection.bulk_update(ops)

    async def leave(self, site: str, tag: str) -> None:
        await self.collection.update_one({"_id": site}, {"$unset": {f"ready.{tag}": "", f"awaiting.{tag}": ""}})

    async def claim(self, site: str, replacement: str, kind: str) -> str | None:
        """The old device ``replacement`` replaces at ``site``: the one it was paired with, or
        the first awaiting a device of its kind, claimed in one single-document write."""
        for _ in range(5):
            doc = await self.get(site)
            if doc is None:
                return None
            known = (doc.get("paired") or {}).get(replacement)
            if known is not None:
                return str(known)
            waiting = sorted(t for t, k in (doc.get("awaiting") or {}).items() if k == kind)
            if not waiting:
                return None
            old = waiting[0]
            won = await self.collection.find_one_and_update(
                {"_id": site, f"awaiting.{old}": kind},
                {"$unset": {f"awaiting.{old}": ""}, "$set": {f"paired.{replacement}": old}})
            if won is not None:
                return old
        return None
