"""Benchmark: versioned single-device writes on a full-size estate in FerretDB/MongoDB.

Stores the 45,500-device sample estate (services/inventory/sample_estate.py, each device as
the inventory service stores a newly registered one: the device plus its pending event,
~1.5 KB of BSON) into a fresh database, then runs sequential optimistic-concurrency writes
on random devices, as every inventory command does:
    find_one_and_update({"_id": tag, "version": v}, {"$set": {...}, "$inc": {"version": 1}})
and, for comparison, lone {"_id": tag} find_one lookups. Prints p50/p95/p99/max latency;
drops the database at the end. Starts nothing itself: the server must be running.

    .venv/bin/python benchmarks/versioned_write.py [--mongo URL] [--writes 500] [--devices 45500]

The URL defaults to $ESTATE_BENCH_MONGO, else mongodb://127.0.0.1:37017/ (`make infra-up`).
On FerretDB 1.24 (SQLite) a filter with keys besides _id is fast only with the _id pushdown
patch of deploy/local/ferretdb.sh (patch 3); without it every write scans the collection.
Targets: versioned write p50 < 20 ms, p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bson import encode
from pymongo import AsyncMongoClient, ReturnDocument

from services.inventory import domain
from services.inventory.sample_estate import generate
from services.inventory.store import DeviceStore
from services.runtime.clock import SystemClock
from services.runtime.store.memory import MemoryStore

STATES = ("assessed", "planned", "in_service")
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0


class NoRelay:
    """The repository only builds documents here; nothing is published."""

    def watch(self, collection: str) -> None:
        pass


def device_documents() -> DeviceStore:
    """The inventory's repository, to build documents exactly as the service stores them."""
    return DeviceStore(MemoryStore(), NoRelay(), SystemClock())  # type: ignore[arg-type]


def estate_documents(count: int) -> list[dict[str, Any]]:
    """The sample estate's first ``count`` devices, as the inventory service stores them."""
    now, devices = datetime.now(UTC), device_documents()
    return [devices.new_document(domain.register(spec, now), trace={})
            for spec in itertools.islice(generate(), count)]


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, math.ceil(p / 100 * len(sorted_ms)) - 1))]


async def timed(op: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await op()
    return (time.perf_counter() - started) * 1000


def report(name: str, ms: list[float], target: str = "") -> None:
    s = sorted(ms)
    print(f"{name:<34} n={len(s):<5} p50 {percentile(s, 50):8.2f}  p95 {percentile(s, 95):8.2f}  "
          f"p99 {percentile(s, 99):8.2f}  max {s[-1]:8.2f}  mean {statistics.fmean(s):8.2f} ms{target}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo", default=os.environ.get("ESTATE_BENCH_MONGO", "mongodb://127.0.0.1:37017/"))
    parser.add_argument("--devices", type=int, default=45_500, help="at most 45,500 (the sample estate)")
    parser.add_argument("--writes", type=int, default=500, help="versioned writes (and _id lookups)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    docs = estate_documents(args.devices)
    tags = [d["_id"] for d in docs]
    avg = sum(len(encode(d)) for d in docs[:500]) / min(500, len(docs))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo, serverSelectionTimeoutMS=5000,
                                                                socketTimeoutMS=600_000)
    db = client[f"bench_versioned_{uuid.uuid4().hex[:8]}"]
    devices = db["devices"]
    try:
        build = await client.admin.command("buildInfo")
        server = f"FerretDB {build['ferretdbVersion']}" if "ferretdbVersion" in build else f"MongoDB {build['version']}"
        print(f"server                             {server} at {args.mongo}")
        started = time.perf_counter()
        for start in range(0, len(docs), 1000):
            await devices.insert_many(docs[start:start + 1000], ordered=False)
        print(f"devices stored                     {len(docs)} (~{avg:.0f} B BSON each) "
              f"in {time.perf_counter() - started:.1f} s")
        del docs

        rng = random.Random(args.seed)
        versions = dict.fromkeys(tags, 1)
        write_ms: list[float] = []
        for _ in range(args.writes):
            tag = rng.choice(tags)
            version = versions[tag]

            async def write(tag: str = tag, version: int = version) -> None:
                after = await devices.find_one_and_update(
                    {"_id": tag, "version": version},
                    {"$set": {"state": rng.choice(STATES), "updated_at": datetime.now(UTC).isoformat()},
                     "$inc": {"version": 1}},
                    return_document=ReturnDocument.AFTER)
                if after is None or after["version"] != version + 1:
                    raise SystemExit(f"versioned write of {tag} at version {version} did not land: {after}")

            write_ms.append(await timed(write))
            versions[tag] = version + 1

        read_ms: list[float] = []
        for _ in range(args.writes):
            tag = rng.choice(tags)

            async def read(tag: str = tag) -> None:
                if await devices.find_one({"_id": tag}) is None:
                    raise SystemExit(f"{tag} not found")

            read_ms.append(await timed(read))

        print(f"latency over {len(tags)} devices, sequential, one client:")
        p50, p99 = percentile(sorted(write_ms), 50), percentile(sorted(write_ms), 99)
        verdict = (f"   (target p50 < {TARGET_P50_MS:g} ms: {'met' if p50 < TARGET_P50_MS else 'MISSED'}, "
                   f"p99 < {TARGET_P99_MS:g} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'})")
        report("versioned write {_id, version}", write_ms, verdict)
        report("lone find_one {_id}", read_ms)
        return 0
    finally:
        try:
            await client.drop_database(db.name)
        finally:
            await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
