"""The store on MongoDB (or any MongoDB-wire server such as FerretDB) via PyMongo's async API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError
from pymongo.errors import DuplicateKeyError as MongoDuplicateKeyError

from services.runtime.store.base import BulkResult, Document, DuplicateKeyError, Filter, Sort, UpdateOp

_DUPLICATE_KEY = 11000
BULK_STATEMENTS = 90
"""Statements per bulk write command: stock FerretDB 1.24 hangs on an update command of 100 or
more statements (each keeps a pooled SQLite connection until the command ends)."""


def _duplicates(error: BulkWriteError) -> list[int]:
    details = error.details.get("writeErrors", [])
    others = [e for e in details if e.get("code") != _DUPLICATE_KEY]
    if others:
        raise error
    return sorted(e["index"] for e in details)


class MongoCollection:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection
        self.name = collection.name

    async def create_index(self, keys: Sort, *, unique: bool = False) -> None:
        await self._c.create_index(list(keys), unique=unique)

    async def insert_one(self, doc: Document) -> None:
        try:
            await self._c.insert_one(dict(doc))
        except MongoDuplicateKeyError as e:
            raise DuplicateKeyError(f"{self.name}: {e.details}") from e

    async def insert_many(self, docs: Sequence[Document]) -> BulkResult:
        if not docs:
            return BulkResult()
        try:
            result = await self._c.insert_many([dict(d) for d in docs], ordered=False)
            return BulkResult(inserted=len(result.inserted_ids))
        except BulkWriteError as e:
            dupes = _duplicates(e)
            return BulkResult(inserted=e.details.get("nInserted", 0), duplicate_indexes=dupes)

    async def find_one(self, filter: Filter, projection: Sequence[str] | None = None) -> Document | None:
        return await self._c.find_one(dict(filter), projection=list(projection) if projection else None)

    async def find(
        self,
        filter: Filter,
        *,
        sort: Sort | None = None,
        limit: int = 0,
        projection: Sequence[str] | None = None,
    ) -> list[Document]:
        cursor = self._c.find(dict(filter), projection=list(projection) if projection else None)
        if sort:
            cursor = cursor.sort(list(sort))
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)

    async def count(self, filter: Filter) -> int:
        return await self._c.count_documents(dict(filter))

    async def find_one_and_update(
        self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False
    ) -> Document | None:
        try:
            return await self._c.find_one_and_update(
                dict(filter), dict(update), upsert=upsert, return_document=ReturnDocument.AFTER
            )
        except MongoDuplicateKeyError as e:
            raise DuplicateKeyError(f"{self.name}: {e.details}") from e

    async def update_one(self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False) -> BulkResult:
        try:
            r = await self._c.update_one(dict(filter), dict(update), upsert=upsert)
        except MongoDuplicateKeyError as e:
            raise DuplicateKeyError(f"{self.name}: {e.details}") from e
        return BulkResult(matched=r.matched_count, modified=r.modified_count, upserted=int(r.upserted_id is not None))

    async def update_many(self, filter: Filter, update: Mapping[str, Any]) -> BulkResult:
        r = await self._c.update_many(dict(filter), dict(update))
        return BulkResult(matched=r.matched_count, modified=r.modified_count)

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        if not ops:
            return BulkResult()
        total = BulkResult()
        for start in range(0, len(ops), BULK_STATEMENTS):
            part = await self._bulk_update(ops[start:start + BULK_STATEMENTS])
            total.matched += part.matched
            total.modified += part.modified
            total.upserted += part.upserted
            total.duplicate_indexes += [start + i for i in part.duplicate_indexes]
        return total

    async def _bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        requests = [UpdateOne(dict(o.filter), dict(o.update), upsert=o.upsert) for o in ops]
        try:
            r = await self._c.bulk_write(requests, ordered=False)
        except BulkWriteError as e:
            dupes = _duplicates(e)
            d = e.details
            return BulkResult(matched=d.get("nMatched", 0), modified=d.get("nModified", 0),
                              upserted=d.get("nUpserted", 0), duplicate_indexes=dupes)
        return BulkResult(matched=r.matched_count, modified=r.modified_count, upserted=r.upserted_count)

    async def delete_many(self, filter: Filter) -> int:
        r = await self._c.delete_many(dict(filter))
        return r.deleted_count


class MongoStore:
    def __init__(self, url: str, database: str, *, timeout_ms: int = 5000) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, uuidRepresentation="standard"
        )
        self._db = self._client[database]
        self._collections: dict[str, MongoCollection] = {}

    def collection(self, name: str) -> MongoCollection:
        if name not in self._collections:
            self._collections[name] = MongoCollection(self._db[name])
        return self._collections[name]

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def drop(self) -> None:
        """Drop the whole database (tests and benchmarks only)."""
        await self._client.drop_database(self._db.name)

    async def close(self) -> None:
        await self._client.close()
