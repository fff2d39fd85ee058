"""The README's delivery promises, with the broker and the process broken on purpose: two
inventory replicas writing the same devices while Kafka is down still publish each device's
events in stored order; a service killed with SIGKILL right after a bulk import republishes
at most one relay round when it comes back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from aiokafka.structs import ConsumerRecord

from services.runtime.settings import Settings
from tests.integration.conftest import read_topic
from tests.integration.faults import paused_broker
from tests.integration.processes import start_service
from tests.integration.test_inventory_distributed import new_tag, stored
from tests.samples import CSV_HEADER, csv_line, device_body

pytestmark = pytest.mark.integration
TOPIC = "inventory.devices"


async def group_empty(bootstrap: str, group: str, timeout: float = 60.0) -> None:
    """Wait until the killed process has left the consumer group (its session ran out), so the
    next test's service is not kept waiting by a member that will never answer."""
    from aiokafka.admin import AIOKafkaAdminClient
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            responses = await admin.describe_consumer_groups([group])
            groups = [g for r in responses for g in r.to_object()["groups"]]
            if not any(g["members"] for g in groups):
                return
            await asyncio.sleep(1)
    finally:
        await admin.close()


def versions(records: list[ConsumerRecord], tag: str) -> list[int]:
    """The device's event versions in the order they first reached the topic."""
    seen = [json.loads(r.value)["data"]["device"]["version"] for r in records if r.key == tag.encode()]
    return list(dict.fromkeys(seen))


async def test_two_replicas_and_a_broker_outage_keep_each_devices_events_in_stored_order(
        settings: Settings) -> None:
    settings = settings.model_copy(update={"outbox_lease_s": 3.0, "outbox_poll_interval_s": 0.1})
    a, b = await start_service(settings), await start_service(settings)
    tags = [new_tag("ORD") for _ in range(6)]
    try:
        async with a.client() as first, b.client() as second:
            with paused_broker():
                for tag in tags:
                    assert (await first.post("/devices", json=device_body(tag))).status_code == 201
                for tag in tags:
                    answer = await second.patch(f"/devices/{tag}", json={"applications": ["CRIS Crime Reporting"]})
                    assert answer.status_code == 200, answer.text
                for tag in tags:
                    answer = await first.post(f"/devices/{tag}/state", json={"state": "migrating"})
                    assert answer.status_code == 200, answer.text
                for tag in tags:
                    answer = await second.patch(f"/devices/{tag}", json={"applications": ["Airwave Console"]})
                    assert answer.status_code == 200, answer.text
                await asyncio.sleep(8)  # publishes time out and are retried while the broker is away
        records = await read_topic(settings.kafka_bootstrap, TOPIC,
                                   lambda rs: all(len(versions(rs, t)) == 4 for t in tags), timeout=120)
        for tag in tags:
            assert versions(records, tag) == [1, 2, 3, 4], tag
    finally:
        a.stop()
        b.stop()


async def test_a_service_killed_after_an_import_republishes_at_most_one_round(settings: Settings) -> None:
    rows = 3000
    settings = settings.model_copy(update={"outbox_lease_s": 3.0, "outbox_scan_interval_s": 300.0})
    tags = [new_tag("KILL") for _ in range(rows)]
    body = "\n".join([CSV_HEADER, *(csv_line(t) for t in tags)])
    first = await start_service(settings)
    try:
        async with first.client() as http:
            answer = await http.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})
            assert answer.status_code == 200 and answer.json()["created"] == rows, answer.text
        first.kill()  # every event was published before the answer; hardly any cleared yet
    finally:
        first.stop()
    left = [d for d in await stored(settings, {"outbox.0": {"$exists": True}}) if str(d["_id"]).startswith("KILL")]
    second = await start_service(settings)
    try:
        wanted = set(tags)

        def all_there(records: list[ConsumerRecord]) -> bool:
            return wanted <= {r.key.decode() for r in records if r.key}

        records = await read_topic(settings.kafka_bootstrap, TOPIC, all_there, timeout=120)
        for _ in range(300):  # the new replica takes the lease, clears what was published
            if not [d for d in await stored(settings, {"outbox.0": {"$exists": True}})
                    if str(d["_id"]).startswith("KILL")]:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("the restarted service did not clear the published events")
        await asyncio.sleep(2)
        records = await read_topic(settings.kafka_bootstrap, TOPIC, all_there, timeout=60)
    finally:
        second.stop()
        await group_empty(settings.kafka_bootstrap, settings.consumer_group_prefix + "inventory")
    copies = Counter(r.key.decode() for r in records if r.key and r.key.decode() in wanted)
    duplicates = sum(n - 1 for n in copies.values())
    print(f"\nkilled after a {rows}-row import: {len(left)} documents still had events stored, "
          f"{duplicates} events published twice after the restart")
    assert set(copies) == wanted
    assert duplicates <= settings.outbox_batch_size
