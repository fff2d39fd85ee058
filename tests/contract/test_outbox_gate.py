"""The outbox gate on both stores: a relay's clears and versioned writes of the same documents
at the same moment lose neither (on FerretDB 1.24 they did, without the gate:
benchmarks/ferretdb_lost_update.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.outbox_gate import Gate, gate
from services.runtime.store import Store

pytestmark = pytest.mark.asyncio
DOCUMENTS = 200


async def test_clears_and_versioned_writes_through_the_gate_lose_nothing(store: Store) -> None:
    documents = store.collection("gated")
    ids = [f"D{n}" for n in range(DOCUMENTS)]
    await documents.insert_many([{"_id": i, "version": 1, "outbox": [{"id": f"{i}-e1"}]} for i in ids])

    async def clear() -> None:
        for i in ids:
            async with gate(store, "gated").clearing():
                await documents.update_many({"_id": {"$in": [i]}}, {"$pullAll": {"outbox": [{"id": f"{i}-e1"}]}})

    async def write() -> None:
        for i in ids:
            async with gate(store, "gated").updating():
                written = await documents.update_one({"_id": i, "version": 1}, {
                    "$set": {"version": 2}, "$push": {"outbox": {"id": f"{i}-e2"}}})
            assert written.matched == 1

    await asyncio.gather(clear(), write())
    stored = {doc["_id"]: doc for doc in await documents.find({})}
    bad = [stored[i] for i in ids if stored[i]["version"] != 2 or stored[i]["outbox"] != [{"id": f"{i}-e2"}]]
    assert bad == []


async def test_a_clear_waits_for_updates_in_flight_and_updates_wait_for_a_clear() -> None:
    g, order = Gate(), []

    async def update(name: str, hold: float) -> None:
        async with g.updating():
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    async def clear() -> None:
        async with g.clearing():
            order.append("clear in")
            await asyncio.sleep(0.05)
            order.append("clear out")

    first = asyncio.create_task(update("u1", 0.05))
    await asyncio.sleep(0.01)
    clearing = asyncio.create_task(clear())
    await asyncio.sleep(0.01)
    await asyncio.gather(first, clearing)
    later = asyncio.create_task(update("u2", 0.0))
    async with g.clearing():
        await asyncio.sleep(0.02)
        assert "u2 in" not in order or order.index("u2 in") > order.index("clear out")
    await later
    assert order[:4] == ["u1 in", "u1 out", "clear in", "clear out"]
