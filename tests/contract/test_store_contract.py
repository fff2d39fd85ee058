"""One contract, every store adapter: the embedded store must behave as MongoDB/FerretDB does
for everything the services ask of a store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.runtime.store import DuplicateKeyError, Store, UpdateOp

pytestmark = pytest.mark.asyncio




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


async def test_update_many_pulls_from_each_listed_document_what_it_holds(store: Store) -> None:
    c = store.collection("devices")
    entry = {"id": "e1", "event": "{}"}
    await c.insert_many([device("U1", outbox=[{"id": "e1", "event": "{}"}, {"id": "e2", "event": "{}"}]),
                         device("U2", outbox=[{"id": "e3", "event": "{}"}]), device("U3", outbox=[entry])])
    result = await c.update_many({"_id": {"$in": ["U1", "U2", "U4"]}},
                                 {"$pullAll": {"outbox": [entry, {"id": "e3", "event": "{}"}]}})
    assert (result.matched, result.modified) == (2, 2)
    assert [e["id"] for e in (await c.find_one({"_id": "U1"}))["outbox"]] == ["e2"]  # type: ignore[index]
    assert (await c.find_one({"_id": "U2"}))["outbox"] == []  # type: ignore[index]
    assert (await c.find_one({"_id": "U3"}))["outbox"] == [entry]  # type: ignore[index]  # not listed


async def test_pull_all_over_many_documents_compares_values_as_mongodb_does(store: Store) -> None:
    """One ``$pullAll`` applied to several documents (the embedded store indexes the listed
    values once): numbers of either kind are one type, ``True`` is not ``1``, a document's
    field order counts, documents without a leading string field (and arrays inside them) are
    compared too. (No arrays directly inside arrays: FerretDB 1.x refuses them.)"""
    c = store.collection("devices")
    mixed = [1, 2.5, True, "x", {"a": [1, 2]}, {"n": 1, "id": "e1"}, {"id": "e1", "n": 1}, {"k": 3}, None]
    await c.insert_many([device("P1", values=mixed), device("P2", values=list(reversed(mixed)))])
    result = await c.update_many({"_id": {"$in": ["P1", "P2"]}}, {"$pullAll": {"values": [
        1.0, 2.5, "x", {"a": [1, 2]}, {"id": "e1", "n": 1}, {"k": 3.0}, "absent", {"a": [2, 1]}]}})
    assert (result.matched, result.modified) == (2, 2)
    left = [True, {"n": 1, "id": "e1"}, None]
    assert (await c.find_one({"_id": "P1"}))["values"] == left  # type: ignore[index]
    assert (await c.find_one({"_id": "P2"}))["values"] == list(reversed(left))  # type: ignore[index]


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


# --- where the embedded store was seen to differ from the real server -------------------------


async def _is_ferretdb(store: Store) -> bool:
    client = getattr(store, "_client", None)  # MongoStore only
    return client is not None and "ferretdbVersion" in await client.admin.command("buildInfo")


def ids(docs: list[dict[str, object]]) -> list[str]:
    return [str(d["_id"]) for d in docs]


async def test_bool_and_number_are_different_types(store: Store) -> None:
    c = store.collection("flags")
    await c.insert_many([{"_id": "true", "flag": True}, {"_id": "one", "flag": 1}, {"_id": "onef", "flag": 1.0},
                         {"_id": "false", "flag": False}, {"_id": "zero", "flag": 0}])
    assert sorted(ids(await c.find({"flag": True}))) == ["true"]
    assert sorted(ids(await c.find({"flag": 1}))) == ["one", "onef"]
    assert sorted(ids(await c.find({"flag": False}))) == ["false"]
    assert sorted(ids(await c.find({"flag": 0}))) == ["zero"]
    assert sorted(ids(await c.find({"flag": {"$in": [True]}}))) == ["true"]
    assert sorted(ids(await c.find({"flag": {"$ne": True}}))) == ["false", "one", "onef", "zero"]
    assert sorted(ids(await c.find({"flag": {"$gt": 0}}))) == ["one", "onef"]
    assert sorted(ids(await c.find({"flag": {"$gt": False}}))) == ["true"]
    # setting true where 1 is stored is a change, and it is stored
    result = await c.update_one({"_id": "one"}, {"$set": {"flag": True}})
    assert (result.matched, result.modified) == (1, 1)
    assert (await c.find_one({"_id": "one"}))["flag"] is True  # type: ignore[index]


async def test_subdocuments_are_equal_only_with_the_same_field_order(store: Store) -> None:
    c = store.collection("devices")
    e1, e2 = {"id": "e1", "n": 1}, {"id": "e2", "n": 2}
    await c.insert_one(device("O1", outbox=[e1, e2]))
    assert await c.count({"os": {"family": "windows", "version": "XP"}}) == 1
    assert await c.count({"os": {"version": "XP", "family": "windows"}}) == 0
    assert await c.count({"os": {"$in": [{"version": "XP", "family": "windows"}]}}) == 0
    assert await c.count({"os": {"$ne": {"version": "XP", "family": "windows"}}}) == 1
    assert await c.count({"outbox": {"n": 1, "id": "e1"}}) == 0
    # $pullAll of a reordered document removes nothing, and says so
    result = await c.update_one({"_id": "O1"}, {"$pullAll": {"outbox": [{"n": 1, "id": "e1"}]}})
    assert (result.matched, result.modified) == (1, 0)
    assert (await c.find_one({"_id": "O1"}))["outbox"] == [e1, e2]  # type: ignore[index]
    result = await c.bulk_update([UpdateOp({"_id": "O1"}, {"$pullAll": {"outbox": [e1]}})])
    assert (result.matched, result.modified) == (1, 1)
    assert (await c.find_one({"_id": "O1"}))["outbox"] == [e2]  # type: ignore[index]
    # setting the same fields in another order is a change, and it is stored
    result = await c.update_one({"_id": "O1"}, {"$set": {"os": {"version": "XP", "family": "windows"}}})
    assert (result.matched, result.modified) == (1, 1)
    stored = await c.find_one({"_id": "O1"})
    assert stored is not None and list(stored["os"]) == ["version", "family"]


async def test_a_document_filter_matches_an_equal_document_inside_an_array(
    store: Store, request: pytest.FixtureRequest
) -> None:
    if await _is_ferretdb(store):
        # FerretDB 1.24 compares a document operand only with the whole field, never with the
        # documents in an array field; MongoDB matches them (field order included).
        request.applymarker(pytest.mark.xfail(strict=True, reason="FerretDB 1.24: no document match in arrays"))
    c = store.collection("devices")
    e1 = {"id": "e1", "n": 1}
    await c.insert_one(device("Q1", outbox=[e1, {"id": "e2", "n": 2}]))
    assert await c.count({"outbox": e1}) == 1
    assert await c.count({"outbox": {"$in": [e1]}}) == 1
    assert await c.count({"outbox": {"n": 1, "id": "e1"}}) == 0


async def test_an_empty_projection_returns_the_whole_document(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("P1"))
    assert await c.find_one({"_id": "P1"}, projection=[]) == device("P1")
    assert await c.find({"_id": "P1"}, projection=[]) == [device("P1")]


async def test_a_projection_keeps_the_document_field_order(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one({"z": 0, "_id": "P2", "y": {"z": 2, "a": 1}, "o": [{"id": 1, "n": 2}, 5], "x": 1})
    found = await c.find_one({"_id": "P2"}, projection=["x", "y.a", "z", "y.z"])
    assert found is not None
    assert list(found.items()) == [("_id", "P2"), ("z", 0), ("y", {"z": 2, "a": 1}), ("x", 1)]
    assert list(found["y"]) == ["z", "a"]
    # (FerretDB puts a field projected through an array in projection order; MongoDB does not)
    assert await c.find_one({"_id": "P2"}, projection=["o.id"]) == {"_id": "P2", "o": [{"id": 1}]}
    assert await c.find_one({"_id": "P2"}, projection=["y.nope", "nope"]) == {"_id": "P2", "y": {}}


async def test_sort_across_types_follows_mongodb_type_order(store: Store) -> None:
    c = store.collection("mixed")
    when = datetime(2020, 1, 1, tzinfo=UTC)
    values: list[tuple[str, object]] = [
        ("null", None), ("int", 5), ("float", 2.5), ("neg", -1), ("str", "abc"), ("Str", "B"), ("doc", {"a": 1}),
        ("list", [3]), ("empty", []), ("true", True), ("false", False), ("date", when),
    ]
    await c.insert_many([{"_id": k, "v": v} for k, v in values] + [{"_id": "missing"}])
    ascending = ["empty", "missing", "null", "neg", "float", "list", "int", "Str", "str", "doc", "false", "true",
                 "date"]
    assert ids(await c.find({}, sort=[("v", 1), ("_id", 1)])) == ascending
    descending = ["date", "true", "false", "doc", "str", "Str", "int", "list", "float", "neg", "missing", "null",
                  "empty"]
    assert ids(await c.find({}, sort=[("v", -1), ("_id", 1)])) == descending


async def test_sort_and_compare_documents_and_arrays(store: Store) -> None:
    c = store.collection("mixed")
    values: list[tuple[str, object]] = [
        ("d1", {"a": 1, "b": 2}), ("d2", {"b": 2, "a": 1}), ("d3", {"a": 1}), ("d4", {"a": "x"}), ("d5", {}),
        ("d6", {"a": 2}), ("l1", [1, 5]), ("l2", [2, 3]), ("l3", ["x"]), ("l4", [None]), ("l5", [True, 0]),
        ("t1", datetime(2021, 1, 1, tzinfo=UTC)), ("t0", datetime(2020, 1, 1, tzinfo=UTC)), ("f", 2.9),
    ]
    await c.insert_many([{"_id": k, "v": v} for k, v in values])
    # an array sorts by its smallest element ascending, by its largest descending
    assert ids(await c.find({}, sort=[("v", 1)])) == [
        "l4", "l5", "l1", "l2", "f", "l3", "d5", "d3", "d1", "d6", "d2", "d4", "t0", "t1"]
    assert ids(await c.find({}, sort=[("v", -1), ("_id", 1)])) == [
        "t1", "t0", "l5", "d4", "d2", "d6", "d1", "d3", "d5", "l3", "l1", "l2", "f", "l4"]
    assert sorted(ids(await c.find({"v": {"$gt": {"a": 1}}}))) == ["d1", "d2", "d4", "d6"]
    assert sorted(ids(await c.find({"v": {"$lt": [2]}}))) == ["l1", "l4"]
    assert sorted(ids(await c.find({"v": {"$gt": 2}}))) == ["f", "l1", "l2"]
    assert sorted(ids(await c.find({"v": {"$gte": datetime(2020, 6, 1, tzinfo=UTC)}}))) == ["t1"]


async def test_exists_in_and_ne_with_arrays_and_null(store: Store) -> None:
    c = store.collection("tags")
    await c.insert_many([{"_id": "x", "tags": ["a", "b"], "n": None}, {"_id": "y", "tags": []}, {"_id": "z"}])
    assert sorted(ids(await c.find({"n": None}))) == ["x", "y", "z"]
    assert sorted(ids(await c.find({"n": {"$ne": None}}))) == []
    assert sorted(ids(await c.find({"n": {"$exists": True}}))) == ["x"]
    assert sorted(ids(await c.find({"tags": {"$exists": True}}))) == ["x", "y"]
    assert sorted(ids(await c.find({"tags": {"$in": ["a"]}}))) == ["x"]
    assert sorted(ids(await c.find({"tags": {"$in": [["a", "b"]]}}))) == ["x"]
    assert sorted(ids(await c.find({"tags": {"$in": [None]}}))) == ["z"]
    assert sorted(ids(await c.find({"tags": ["b", "a"]}))) == []
    assert sorted(ids(await c.find({"tags": {"$ne": "a"}}))) == ["y", "z"]
    assert sorted(ids(await c.find({"tags": {"$ne": ["a", "b"]}}))) == ["y", "z"]
    assert sorted(ids(await c.find({"tags": {"$nin": ["a"]}}))) == ["y", "z"]
    assert sorted(ids(await c.find({"tags.0": "a"}))) == ["x"]


async def test_update_counts_when_nothing_matches_or_nothing_changes(store: Store) -> None:
    c = store.collection("devices")
    await c.insert_one(device("U1", outbox=[{"id": "e1"}]))
    counts = lambda r: (r.matched, r.modified, r.upserted)  # noqa: E731
    assert counts(await c.update_one({"_id": "nope"}, {"$set": {"site": "x"}})) == (0, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$set": {"version": 1}})) == (1, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$unset": {"nothere": ""}})) == (1, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$setOnInsert": {"site": "x"}})) == (1, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$pullAll": {"outbox": [{"id": "zz"}]}})) == (1, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$pullAll": {"nothere": [{"id": "e1"}]}})) == (1, 0, 0)
    assert counts(await c.update_one({"_id": "U1"}, {"$set": {"version": 2}})) == (1, 1, 0)
    assert counts(await c.bulk_update([
        UpdateOp({"_id": "U1"}, {"$pullAll": {"outbox": [{"id": "zz"}]}}),
        UpdateOp({"_id": "nope"}, {"$set": {"version": 3}}),
        UpdateOp({"_id": "U1"}, {"$set": {"version": 2}}),
    ])) == (2, 0, 0)
    assert await c.find_one_and_update({"_id": "nope"}, {"$set": {"site": "x"}}) is None
    assert await c.count({}) == 1
    upserted = await c.update_one({"_id": "U2", "kind": "laptop", "version": {"$ne": 3}},
                                  {"$setOnInsert": {"site": "new"}, "$inc": {"version": 1}}, upsert=True)
    assert counts(upserted) == (0, 0, 1)
    assert await c.find_one({"_id": "U2"}) == {"_id": "U2", "kind": "laptop", "site": "new", "version": 1}
    assert counts(await c.update_one({"kind": "server"}, {"$set": {"site": "y"}}, upsert=True)) == (0, 0, 1)
    server = await c.find_one({"kind": "server"})
    assert server is not None and list(server) == ["_id", "kind", "site"]


async def test_push_each_with_slice_keeps_the_last_n(store: Store, request: pytest.FixtureRequest) -> None:
    if await _is_ferretdb(store):
        # FerretDB 1.24 silently ignores $slice (and $sort, $position) in $push; MongoDB applies it.
        request.applymarker(pytest.mark.xfail(strict=True, reason="FerretDB 1.24 ignores $push $slice"))
    c = store.collection("applied")
    await c.insert_one({"_id": "S1", "applied": ["e1", "e2"]})
    result = await c.update_one({"_id": "S1"}, {"$push": {"applied": {"$each": ["e3", "e4"], "$slice": -3}}})
    assert (result.matched, result.modified) == (1, 1)
    assert (await c.find_one({"_id": "S1"}))["applied"] == ["e2", "e3", "e4"]  # type: ignore[index]
    after = await c.find_one_and_update({"_id": "S2"}, {"$push": {"applied": {"$each": ["a", "b", "c"], "$slice": -2}}},
                                        upsert=True)
    assert after == {"_id": "S2", "applied": ["b", "c"]}
    await c.update_one({"_id": "S2"}, {"$push": {"applied": {"$each": ["d"], "$slice": 1}}})
    assert (await c.find_one({"_id": "S2"}))["applied"] == ["b"]  # type: ignore[index]
    await c.update_one({"_id": "S2"}, {"$push": {"applied": {"$each": ["e"], "$slice": 0}}})
    assert (await c.find_one({"_id": "S2"}))["applied"] == []  # type: ignore[index]


async def test_conditional_upsert_of_an_existing_id_raises_duplicate_key(store: Store) -> None:
    """The idempotency pattern: record event e1 on document x unless x already has it."""
    c = store.collection("applied")

    def record(event: str) -> dict[str, object]:
        return {"$push": {"applied": {"$each": [event], "$slice": -100}}}

    first = await c.find_one_and_update({"_id": "x", "applied": {"$ne": "e1"}}, record("e1"), upsert=True)
    assert first == {"_id": "x", "applied": ["e1"]}
    with pytest.raises(DuplicateKeyError):
        await c.find_one_and_update({"_id": "x", "applied": {"$ne": "e1"}}, record("e1"), upsert=True)
    with pytest.raises(DuplicateKeyError):
        await c.update_one({"_id": "x", "applied": {"$ne": "e1"}}, record("e1"), upsert=True)
    assert await c.find_one({"_id": "x"}) == {"_id": "x", "applied": ["e1"]}
    second = await c.find_one_and_update({"_id": "x", "applied": {"$ne": "e2"}}, record("e2"), upsert=True)
    assert second == {"_id": "x", "applied": ["e1", "e2"]}


async def test_concurrent_updates_of_one_document_are_atomic(store: Store) -> None:
    """MongoDB applies each update atomically per document. Stock FerretDB 1.24 (SQLite) read
    each document, changed it in Go and wrote it back by _id unchecked, so of the relay's clear
    and a versioned write racing on one document, both were acknowledged and one was lost (6-23
    of 1,500 in benchmarks/ferretdb_lost_update.py). deploy/local/ferretdb.sh patches 5-7 lock
    the collection from each statement's read to its write-back; this fails without them."""
    c = store.collection("race")
    tags = [f"R{n}" for n in range(1_500)]
    await c.insert_many([{"_id": t, "version": 1, "seen": 0, "outbox": [{"id": f"{t}-e1"}]} for t in tags])

    async def clear() -> None:  # the outbox relay: one document per clear statement
        for t in tags:
            await c.update_many({"_id": {"$in": [t]}}, {"$pullAll": {"outbox": [{"id": f"{t}-e1"}]}})

    async def write() -> None:  # a versioned write: must be acknowledged, and then kept
        for t in tags:
            result = await c.update_one({"_id": t, "version": 1},
                                        {"$set": {"version": 2}, "$push": {"outbox": {"id": f"{t}-e2"}}})
            assert result.modified == 1, t

    async def count() -> None:  # a find-and-modify on the same documents
        for t in tags:
            assert await c.find_one_and_update({"_id": t}, {"$inc": {"seen": 1}}) is not None, t

    await asyncio.gather(clear(), write(), count())
    stored = {d["_id"]: d for d in await c.find({})}
    bad = [stored[t] for t in tags if (stored[t]["version"], stored[t]["seen"], stored[t]["outbox"])
           != (2, 1, [{"id": f"{t}-e2"}])]
    assert bad == [], f"{len(bad)} of {len(tags)} documents lost a concurrent update; first: {bad[:3]}"
