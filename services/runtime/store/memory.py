"""The embedded store: MongoDB semantics for one process, no server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.runtime.store.base import BulkResult, Document, DuplicateKeyError, Filter, Sort, UpdateOp
from services.runtime.store.matching import (
    _equals,
    apply_update,
    copy_document,
    equality_seed,
    get_path,
    indexed_update,
    matches,
    project,
    same,
    sort_key,
)


class MemoryCollection:
    def __init__(self, name: str) -> None:
        self.name = name
        self._docs: dict[Any, Document] = {}
        # unique secondary index: fields -> {key -> _id}
        self._unique: dict[tuple[str, ...], dict[tuple[Any, ...], Any]] = {}
        self._lock = asyncio.Lock()

    async def create_index(self, keys: Sort, *, unique: bool = False) -> None:
        fields = tuple(k for k, _ in keys)
        if not unique or fields in self._unique:
            return
        index: dict[tuple[Any, ...], Any] = {}
        for doc in self._docs.values():
            key = self._unique_key(doc, fields)
            if key in index:
                raise DuplicateKeyError(f"{self.name}: existing documents repeat {fields}")
            index[key] = doc["_id"]
        self._unique[fields] = index

    @staticmethod
    def _unique_key(doc: Document, fields: tuple[str, ...]) -> tuple[Any, ...]:
        return tuple(repr(get_path(doc, f)) for f in fields)

    def _assert_unique(self, doc: Document, ignore_id: Any = None) -> None:
        for fields, index in self._unique.items():
            owner = index.get(self._unique_key(doc, fields), ignore_id)
            if owner != ignore_id:
                raise DuplicateKeyError(f"{self.name}: duplicate key on {', '.join(fields)}")

    def _index(self, doc: Document) -> None:
        for fields, index in self._unique.items():
            index[self._unique_key(doc, fields)] = doc["_id"]

    def _unindex(self, doc: Document) -> None:
        for fields, index in self._unique.items():
            index.pop(self._unique_key(doc, fields), None)

    def _insert(self, doc: Document) -> Document:
        doc = copy_document(doc)
        if next(iter(doc), None) != "_id":  # _id first, as the server stores it
            doc = {"_id": doc.pop("_id") if "_id" in doc else str(uuid.uuid4()), **doc}
        if doc["_id"] in self._docs:
            raise DuplicateKeyError(f"{self.name}: duplicate _id {doc['_id']!r}")
        self._assert_unique(doc)
        self._docs[doc["_id"]] = doc
        self._index(doc)
        return doc

    async def insert_one(self, doc: Document) -> None:
        async with self._lock:
            self._insert(doc)

    async def insert_many(self, docs: Sequence[Document]) -> BulkResult:
        result = BulkResult()
        async with self._lock:
            for index, doc in enumerate(docs):
                try:
                    self._insert(doc)
                    result.inserted += 1
                except DuplicateKeyError:
                    result.duplicate_indexes.append(index)
        return result

    def _matching(self, filter: Filter) -> list[Document]:
        """Documents matching ``filter``; an ``_id`` condition (a value or ``$in``) is answered
        from the ``_id`` map, each hit checked against the value it was looked up by (a dict
        lookup finds ``_id`` 1 for True, MongoDB does not) and the rest of the filter."""
        by_id = filter.get("_id")
        if by_id is None:
            return [d for d in self._docs.values() if matches(d, filter)]
        if isinstance(by_id, dict) and set(by_id) == {"$in"}:
            ids: Iterable[Any] = by_id["$in"]
        elif not isinstance(by_id, dict):
            ids = (by_id,)
        else:
            return [d for d in self._docs.values() if matches(d, filter)]
        rest = {k: v for k, v in filter.items() if k != "_id"}
        found: dict[int, Document] = {}
        for wanted in ids:
            doc = self._docs.get(wanted)
            if doc is not None and id(doc) not in found and _equals(doc["_id"], wanted) and \
                    (not rest or matches(doc, rest)):
                found[id(doc)] = doc
        return list(found.values())

    async def find_one(self, filter: Filter, projection: Sequence[str] | None = None) -> Document | None:
        found = self._matching(filter)
        return project(found[0], projection) if found else None  # type: ignore[arg-type]

    async def find(
        self,
        filter: Filter,
        *,
        sort: Sort | None = None,
        limit: int = 0,
        projection: Sequence[str] | None = None,
    ) -> list[Document]:
        found = self._matching(filter)
        if sort:
            _sort(found, sort)
        if limit:
            found = found[:limit]
        return [project(d, projection) for d in found]  # type: ignore[arg-type]

    async def count(self, filter: Filter) -> int:
        return len(self._matching(filter))

    def _update_doc(self, doc: Document, update: Mapping[str, Any]) -> tuple[Document, bool]:
        """The document after ``update``, and whether that changed it (then it is stored).
        Changed as MongoDB counts it: 1 -> True or a reordered sub-document is a change."""
        updated = dict(doc)
        apply_update(updated, update)
        if same(updated, doc):
            return doc, False
        self._assert_unique(updated, ignore_id=doc["_id"])
        self._unindex(doc)
        self._docs[doc["_id"]] = updated
        self._index(updated)
        return updated, True

    def _upsert(self, filter: Filter, update: Mapping[str, Any]) -> Document:
        doc: Document = {}
        apply_update(doc, {"$set": equality_seed(filter)}, inserting=True)
        apply_update(doc, update, inserting=True)
        return self._insert(doc)

    def _update_one(
        self, filter: Filter, update: Mapping[str, Any], upsert: bool
    ) -> tuple[Document | None, BulkResult]:
        found = self._matching(filter)
        if found:
            after, changed = self._update_doc(found[0], update)
            return after, BulkResult(matched=1, modified=int(changed))
        if upsert:
            return self._upsert(filter, update), BulkResult(upserted=1)
        return None, BulkResult()

    async def find_one_and_update(
        self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False
    ) -> Document | None:
        async with self._lock:
            doc, _ = self._update_one(filter, update, upsert)
            return copy_document(doc) if doc is not None else None

    async def update_one(self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False) -> BulkResult:
        async with self._lock:
            return self._update_one(filter, update, upsert)[1]

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        total = BulkResult()
        async with self._lock:
            for index, op in enumerate(ops):
                try:
                    _, r = self._update_one(op.filter, op.update, op.upsert)
                except DuplicateKeyError:
                    total.duplicate_indexes.append(index)
                    continue
                total.matched += r.matched
                total.modified += r.modified
                total.upserted += r.upserted
        return total

    async def update_many(self, filter: Filter, update: Mapping[str, Any]) -> BulkResult:
        total = BulkResult()
        update = indexed_update(update)
        async with self._lock:
            for doc in self._matching(filter):
                _, changed = self._update_doc(doc, update)
                total.matched += 1
                total.modified += int(changed)
        return total

    async def delete_many(self, filter: Filter) -> int:
        async with self._lock:
            doomed = [d["_id"] for d in self._matching(filter)]
            for key in doomed:
                self._unindex(self._docs.pop(key))
            return len(doomed)


def _sort(docs: list[Document], sort: Sort) -> None:
    """``docs`` in ``sort`` order: by one field whose values are all strings (``_id`` mostly)
    with Python's own comparison, which orders strings as BSON does; otherwise value by value
    as MongoDB compares them."""
    if len(sort) == 1:
        field, direction = sort[0]
        values = [get_path(d, field) for d in docs]
        if all(type(v) is str for v in values):
            order = sorted(range(len(docs)), key=values.__getitem__, reverse=direction < 0)
            docs[:] = [docs[i] for i in order]
            return
    docs.sort(key=sort_key(sort))


class MemoryStore:
    def __init__(self) -> None:
        self._collections: dict[str, MemoryCollection] = {}

    def collection(self, name: str) -> MemoryCollection:
        if name not in self._collections:
            self._collections[name] = MemoryCollection(name)
        return self._collections[name]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
