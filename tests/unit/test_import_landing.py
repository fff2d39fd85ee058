"""A bulk import announces only the updates it stored, even when a concurrent write from the
same version lands first (same resulting version number, different content)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.common import OperatingSystem, OsFamily
from services.inventory.domain import DevicePatch, DeviceSpec
from services.inventory.handlers import InventoryHandlers
from services.inventory.imports import ParsedRow
from services.inventory.store import DEVICES, DeviceStore
from services.runtime.clock import FixedClock
from services.runtime.store import BulkResult, Document, UpdateOp
from services.runtime.store.memory import MemoryCollection, MemoryStore
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)


class RecordingRelay:
    """Stands in for the OutboxRelay: records what it is asked to publish."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, Document]] = []

    def watch(self, collection: str) -> None:
        pass

    def submit(self, collection: str, docs: Iterable[Document]) -> None:
        self.submitted.extend((collection, doc) for doc in docs)

    async def drain(self) -> None:
        return None

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(e["event"]) for _, doc in self.submitted for e in doc.get("outbox", [])]


class RacingCollection:
    """The devices collection, except that a concurrent write runs just before the first
    bulk_update: the import loses the race deterministically."""

    def __init__(self, inner: MemoryCollection, before_bulk_update: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._race: Callable[[], Awaitable[None]] | None = before_bulk_update

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        race, self._race = self._race, None
        if race is not None:
            await race()
        return await self._inner.bulk_update(ops)


def row(line: int, tag: str, version: str) -> ParsedRow:
    return ParsedRow(line, DeviceSpec.model_validate(device_body(tag, os={"family": "windows", "version": version})))


async def test_an_import_update_that_lost_to_a_same_version_patch_is_rejected_and_not_announced() -> None:
    store = MemoryStore()
    relay = RecordingRelay()
    handlers = InventoryHandlers(DeviceStore(store, relay, FixedClock(NOW)), relay, FixedClock(NOW))  # type: ignore[arg-type]
    await handlers.register(DeviceSpec.model_validate(device_body("MPS-D-000001")))
    await handlers.register(DeviceSpec.model_validate(device_body("MPS-D-000002")))

    async def concurrent_patch() -> None:  # from version 1, as the import decided on
        windows_10 = OperatingSystem(family=OsFamily.WINDOWS, version="10")
        patched = await handlers.update("MPS-D-000001", DevicePatch(os=windows_10), 1)
        assert patched.version == 2

    handlers.devices.collection = RacingCollection(store.collection(DEVICES), concurrent_patch)  # type: ignore[assignment]
    relay.submitted.clear()

    report = await handlers.import_rows([row(2, "MPS-D-000001", "7"), row(3, "MPS-D-000002", "7")])

    assert (report.received, report.updated, report.rejected) == (2, 1, 1)
    assert [(e.line, e.asset_tag) for e in report.errors] == [(2, "MPS-D-000001")]
    assert "changed while importing" in report.errors[0].reason

    stored = {d["_id"]: d for d in await store.collection(DEVICES).find({})}
    assert stored["MPS-D-000001"]["os"]["version"] == "10"  # the PATCH won
    assert stored["MPS-D-000002"]["os"]["version"] == "7"   # the import's other row landed
    stored_ids = {e["id"] for d in stored.values() for e in d["outbox"]}

    announced = relay.events()
    # the PATCH's own event, and the import's event for the row that landed; nothing else
    assert [(e["subject"], e["data"]["version"], e["data"]["device"]["os"]["version"]) for e in announced] == [
        ("MPS-D-000001", 2, "10"), ("MPS-D-000002", 2, "7")]
    assert {e["id"] for e in announced} <= stored_ids


async def test_an_import_whose_updates_all_landed_announces_each_once() -> None:
    store = MemoryStore()
    relay = RecordingRelay()
    handlers = InventoryHandlers(DeviceStore(store, relay, FixedClock(NOW)), relay, FixedClock(NOW))  # type: ignore[arg-type]
    await handlers.register(DeviceSpec.model_validate(device_body("MPS-D-000003")))
    relay.submitted.clear()

    report = await handlers.import_rows([row(2, "MPS-D-000003", "7"), row(3, "MPS-D-000004", "7")])

    assert (report.created, report.updated, report.rejected) == (1, 1, 0)
    assert sorted((e["subject"], e["type"]) for e in relay.events()) == [
        ("MPS-D-000003", "inventory.device.updated.v1"), ("MPS-D-000004", "inventory.device.registered.v1")]
