"""The published contract artefacts (contracts/schemas, asyncapi.json, openapi/) stay honest:
they match the code, the code does not break a published event version, and real events
validate against them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from contracts.envelope import Envelope
from contracts.registry import EVENT_TYPES
from services.runtime.bus.base import Message
from services.runtime.bus.delivery import Delivery, PermanentError, RawRecord, RetryPolicy
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry
from tests.contract.examples import all_examples
from tools.contracts import compatibility, files, schemas

REGENERATE = "run `make contracts` and commit the result"
T0 = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def committed() -> dict[str, str]:
    return files.committed()


def _committed_json(committed: dict[str, str], path: str) -> Any:
    assert path in committed, f"contracts/{path} is missing; {REGENERATE}"
    return json.loads(committed[path])


# --- drift -------------------------------------------------------------------------------

def test_committed_artefacts_match_the_code(committed: dict[str, str]) -> None:
    stale = files.drift(files.render(), committed)
    assert not stale, "contract artefacts drifted from the code:\n  " + "\n  ".join(stale) + \
        f"\n{REGENERATE}"


# --- compatibility -----------------------------------------------------------------------

def test_code_keeps_every_published_event_version_compatible(committed: dict[str, str]) -> None:
    problems = compatibility.incompatibilities(committed)
    assert not problems, ("breaking changes within a published event version:\n  "
                          + "\n  ".join(problems) + "\nadd a new version (…v2) instead")


def _registered_schema() -> dict[str, Any]:
    return schemas.event_schema(EVENT_TYPES["inventory.device.registered.v1"])


def test_comparer_finds_nothing_between_equal_schemas() -> None:
    assert compatibility.breaking_changes(_registered_schema(), _registered_schema()) == []


def test_comparer_reports_removed_retyped_and_newly_required_fields() -> None:
    old, broken = _registered_schema(), _registered_schema()
    hardware, snapshot = broken["$defs"]["Hardware"], broken["$defs"]["DeviceSnapshot"]
    del hardware["properties"]["ram_mb"]
    hardware["properties"]["cpu_cores"] = {"type": "string"}
    snapshot["required"].append("retirement_reason")
    snapshot["properties"]["applications"]["items"] = {"type": "integer"}
    broken["$defs"]["Tpm"] = {"enum": [1, 2], "type": "integer"}

    assert sorted(compatibility.breaking_changes(old, broken)) == [
        "data.device.applications[]: type changed from string to integer",
        "data.device.hardware.cpu_cores: type changed from integer to string",
        "data.device.hardware.ram_mb: removed",
        "data.device.hardware.tpm: type changed from string to integer",
        "data.device.retirement_reason: was optional, now required",
    ]


def test_comparer_allows_optional_additions_but_not_required_ones_or_lost_nulls() -> None:
    old, new = _registered_schema(), _registered_schema()
    props = new["$defs"]["DeviceSnapshot"]["properties"]
    props["notes"] = {"type": "string"}
    assert compatibility.breaking_changes(old, new) == []

    new["$defs"]["DeviceSnapshot"]["required"].append("notes")
    props["retirement_reason"] = {"type": "string"}
    assert sorted(compatibility.breaking_changes(old, new)) == [
        "data.device.notes: added as required (events already published lack it)",
        "data.device.retirement_reason: type changed from null|string to string",
    ]


def test_incompatibilities_reports_a_retracted_event_type() -> None:
    published = {"schemas/inventory.device.vanished.v1.json": "{}"}
    assert compatibility.incompatibilities(published) == [
        "inventory.device.vanished.v1: published, but no longer in contracts/registry.py"]


# --- AsyncAPI ----------------------------------------------------------------------------

def test_every_topic_and_its_dead_letter_topic_is_a_channel(committed: dict[str, str]) -> None:
    doc = _committed_json(committed, "asyncapi.json")
    addresses = {channel["address"] for channel in doc["channels"].values()}
    for event in EVENT_TYPES.values():
        assert event.topic in addresses, f"{event.name}: no channel for topic {event.topic}"
    for op in doc["operations"].values():
        if op["action"] == "receive":
            topic = op["channel"]["$ref"].split("/")[-1]
            group = op["bindings"]["kafka"]["groupId"]["const"]
            assert f"{doc['channels'][topic]['address']}.{group}.dead-letter" in addresses


def test_inventory_sends_devices_and_receives_deliveries_as_its_group(
        committed: dict[str, str]) -> None:
    ops = _committed_json(committed, "asyncapi.json")["operations"]
    sends, receives = ops["inventory_sends_inventory_devices"], ops[
        "inventory_receives_procurement_deliveries"]
    assert sends["action"] == "send"
    assert sends["channel"] == {"$ref": "#/channels/inventory_devices"}
    assert receives["action"] == "receive"
    assert receives["bindings"]["kafka"]["groupId"]["const"] == "inventory"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("path", ["asyncapi.json", *(f"schemas/{n}.json" for n in EVENT_TYPES)])
def test_every_reference_resolves(committed: dict[str, str], path: str) -> None:
    doc = _committed_json(committed, path)
    for ref in _refs(doc):
        target = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"{path}: dangling $ref {ref}"
            target = target[part]


def test_documented_dead_letter_headers_are_the_ones_written(committed: dict[str, str]) -> None:
    published: list[Any] = []

    async def publish(messages: Any) -> None:
        published.extend(messages)

    async def fail(message: Message) -> None:
        raise PermanentError("bad")

    delivery = Delivery(policy=RetryPolicy(max_attempts=1), telemetry=Telemetry("test"),
                        metrics=Metrics(), publish=publish)
    loop = asyncio.new_event_loop()  # a loop of its own: the session's stays as it is
    try:
        loop.run_until_complete(
            delivery("inventory", fail, RawRecord("procurement.deliveries", 0, 0, b"k", b"{}", ())))
    finally:
        loop.close()
    written = {name for name, _ in published[0].headers if name.startswith("dlq-")}

    messages = _committed_json(committed, "asyncapi.json")["components"]["messages"]
    headers = messages["procurement_deliveries_inventory_dead-letter"]["headers"]
    assert published[0].topic == "procurement.deliveries.inventory.dead-letter"
    assert set(headers["required"]) == written


# --- real events validate against the committed schemas ----------------------------------

def _validator(committed: dict[str, str], name: str) -> Draft202012Validator:
    schema = _committed_json(committed, f"schemas/{name}.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_examples_cover_every_event_type() -> None:
    assert {e.type for e in all_examples()} == set(EVENT_TYPES)


@pytest.mark.parametrize("envelope", all_examples(), ids=lambda e: e.type)
def test_real_event_validates_against_its_committed_schema(
        committed: dict[str, str], envelope: Envelope) -> None:
    document = json.loads(envelope.model_dump_json())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator(committed, envelope.type).iter_errors(document)]
    assert not errors, errors
    assert not list(_validator(committed, "envelope").iter_errors(document))


def test_schema_rejects_another_type_and_an_unknown_field(committed: dict[str, str]) -> None:
    validator = _validator(committed, "inventory.device.registered.v1")
    document = json.loads(all_examples()[0].model_dump_json())
    assert not validator.is_valid({**document, "type": "inventory.device.updated.v1"})
    assert not validator.is_valid({**document, "data": {**document["data"], "extra": 1}})
