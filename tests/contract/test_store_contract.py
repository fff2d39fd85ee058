"""One contract, every store adapter: the embedded store must behave as MongoDB/FerretDB does
for everything the services ask of a store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.runtime.store import DuplicateKeyError, Store, UpdateOp
from services.runtime.store.memory import MemoryStore
from tests.conftest import fresh_mongo_store

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    async with fresh_mongo_store(request.getfixturevalue("mongo_url")) as mongo:
        yield mongo


def device(tag: str, **extra: object) -> dict[str, object]:
    doc: dict[str, object] = {"_id": tag, "kind": "desktop", "os": {"family": "windows", "version": "XP"},
                              "applications": ["CRIS", "Office"], "version": 1}
    doc.update(extra)
    return doc


async def test_insert_and_find_by_id_and_nested_field(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("A1"))
    await c.insert_one(device("A2", os={"family": "windows", "version": "7"}))
    assert (await c.find_one({"_id": "A1"}))["os"]["version"] == "XP"  # type: ignore[index]
    assert [d["_id"] for d in await c.find({"os.version": "7"})] == ["A2"]
    assert await c.find_one({"_id": "nope"}) is None


async def test_duplicate_id_raises_and_unique_index_is_enforced(store: Store) -> None:
    c = store.collection("ledger")
    await c.create_index([("serial", 1)], unique=True)
    await c.insert_one({"_id": "x", "serial": "S1"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "x", "serial": "S2"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "y", "serial": "S1"})
    assert await c.count({}) == 1


async def test_insert_many_stores_the_rest_and_reports_duplicates_by_index(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("B2"))
    result = await c.insert_many([device("B1"), device("B2"), device("B3")])
    assert result.inserted == 2
    assert result.duplicate_indexes == [1]
    assert sorted(d["_id"] for d in await c.find({})) == ["B1", "B2", "B3"]


async def test_array_equality_in_range_and_or(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_many([device(f"C{i}", ram=i * 512, applications=["CRIS"] if i % 2 else []) for i in range(1, 6)])
    assert {d["_id"] for d in await c.find({"applications": "CRIS"})} == {"C1", "C3", "C5"}
    assert {d["_id"] for d in await c.find({"_id": {"$in": ["C1", "C4", "zz"]}})} == {"C1", "C4"}
    assert {d["_id"] for d in await c.find({"ram": {"$gte": 1024, "$lt": 2048}})} == {"C2", "C3"}
    assert {d["_id"] for d in await c.find({"$or": [{"_id": "C1"}, {"ram": 2560}]})} == {"C1", "C5"}
    assert {d["_id"] for d in await c.find({"gone": {"$exists": False}, "_id": {"$gt": "C3"}})} == {"C4", "C5"}
    assert await c.count({"applications": []}) == 2


async def test_sort_limit_projection(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_many([device(t, site=s) for t, s in (("D3", "b"), ("D1", "b"), ("D2", "a"))])
    found = await c.find({}, sort=[("site", 1), ("_id", -1)], limit=2, projection=["site"])
    assert found == [{"_id": "D2", "site": "a"}, {"_id": "D3", "site": "b"}]


async def test_find_one_and_update_is_conditional_and_returns_the_new_document(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("E1"))
    after = await c.find_one_and_update({"_id": "E1", "version": 1},
                                        {"$set": {"os.version": "8.1"}, "$inc": {"version": 1}})
    assert after is not None and after["version"] == 2 and after["os"] == {"family": "windows", "version": "8.1"}
    stale = await c.find_one_and_update({"_id": "E1", "version": 1}, {"$set": {"os.version": "10"}})
    assert stale is None
    assert (await c.find_one({"_id": "E1"}))["os"]["version"] == "8.1"  # type: ignore[index]


async def test_push_each_and_pull_all_of_exact_subdocuments(store: Store) -> None:
    c = store.collection("devices")
    e1, e2, e3 = ({"id": f"e{n}", "event": {"n": n, "tags": ["a"]}} for n in (1, 2, 3))
    await c.insert_many([device("F1", outbox=[e1]), device("F2", outbox=[])])
    await c.update_one({"_id": "F1"}, {"$push": {"outbox": {"$each": [e2, e3]}}})
    await c.bulk_update([UpdateOp({"_id": "F1"}, {"$pullAll": {"outbox": [e1, e3]}})])
    assert (await c.find_one({"_id": "F1"}))["outbox"] == [e2]  # type: ignore[index]
    assert [d["_id"] for d in await c.find({"outbox.0": {"$exists": True}})] == ["F1"]
    await c.update_one({"_id": "F1"}, {"$pullAll": {"outbox": [e2]}})
    assert await c.find({"outbox.0": {"$exists": True}}) == []


async def test_bulk_update_with_version_guards_and_upserts(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_many([device("G1"), device("G2", version=5)])
    result = await c.bulk_update([
        UpdateOp({"_id": "G1", "version": 1}, {"$set": {"site": "x"}, "$inc": {"version": 1}}),
        UpdateOp({"_id": "G2", "version": 1}, {"$set": {"site": "x"}}),
        UpdateOp({"_id": "G3"}, {"$setOnInsert": {"site": "new"}}, upsert=True),
    ])
    assert (result.matched, result.modified, result.upserted) == (1, 1, 1)
    assert (await c.find_one({"_id": "G2"}))["version"] == 5  # type: ignore[index]
    assert (await c.find_one({"_id": "G3"}))["site"] == "new"  # type: ignore[index]


async def test_unset_and_delete(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_many([device("H1", note="x"), device("H2")])
    await c.update_one({"_id": "H1"}, {"$unset": {"note": ""}})
    assert "note" not in (await c.find_one({"_id": "H1"}))  # type: ignore[operator]
    assert await c.delete_many({"_id": "H2"}) == 1
    assert await c.count({}) == 1


async def test_a_returned_document_is_a_copy(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("I1"))
    found = await c.find_one({"_id": "I1"})
    assert found is not None
    found["os"]["version"] = "tampered"
    assert (await c.find_one({"_id": "I1"}))["os"]["version"] == "XP"  # type: ignore[index]
