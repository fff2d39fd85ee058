"""Reporting's read model in the store: three collections, every document read by ``_id``.

- ``<name>_dimensions``: one document per dimension (``borough:Camden``, ``os:windows:XP``,
  ``spend:framework:G-Cloud 7``...), its counters as fields;
- ``<name>_days``: one document per day (``day:2015-08-03``) with that day's changes to every
  dimension, flattened (``estate|legacy``), for daily series and figures as of a past date;
- ``<name>_entities``: one document per device, purchase, contract... with the version it
  applied last, its state, and what it contributed (so that a change moves exactly that).

The live read model is ``reporting``; a replay builds a fresh one (``reporting_replay``).
Field names are escaped (no dots: ``os:windows:8.1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from services.reporting.projection import Counters, Fold, Outcome, Projector, as_of, escape, unescape
from services.runtime.idempotency import APPLIED_EVENTS, apply_once
from services.runtime.store import Document, Store

LIVE, REPLAY = "reporting", "reporting_replay"
KEEP_APPLIED = 200
"""Event ids a dimension document remembers: only the events in flight when a consumer
stopped can come again before their device's version is recorded, far fewer than this."""
INSERT_CHUNK = 1000


def _escaped(fields: Mapping[str, float]) -> dict[str, float]:
    return {escape(k): v for k, v in fields.items()}


def _counters(doc: Mapping[str, Any]) -> Counters:
    return {unescape(k): v for k, v in doc.items() if k not in ("_id", APPLIED_EVENTS)}


class ReadModel:
    def __init__(self, store: Store, name: str = LIVE) -> None:
        self.name = name
        self.entities = store.collection(f"{name}_entities")
        self.dimensions = store.collection(f"{name}_dimensions")
        self.days = store.collection(f"{name}_days")

    # -- live: one event at a time, each document exactly once -----------------------------

    async def apply(self, projector: Projector, event_id: str, event_type: str, data: Mapping[str, Any],
                    time: datetime) -> Outcome | None:
        entity = projector.entity_of(event_type, data)
        previous = await self.entities.find_one({"_id": entity})
        outcome = projector.step(event_id, event_type, data, time, previous)
        if outcome is None:
            return None
        for doc_id, fields in outcome.dimensions.items():
            await apply_once(self.dimensions, doc_id, event_id, {"$inc": _escaped(fields)}, keep=KEEP_APPLIED)
        if outcome.day_increments:
            await apply_once(self.days, outcome.day, event_id, {"$inc": _escaped(outcome.day_increments)},
                             keep=KEEP_APPLIED)
        # Last: until the entity records the new version, a redelivery recomputes the same
        # outcome and apply_once skips the documents it reached.
        body = {k: v for k, v in outcome.entity.items() if k != "_id"}
        await self.entities.update_one({"_id": entity}, {"$set": body}, upsert=True)
        return outcome

    # -- replay: write a fold's documents at once -------------------------------------------

    async def clear(self) -> None:
        for collection in (self.entities, self.dimensions, self.days):
            await collection.delete_many({})

    async def write(self, fold: Fold) -> int:
        docs = [
            (self.dimensions, [{"_id": d, **_escaped(f)} for d, f in fold.dimensions.items()]),
            (self.days, [{"_id": d, **_escaped(f)} for d, f in fold.days.items()]),
            (self.entities, list(fold.entities.values())),
        ]
        written = 0
        for collection, batch in docs:
            for i in range(0, len(batch), INSERT_CHUNK):
                result = await collection.insert_many(batch[i:i + INSERT_CHUNK])
                written += result.inserted
        return written

    # -- reads --------------------------------------------------------------------------------

    async def all_dimensions(self) -> dict[str, Counters]:
        return {doc["_id"]: _counters(doc) for doc in await self.dimensions.find({})}

    async def dimension(self, doc_id: str) -> Counters:
        doc = await self.dimensions.find_one({"_id": doc_id})
        return _counters(doc) if doc else {}

    async def all_days(self) -> list[tuple[str, Counters]]:
        return sorted((doc["_id"], _counters(doc)) for doc in await self.days.find({}))

    async def dimensions_as_of(self, day: date | None) -> dict[str, Counters]:
        """Every dimension now, or at the end of ``day`` (from the day documents)."""
        if day is None:
            return {d: {f: v for f, v in c.items() if v} for d, c in (await self.all_dimensions()).items()}
        return as_of(await self.all_days(), day)

    async def entities_by_id(self, ids: list[str]) -> list[Document]:
        return await self.entities.find({"_id": {"$in": ids}}) if ids else []

    async def snapshot(self) -> dict[str, Any]:
        """Everything the read model holds, without apply_once's bookkeeping (replay == live)."""
        entities = {doc["_id"]: {k: v for k, v in doc.items() if k != "_id"} for doc in await self.entities.find({})}
        dims = {d: {f: v for f, v in c.items() if v} for d, c in (await self.all_dimensions()).items()}
        days = {d: {f: v for f, v in c.items() if v} for d, c in await self.all_days()}
        return {"entities": entities, "dimensions": {d: c for d, c in dims.items() if c},
                "days": {d: c for d, c in days.items() if c}}
