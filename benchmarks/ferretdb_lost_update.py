"""Diagnostic: a write lost between the outbox relay's clear and a concurrent versioned write.

Stores documents ``{version: 1, outbox: [e1]}``, then at the same time (two tasks, one client):
the relay's clear (``$pullAll`` of e1, ``--statement`` documents per ``update_many``) and a
versioned write per document (``update_one({_id, version: 1}, {$set: {version: 2}, $push:
{outbox: e2}})``, each acknowledged as modified). Afterwards every document must hold version 2
and exactly [e2]. Prints how many do not (a lost write: version 1 and an empty outbox).

On MongoDB each update is atomic per document, so the count is 0. On FerretDB 1.24 (SQLite)
it is not: on 2026-11-23 this printed 6 to 23 bad documents of 1,500 with one document per
clear statement (most a lost write; some a lost clear, which only republishes) and 20 with 90.

    .venv/bin/python benchmarks/ferretdb_lost_update.py [--mongo mongodb://127.0.0.1:37017/]
        [--documents 300] [--rounds 5] [--statement 1]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from pymongo import AsyncMongoClient


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:37017/")
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--statement", type=int, default=1, help="documents per clear statement")
    args = parser.parse_args()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo)
    database = client[f"lost_update_{uuid.uuid4().hex[:6]}"]
    collection = database["documents"]
    lost: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            await collection.delete_many({})
            ids = [f"D{round_}-{n}" for n in range(args.documents)]
            await collection.insert_many([{"_id": i, "version": 1, "outbox": [{"id": f"{i}-e1"}]} for i in ids])

            async def clear(ids: list[str] = ids) -> None:
                for start in range(0, len(ids), args.statement):
                    part = ids[start:start + args.statement]
                    await collection.update_many({"_id": {"$in": part}},
                                                 {"$pullAll": {"outbox": [{"id": f"{i}-e1"} for i in part]}})

            async def write(ids: list[str] = ids) -> None:
                for i in ids:
                    result = await collection.update_one({"_id": i, "version": 1}, {
                        "$set": {"version": 2}, "$push": {"outbox": {"id": f"{i}-e2"}}})
                    assert result.modified_count == 1, f"{i}: the versioned write was not acknowledged"

            await asyncio.gather(clear(), write())
            stored = {doc["_id"]: doc async for doc in collection.find({})}
            lost += [stored[i] for i in ids
                     if stored[i]["version"] != 2 or [e["id"] for e in stored[i]["outbox"]] != [f"{i}-e2"]]
    finally:
        await client.drop_database(database.name)
        await client.close()
    total = args.documents * args.rounds
    print(f"{len(lost)} of {total} acknowledged versioned writes lost or left a cleared entry "
          f"({args.statement} document(s) per clear statement); first: {lost[:3]}")


if __name__ == "__main__":
    asyncio.run(main())
