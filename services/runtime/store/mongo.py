"""The store on MongoDB (or any MongoDB-wire server such as FerretDB) via PyMongo's async API.

Every operation is bounded: the client waits at most ``timeout_s`` to find the server, to
connect, and for each operation as a whole (PyMongo's client-side operation timeout,
``timeoutMS``, which also covers a server that accepts connections and then says nothing).
PyMongo's transient failures (refused, reset, timed out, no server) come out as
:class:`StoreUnavailable`, with a reason a person can act on; the client reconnects by itself
once the server is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from pymongo.errors import DuplicateKeyError as MongoDuplicateKeyError

from services.runtime.store.base import (
    BulkResult,
    Document,
    DuplicateKeyError,
    Filter,
    Sort,
    StoreUnavailable,
    UpdateOp,
)
from services.runtime.telemetry import Telemetry, store_command_listener

log = logging.getLogger(__name__)
T = TypeVar("T")
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


def public_url(url: str) -> str:
    """``url`` without credentials or options: ``mongodb://user:pw@h:1/db?x=y`` -> ``mongodb://h:1/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = rest.split("?", 1)[0]
    hosts, slash, path = rest.partition("/")
    return f"{scheme}://{hosts.rpartition('@')[2]}{slash}{path}"


def is_transient(error: PyMongoError) -> bool:
    """The store is unreachable, hung or too slow, as opposed to refusing what was asked."""
    return isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError) or error.timeout


def _reason(error: Exception) -> str:
    text = str(error).split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
    lowered = text.lower()
    if "refused" in lowered or "errno 111" in lowered or "connect call failed" in lowered:
        return "connection refused"
    if ("timed out" in lowered or "timeout" in lowered or "no servers found yet" in lowered
            or isinstance(error, ExecutionTimeout)):
        return "timed out"
    if any(word in lowered for word in ("closed", "reset", "broken pipe", "cancelled", "pool paused")):
        return "connection lost"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "unknown host"
    host, colon, rest = text.partition(": ")  # "127.0.0.1:27017: <what>"
    return (rest if colon and ":" in host else text).strip()[:200] or type(error).__name__


SHORT_IN = 10
"""An ``_id $in`` over at most this many keys has the short operation limit; a longer one reads
as many documents as a small scan (100 records timed out at 2 s on a loaded FerretDB during a
wave) and gets the query limit, with the ping beside it."""


def _by_id(filter: Filter) -> bool:
    """A lone ``_id`` equality or a short ``$in``: answered from the ``_id`` index by MongoDB and
    by the project's FerretDB build (deploy/local/ferretdb.sh, patch 3), quickly."""
    if len(filter) != 1 or "_id" not in filter:
        return False
    value = filter["_id"]
    return not isinstance(value, Mapping) or (list(value) == ["$in"] and len(value["$in"]) <= SHORT_IN)


class _Where:
    """What a StoreUnavailable message says about the store, and how long queries may take."""

    def __init__(self, url: str, timeout_s: float | None = None, query_timeout_s: float | None = None,
                 probe: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.url = public_url(url)
        self.timeout_s = timeout_s
        self.query_timeout_s = query_timeout_s
        self.probe = probe

    async def query(self, filter: Filter | None, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``. A filter other than a lone ``_id`` may need a scan (FerretDB 1.x
        always scans for one), and a bulk write (``filter`` None) carries many documents: these
        get ``query_timeout_s`` instead of the short operation limit, with a ping under the
        short limit beside them, so an unreachable or hung store still answers at once (a ping
        that fails ends the wait with its reason; the operation, abandoned, ends by its own
        limit). Beside, not before: a ping first cost every bulk write a round trip, a third of
        a batch's time on a busy FerretDB. Operations in flight together share one ping."""
        if self.query_timeout_s is None or (filter is not None and _by_id(filter)):
            return await operation()
        if self.probe is None:
            with pymongo.timeout(self.query_timeout_s):
                return await operation()
        await self.probe()
        with pymongo.timeout(self.query_timeout_s):
            return await operation()

    def unavailable(self, reason: str) -> StoreUnavailable:
        within = f" within {self.timeout_s} s" if self.timeout_s is not None else ""
        return StoreUnavailable(f"no answer from {self.url}{within} ({reason})")

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except PyMongoError as error:
            if is_transient(error):
                raise self.unavailable(_reason(error)) from error
            raise


class _Server:
    """What the server is, asked once: FerretDB 1.x (its ``buildInfo`` has ``ferretdbVersion``)
    answers every filter but a lone ``_id`` one by scanning the collection, so an index other
    than ``_id`` is never read there and only makes each write dearer (six on inventory's
    devices cost its import a fifth of its time)."""

    def __init__(self, client: AsyncMongoClient[Document]) -> None:
        self._client = client
        self._scans: bool | None = None

    async def scans_every_filter(self) -> bool:
        if self._scans is None:
            info = await self._client.admin.command("buildInfo")
            self._scans = "ferretdbVersion" in info
            if self._scans:
                log.info("FerretDB %s: only unique secondary indexes are created (it scans for any "
                         "filter but a lone _id)", info["ferretdbVersion"])
        return self._scans


class MongoCollection:
    def __init__(self, collection: AsyncCollection[Document], where: _Where | None = None,
                 server: _Server | None = None) -> None:
        self._c = collection
        self.name = collection.name
        self._where = where or _Where("the MongoDB server")
        self._server = server or _Server(collection.database.client)

    async def create_index(self, keys: Sort, *, unique: bool = False) -> None:
        """Unique indexes always (they enforce); others only where queries can use them."""
        with self._where.guard():
            if unique or not await self._server.scans_every_filter():
                await self._c.create_index(list(keys), unique=unique)

    async def insert_one(self, doc: Document) -> None:
        with self._where.guard():
            try:
                await self._c.insert_one(dict(doc))
            except MongoDuplicateKeyError as e:
                raise DuplicateKeyError(f"{self.name}: {e.details}") from e

    async def insert_many(self, docs: Sequence[Document]) -> BulkResult:
        with self._where.guard():
            if not docs:
                return BulkResult()
            try:
                result = await self._where.query(None, lambda: self._c.insert_many(  # a bulk write
                    [dict(d) for d in docs], ordered=False))
                return BulkResult(inserted=len(result.inserted_ids))
            except BulkWriteError as e:
                dupes = _duplicates(e)
                return BulkResult(inserted=e.details.get("nInserted", 0), duplicate_indexes=dupes)

    async def find_one(self, filter: Filter, projection: Sequence[str] | None = None) -> Document | None:
        with self._where.guard():
            return await self._c.find_one(dict(filter), projection=list(projection) if projection else None)

    async def find(
        self,
        filter: Filter,
        *,
        sort: Sort | None = None,
        limit: int = 0,
        projection: Sequence[str] | None = None,
    ) -> list[Document]:
        with self._where.guard():
            cursor = self._c.find(dict(filter), projection=list(projection) if projection else None)
            if sort:
                cursor = cursor.sort(list(sort))
            if limit:
                cursor = cursor.limit(limit)
            return await self._where.query(filter, lambda: cursor.to_list(None))

    async def count(self, filter: Filter) -> int:
        with self._where.guard():
            return await self._where.query(filter, lambda: self._c.count_documents(dict(filter)))

    async def find_one_and_update(
        self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False
    ) -> Document | None:
        with self._where.guard():
            try:
                return await self._c.find_one_and_update(
                    dict(filter), dict(update), upsert=upsert, return_document=ReturnDocument.AFTER
                )
            except MongoDuplicateKeyError as e:
                raise DuplicateKeyError(f"{self.name}: {e.details}") from e

    async def update_one(self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False) -> BulkResult:
        with self._where.guard():
            try:
                r = await self._c.update_one(dict(filter), dict(update), upsert=upsert)
            except MongoDuplicateKeyError as e:
                raise DuplicateKeyError(f"{self.name}: {e.details}") from e
            return BulkResult(matched=r.matched_count, modified=r.modified_count,
                              upserted=int(r.upserted_id is not None))

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        with self._where.guard():
            if not ops:
                return BulkResult()
            total = BulkResult()
            for start in range(0, len(ops), BULK_STATEMENTS):
                part = await self._where.query(  # a bulk write: the longer limit
                    None, functools.partial(self._bulk_update, ops[start:start + BULK_STATEMENTS]))
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

    async def update_many(self, filter: Filter, update: Mapping[str, Any]) -> BulkResult:
        with self._where.guard():
            r = await self._where.query(None, lambda: self._c.update_many(dict(filter), dict(update)))
            return BulkResult(matched=r.matched_count, modified=r.modified_count)

    async def delete_many(self, filter: Filter) -> int:
        with self._where.guard():
            r = await self._where.query(filter, lambda: self._c.delete_many(dict(filter)))
            return r.deleted_count


class MongoStore:
    """``timeout_s`` bounds every wait on the server (finding it, connecting, each operation);
    ``timeout_ms`` is the older spelling of the same, kept for existing callers.

    With a ``telemetry``, each command sent inside a trace makes a client span
    (:func:`store_command_listener`); without one, none."""

    def __init__(self, url: str, database: str, *, timeout_ms: int = 5000, timeout_s: float | None = None,
                 query_timeout_s: float | None = 60.0, telemetry: Telemetry | None = None) -> None:
        self.timeout_s = timeout_s if timeout_s is not None else timeout_ms / 1000
        limit_ms = max(1, round(self.timeout_s * 1000))
        self._where = _Where(url, self.timeout_s, query_timeout_s, probe=lambda: self._client.admin.command("ping"))
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, uuidRepresentation="standard",
            serverSelectionTimeoutMS=limit_ms,  # no server to talk to (refused, unknown host)
            connectTimeoutMS=limit_ms,  # a connection, and its handshake, that does not complete
            timeoutMS=limit_ms,  # client-side operation timeout: a server that accepts and then hangs
            event_listeners=[store_command_listener(telemetry)] if telemetry is not None else [],
        )
        self._db = self._client[database]
        self._server = _Server(self._client)
        self._collections: dict[str, MongoCollection] = {}

    @property
    def url(self) -> str:
        """The server's address without credentials, as messages name it."""
        return self._where.url

    def collection(self, name: str) -> MongoCollection:
        if name not in self._collections:
            self._collections[name] = MongoCollection(self._db[name], self._where, self._server)
        return self._collections[name]

    async def ping(self) -> None:
        """Raise StoreUnavailable, saying why, if the server does not answer within ``timeout_s``
        (held to exactly: readiness probes rely on it)."""
        with self._where.guard():
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._client.admin.command("ping")
            except TimeoutError:
                raise self._where.unavailable(self._last_server_error() or "timed out") from None

    def _last_server_error(self) -> str | None:
        """Why the client's monitor last failed to reach the server (refused, timed out), if it did."""
        for server in self._client.topology_description.server_descriptions().values():
            if server.error is not None:
                return _reason(server.error)
        return None

    async def drop(self) -> None:
        """Drop the whole database (tests and benchmarks only)."""
        with self._where.guard():
            await self._client.drop_database(self._db.name)

    async def close(self) -> None:
        await self._client.close()
