"""FerretDB pushes the top-level `_id` of any filter down to SQL (deploy/local/ferretdb.sh,
build-time patch 3): `{_id: x, version: v}` (every versioned write) is an index lookup,
not a full scan, and the answers stay exactly MongoDB's.

Stock FerretDB 1.24 (SQLite) pushes down only a filter that is exactly `{_id: value}`; it
re-checks every fetched document against the whole filter, so fetching only the documents
whose `_id` matches is safe. Speed is checked relative to a deliberate full scan of the same
collection in the same run (no absolute time limit), and passes on MongoDB as well.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

from services.runtime.store.mongo import MongoCollection, MongoStore
from tests.conftest import fresh_mongo_store

pytestmark = pytest.mark.integration

DOCS = 20_000
MIN_SPEEDUP = 20


def _tag(i: int) -> str:
    return f"dev-{i:06d}"


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[MongoStore]:
    async with fresh_mongo_store(mongo_url) as mongo:
        yield mongo


async def _median_ms(op: Callable[[int], Awaitable[object]], args: list[int]) -> float:
    times = []
    for a in args:
        started = time.perf_counter()
        await op(a)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def test_versioned_lookup_and_write_by_id_are_index_lookups(store: MongoStore) -> None:
    c = store.collection("devices")
    for start in range(0, DOCS, 2000):
        await c.insert_many([{"_id": _tag(i), "version": 1, "n": i, "state": "in_service", "pad": "x" * 200}
                             for i in range(start, min(start + 2000, DOCS))])
    assert await c.count({}) == DOCS

    # The reference: a filter nothing pushes down, matching nothing, so it reads everything.
    async def full_scan(i: int) -> None:
        assert await c.find_one({"n": -1 - i, "version": 1}) is None

    scan_ms = await _median_ms(full_scan, list(range(3)))

    # Documents at the end of the table: the worst case for a scan (rows come in insert order).
    last = list(range(DOCS - 1, DOCS - 21, -1))

    async def versioned_read(i: int) -> None:
        doc = await c.find_one({"_id": _tag(i), "version": 1})
        assert doc is not None and doc["n"] == i

    async def versioned_write(i: int) -> None:
        doc = await c.find_one_and_update({"_id": _tag(i), "version": 1},
                                          {"$set": {"state": "assessed"}, "$inc": {"version": 1}})
        assert doc is not None and doc["_id"] == _tag(i) and doc["version"] == 2 and doc["state"] == "assessed"

    async def versioned_update(i: int) -> None:  # the `update` command, as bulk_update sends it
        r = await c.update_one({"_id": _tag(i), "version": 2}, {"$set": {"state": "planned"}, "$inc": {"version": 1}})
        assert (r.matched, r.modified) == (1, 1)

    async def stale_write(i: int) -> None:  # the version moved on: no match, nothing written
        assert await c.find_one_and_update({"_id": _tag(i), "version": 1}, {"$set": {"state": "lost"}}) is None

    async def in_lookup(i: int) -> None:
        docs = await c.find({"_id": {"$in": [_tag(i), _tag(i - 1), "missing"]}, "state": "planned"})
        assert sorted(d["_id"] for d in docs) == sorted([_tag(i), _tag(i - 1)])

    timings: dict[str, float] = {}
    for name, op, args in [("find_one {_id, version}", versioned_read, last),
                           ("find_one_and_update {_id, version}", versioned_write, last),
                           ("update_one {_id, version}", versioned_update, last),
                           ("stale find_one_and_update", stale_write, last),
                           ("find {_id: {$in}, state}", in_lookup, last[::2])]:
        timings[name] = ms = await _median_ms(op, args)
        assert ms * MIN_SPEEDUP <= scan_ms, (
            f"{name} takes {ms:.2f} ms, not {MIN_SPEEDUP}x faster than a full scan ({scan_ms:.1f} ms): "
            f"is the _id pushdown patch (deploy/local/ferretdb.sh, patch 3) in this FerretDB build?")
    print(f"\n{DOCS} docs: full scan {scan_ms:.1f} ms; " + ", ".join(f"{k} {v:.2f} ms" for k, v in timings.items()))
    assert await c.count({"version": 3, "state": "planned"}) == len(last)
    assert await c.count({"version": 1}) == DOCS - len(last)


async def test_answers_are_unchanged_by_the_pushdown(store: MongoStore, mongo_url: str) -> None:
    c: MongoCollection = store.collection("mixed")
    oid = ObjectId()
    await c.insert_many([
        {"_id": "a", "version": 1, "os": {"version": "XP"}}, {"_id": "b", "version": 2, "os": {"version": "7"}},
        {"_id": "c", "version": 1, "os": {"version": "XP"}},
        # Not also {"_id": str(oid)}: FerretDB's unique _id index (on the JSON text) rejects it
        # as a duplicate of the ObjectId, with or without the patches.
        {"_id": oid, "version": 1},
        {"_id": 7, "version": 1}, {"_id": "7", "version": 1},
        {"_id": {"k": 1, "j": 2}, "version": 1}, {"_id": {"j": 2, "k": 1}, "version": 1},  # key order matters
    ])

    def key(v: Any) -> Any:  # dicts compare equal in any key order; BSON documents do not
        return tuple(v.items()) if isinstance(v, dict) else v

    async def ids(flt: dict[str, Any]) -> list[Any]:
        return [key(d["_id"]) for d in await c.find(flt)]

    async def id_set(flt: dict[str, Any]) -> set[Any]:
        return set(await ids(flt))

    kj, jk = key({"k": 1, "j": 2}), key({"j": 2, "k": 1})
    # Equality with other keys: pushed down, then the other keys still apply.
    assert await ids({"_id": "a", "version": 1}) == ["a"]
    assert await ids({"_id": "a", "version": 2}) == []
    assert await ids({"_id": "a", "os.version": "XP", "version": {"$lt": 5}}) == ["a"]
    assert await ids({"_id": "b", "$or": [{"version": 1}, {"os.version": "7"}]}) == ["b"]
    assert await ids({"_id": "missing", "version": 1}) == []
    assert await c.count({"_id": "c", "version": 1}) == 1
    # An ObjectId and the string of its hex have the same SQL text: the type still decides.
    assert await ids({"_id": oid, "version": 1}) == [oid]
    assert await ids({"_id": str(oid), "version": 1}) == []
    # Numbers are not pushed down (7 == 7.0 == Int64(7)), and never match a string.
    assert await ids({"_id": 7.0, "version": 1}) == [7]
    assert await ids({"_id": "7", "version": 1}) == ["7"]
    # Operators are not equality: {_id: {$gt: ...}} keeps its meaning (strings only).
    assert await ids({"_id": {"$gt": "b"}, "version": 1}) == ["c"]
    assert await ids({"_id": {"$gt": oid}, "version": 1}) == []
    assert await ids({"_id": {"$gte": "a", "$lt": "c"}, "version": 2}) == ["b"]
    assert await ids({"_id": {"$ne": "a"}, "version": 2}) == ["b"]
    # Sub-document and array _id values are exact-equality matches on the whole value.
    assert await ids({"_id": {"k": 1, "j": 2}, "version": 1}) == [kj]
    assert await ids({"_id": {"j": 2, "k": 1}, "version": 1}) == [jk]
    assert await ids({"_id": {"k": 1}, "version": 1}) == []
    assert await ids({"_id": ["a"], "version": 1}) == []
    # $in: pushed down when all strings/ObjectIds; mixed or empty lists still answer right.
    assert await id_set({"_id": {"$in": ["a", "c", oid, "zz", str(oid)]}, "version": 1}) == {"a", "c", oid}
    assert await id_set({"_id": {"$in": ["a", 7.0, {"k": 1, "j": 2}]}, "version": 1}) == {"a", 7, kj}
    assert await ids({"_id": {"$in": []}, "version": 1}) == []
    assert await ids({"_id": {"$in": ["a", "b"]}, "version": 2}) == ["b"]
    assert await ids({"_id": {"$nin": ["a", "b", "c", oid, 7, "7"]}}) == [kj, jk]

    # Writes: the version check still guards them.
    assert await c.find_one_and_update({"_id": "a", "version": 2}, {"$inc": {"version": 1}}) is None
    after = await c.find_one_and_update({"_id": "a", "version": 1}, {"$inc": {"version": 1}})
    assert after is not None and after["version"] == 2
    assert (await c.update_one({"_id": "c", "version": 9}, {"$set": {"x": 1}})).matched == 0
    # (a multi-document update, through the driver: the store port has none)
    assert (await c._c.update_many({"_id": {"$in": ["a", "b", "c"]}, "version": 2},
                                   {"$set": {"x": 1}})).modified_count == 2
    assert sorted(await ids({"x": 1})) == ["a", "b"]
    assert await c.delete_many({"_id": "c", "version": 2}) == 0
    assert await c.delete_many({"_id": "c", "version": 1}) == 1
    # An upsert through a filter with _id and other keys inserts both.
    up = await c.find_one_and_update({"_id": "new", "version": 1}, {"$set": {"x": 2}}, upsert=True)
    assert up == {"_id": "new", "version": 1, "x": 2}

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        raw = client[store._db.name]["mixed"]  # noqa: SLF001 - same database, raw driver
        # A filter with a duplicated _id key (only raw BSON can say it) is not pushed down.
        element = b"\x02_id\x00" + (2).to_bytes(4, "little") + b"b\x00"
        dup = RawBSONDocument((len(element) * 2 + 5).to_bytes(4, "little") + element * 2 + b"\x00")
        assert [d["_id"] async for d in raw.find(dup)] == ["b"]
        # Aggregation's leading $match is pushed down too.
        cursor = await raw.aggregate([{"$match": {"_id": "b", "version": 2}}, {"$project": {"version": 1}}])
        assert await cursor.to_list() == [{"_id": "b", "version": 2}]
        build = await client.admin.command("buildInfo")
        if "ferretdbVersion" in build:  # FerretDB: explain shows the SQL plan using the _id index
            for flt in ({"_id": "b", "version": 2}, {"_id": {"$in": ["a", "b"]}, "version": 2}):
                plan = await client[store._db.name].command("explain", {"find": "mixed", "filter": flt})  # noqa: SLF001
                assert plan.get("filterPushdown") is True, plan
                assert "USING INDEX" in str(plan["queryPlanner"]), plan
            plan = await client[store._db.name].command(  # noqa: SLF001
                "explain", {"find": "mixed", "filter": {"_id": {"$gt": "a"}, "version": 2}})
            assert plan.get("filterPushdown") is False, plan
    finally:
        await client.close()
