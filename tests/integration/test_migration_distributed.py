"""The migration service on real Kafka and FerretDB, beside inventory, each in a process of its
own: devices imported into inventory are assessed; a wave migrates them through every saga
step and inventory shows the new OS and state; redeliveries change nothing; a replacement need
is published once; a migration process killed mid-wave picks the wave up from the store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from contracts.envelope import Envelope
from services.runtime.settings import Settings
from tests.integration.conftest import produce, read_whole_topic
from tests.integration.groups import begin_at_end
from tests.integration.processes import ServiceProcess, start_service
from tests.integration.test_delivery_guarantees import group_empty
from tests.samples import device_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
FAST = {"ESTATE_WAVE_INTERVAL_S": "0.2", "ESTATE_EXECUTOR_FAILURE_RATE": "0",
        "ESTATE_EXECUTOR_STEP_DURATION_S": "0"}
STEPS = ["back_up", "deploy_os", "verify"]


def tags_of(prefix: str, n: int) -> list[str]:
    marker = uuid.uuid4().hex[:8].upper()
    return [f"{prefix}-{marker}-{i}" for i in range(n)]


def site_of() -> dict[str, str]:
    return {"site": f"IT Site {uuid.uuid4().hex[:8]}", "borough": "Camden", "unit": "Territorial Policing"}


def ndjson(bodies: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(b) for b in bodies)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def caught_up(bootstrap: str, group: str, topics: list[str], timeout_s: float = 30.0) -> None:
    """Wait until ``group`` has committed every message on ``topics`` (its effects are stored:
    the consumer commits only after the handler)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        async def done() -> bool:
            partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
            ends = await consumer.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(group)
            return bool(partitions) and all(
                tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end > 0)
        await consumer._client.force_metadata_update()  # noqa: SLF001 - topics may be new
        await until(done, f"group {group} to reach the end of {topics}", timeout_s)
    finally:
        await consumer.stop()
        await admin.close()


async def start_migration(settings: Settings, env: dict[str, str]) -> ServiceProcess:
    await begin_at_end(settings.kafka_bootstrap, settings.consumer_group_prefix + "migration",
                       ["inventory.devices", "procurement.deliveries"])
    return await start_service(settings, "migration", env)


def of(records: list[ConsumerRecord], tag: str) -> list[dict[str, Any]]:
    """A key's events, each once (a relay may republish an entry after a crash; consumers
    deduplicate on the id)."""
    unique: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.key == tag.encode():
            event = json.loads(r.value)
            unique.setdefault(event["id"], event)
    return list(unique.values())


def json_all(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


async def everything(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    return await read_whole_topic(bootstrap, topic)


async def migration_record(http: httpx.AsyncClient, tag: str) -> dict[str, Any] | None:
    got = await http.get(f"/migration/devices/{tag}")
    return got.json() if got.status_code == 200 else None  # type: ignore[no-any-return]


async def assessed(http: httpx.AsyncClient, tags: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    async def all_assessed() -> bool:
        for tag in tags:
            if tag not in found:
                record = await migration_record(http, tag)
                if record is not None and record["readiness"] is not None:
                    found[tag] = record
        return len(found) == len(tags)
    await until(all_assessed, "migration to assess the imported devices")
    return found


async def import_devices(inventory: ServiceProcess, bodies: list[dict[str, Any]]) -> None:
    async with inventory.client() as http:
        report = await http.post("/devices/import", content=ndjson(bodies),
                                 headers={"Content-Type": "application/x-ndjson"})
    assert report.status_code == 200 and report.json()["created"] == len(bodies), report.text


async def migrated_in_inventory(inventory: ServiceProcess, tags: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    async def check() -> bool:
        async with inventory.client() as http:
            for tag in tags:
                device = (await http.get(f"/devices/{tag}")).json()
                if device["state"] == "migrated" and device["os"]["version"] == "8.1":
                    found[tag] = device
        return len(found) == len(tags)
    await until(check, "inventory to show the migrated devices")
    return found


async def plan(http: httpx.AsyncClient, site: str, capacity: int) -> str:
    today = datetime.now(UTC).date()
    got = await http.post("/migration/waves", json={"name": "integration", "sites": [site],
                                                    "start_date": str(today), "daily_capacity": capacity})
    assert got.status_code == 201, got.text
    return str(got.json()["wave"]["wave_id"])


async def wave_completed(http: httpx.AsyncClient, wave_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    async def done() -> bool:
        return bool((await http.get(f"/migration/waves/{wave_id}")).json()["wave"]["state"] == "completed")
    await until(done, f"wave {wave_id} to complete", timeout_s)
    return (await http.get(f"/migration/waves/{wave_id}")).json()  # type: ignore[no-any-return]


@pytest.fixture
async def inventory(settings: Settings) -> AsyncIterator[ServiceProcess]:
    await begin_at_end(settings.kafka_bootstrap, settings.consumer_group_prefix + "inventory",
                       ["migration.devices", "procurement.deliveries"])
    process = await start_service(settings, "inventory")
    try:
        yield process
    finally:
        process.stop()


async def test_imported_devices_are_assessed_a_wave_migrates_them_and_redeliveries_change_nothing(
        settings: Settings, inventory: ServiceProcess) -> None:
    bootstrap = settings.kafka_bootstrap
    migration = await start_migration(settings, FAST)
    try:
        location = site_of()
        ready = tags_of("ITM", 4)
        blocked, dispose, replace = tags_of("ITB", 1)[0], tags_of("ITD", 1)[0], tags_of("ITR", 1)[0]
        hardware = device_body()["hardware"]
        bodies = [device_body(t, location=location) for t in ready] + [
            device_body(blocked, location=location, applications=["NSPIS Custody"]),
            device_body(dispose, location=location, hardware={**hardware, "ram_mb": 1024}),
            device_body(replace, location=location, hardware={**hardware, "disk_gb": 40})]
        await import_devices(inventory, bodies)

        async with migration.client() as http:
            records = await assessed(http, [*ready, blocked, dispose, replace])
            outcomes = {t: r["readiness"]["outcome"] for t, r in records.items()}
            assert {outcomes[t] for t in ready} == {"upgrade_in_place"}
            assert (outcomes[blocked], outcomes[dispose], outcomes[replace]) == ("blocked", "dispose", "replace")
            assert [b["name"] for b in records[blocked]["readiness"]["blocking_applications"]] == ["NSPIS Custody"]

            wave_id = await plan(http, location["site"], capacity=10)
            wave = await wave_completed(http, wave_id)
            assert wave["wave"]["devices"] == sorted(ready), "only the devices ready to upgrade join the wave"
            assert wave["progress"]["migrated"] == 4 and wave["progress"]["success_rate"] == 1.0
        devices = await migrated_in_inventory(inventory, ready)

        prefix = settings.consumer_group_prefix
        await caught_up(bootstrap, prefix + "migration", ["inventory.devices"])
        await caught_up(bootstrap, prefix + "inventory", ["migration.devices"])
        await asyncio.sleep(1.0)  # the relays publish what those effects announced

        saga_events = await everything(bootstrap, "migration.devices")
        for tag in ready:
            types = [e["type"].removeprefix("migration.device.").removesuffix(".v1") for e in of(saga_events, tag)]
            assert types == ["assessed", "scheduled", "started", "step_completed", "step_completed",
                             "step_completed", "migrated", "assessed"], types
            steps = [e["data"]["step"] for e in of(saga_events, tag) if e["type"].endswith("step_completed.v1")]
            assert steps == STEPS
            assert of(saga_events, tag)[-1]["data"]["outcome"] == "already_compliant"
        needs = await everything(bootstrap, "migration.replacements")
        for tag, kind in ((dispose, "laptop"), (replace, "desktop")):
            [need] = of(needs, f"NEED-{tag}")
            assert need["type"] == "migration.replacement.needed.v1"
            assert need["data"]["replaces"] == [tag] and need["data"]["kind"] == kind
            assert need["data"]["site"] == location["site"]
        assert not of(needs, f"NEED-{blocked}") and not any(of(needs, f"NEED-{t}") for t in ready)

        # Redeliveries: the same envelopes again (as Kafka may redeliver them), and copies under
        # new ids (as a replay would): two registrations (one of a device to dispose of) and a
        # migrated device.
        inventory_events = await everything(bootstrap, "inventory.devices")
        first = ready[0]
        resent = [("inventory.devices", next(e for e in of(inventory_events, t) if e["type"].endswith("registered.v1")))
                  for t in (first, dispose)]
        resent.append(("migration.devices", next(e for e in of(saga_events, first)
                                                 if e["type"].endswith(".migrated.v1"))))
        async with migration.client() as http:
            records_before = {t: await migration_record(http, t) for t in (first, dispose)}
        copies = set()
        for topic, event in resent:
            envelope = Envelope.model_validate(event)
            anew = envelope.model_copy(update={"id": uuid.uuid4().hex})
            copies.add(anew.id)
            for copy in (envelope, envelope, anew):
                await produce(bootstrap, topic, copy.subject or "", copy.to_bytes())
        await caught_up(bootstrap, prefix + "migration", ["inventory.devices"])
        await caught_up(bootstrap, prefix + "inventory", ["migration.devices"])
        await asyncio.sleep(1.0)

        for topic, before in (("inventory.devices", inventory_events), ("migration.devices", saga_events),
                              ("migration.replacements", needs)):
            after = await everything(bootstrap, topic)
            new = {e["id"] for e in json_all(after)} - {e["id"] for e in json_all(before)} - copies
            assert not new, f"redeliveries caused new events on {topic}: {new}"
        async with migration.client() as http:
            for tag, record in records_before.items():
                assert await migration_record(http, tag) == record
        async with inventory.client() as http:
            assert (await http.get(f"/devices/{first}")).json()["version"] == devices[first]["version"]
    finally:
        migration.stop()


async def test_a_migration_process_killed_mid_wave_completes_the_wave_after_a_restart(
        settings: Settings, inventory: ServiceProcess) -> None:
    settings = settings.model_copy(update={"outbox_lease_s": 2.0})
    slow = {**FAST, "ESTATE_EXECUTOR_STEP_DURATION_S": "1.0"}  # each step 0.5-1.5 s by the clock
    migration = await start_migration(settings, slow)
    location = site_of()
    ready = tags_of("ITK", 6)
    await import_devices(inventory, [device_body(t, location=location) for t in ready])
    try:
        async with migration.client() as http:
            await assessed(http, ready)
            wave_id = await plan(http, location["site"], capacity=10)

            async def mid_wave() -> bool:
                states = [((await migration_record(http, t)) or {}).get("saga") or {} for t in ready]
                return any(s.get("state") in ("backed_up", "os_deployed") for s in states)
            await until(mid_wave, "a device part-way through its saga")
        migration.kill()
        from services.runtime.store.mongo import MongoStore
        store = MongoStore(settings.mongo_url, settings.mongo_database)
        try:
            [stored_wave] = await store.collection("migration_waves").find({"_id": wave_id})
            sagas = [d["saga"]["state"] for d in await store.collection("migration_devices").find(
                {"_id": {"$in": ready}})]
        finally:
            await store.close()
        assert stored_wave["state"] == "running" and stored_wave["migrated"] < len(ready), stored_wave
        assert Counter(sagas)["migrated"] < len(ready), sagas

        await group_empty(settings.kafka_bootstrap, settings.consumer_group_prefix + "migration")
        migration = await start_service(settings, "migration", slow)
        async with migration.client() as http:
            wave = await wave_completed(http, wave_id, timeout_s=40)
        assert wave["progress"]["migrated"] == len(ready)
        await migrated_in_inventory(inventory, ready)
        saga_events = await everything(settings.kafka_bootstrap, "migration.devices")
        for tag in ready:
            types = Counter(e["type"] for e in of(saga_events, tag))
            assert types["migration.device.migrated.v1"] == 1 and types["migration.device.started.v1"] == 1
            steps = [e["data"]["step"] for e in of(saga_events, tag) if e["type"].endswith("step_completed.v1")]
            assert steps == STEPS, (tag, steps)
    finally:
        migration.stop()
