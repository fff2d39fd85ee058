"""Inventory commands and event handlers: load, decide with the domain, save with the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from contracts.common import Sanitisation
from contracts.envelope import Envelope, new_envelope
from contracts.inventory import LifecycleState
from contracts.procurement import DeliveryReceivedV1
from services.inventory import domain
from services.inventory.domain import Change, Device, DevicePatch, DeviceSpec
from services.inventory.imports import ParsedRow, RowError
from services.inventory.store import (
    DEVICES,
    LOOKUP_CONCURRENCY,
    DevicePage,
    DeviceQuery,
    DeviceStore,
    to_document,
)
from services.runtime.clock import Clock
from services.runtime.errors import Conflict, FieldError, InvalidInput, NotFound, PreconditionFailed
from services.runtime.outbox import OUTBOX, OutboxRelay, new_with_outbox, outbox_entries, set_with_outbox
from services.runtime.store import Document, DuplicateKeyError, UpdateOp
from services.runtime.telemetry import current_trace_carrier

SOURCE = "/estate/inventory"
MAX_WRITE_ATTEMPTS = 3


@dataclass(slots=True)
class ImportReport:
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)

    def reject(self, *errors: RowError) -> None:
        self.rejected += 1
        self.errors.extend(errors)


class InventoryHandlers:
    def __init__(self, devices: DeviceStore, relay: OutboxRelay, clock: Clock, *, chunk_size: int = 1000) -> None:
        self.devices = devices
        self._relay = relay
        self._clock = clock
        self._chunk_size = chunk_size

    def _entries(self, change: Change, trace: dict[str, str] | None = None) -> list[Document]:
        now = self._clock.now()
        return outbox_entries(
            (new_envelope(type=name, source=SOURCE, subject=change.device.asset_tag, time=now, data=data)
             for name, data in change.events), trace)

    def _new_document(self, change: Change) -> Document:
        return new_with_outbox(to_document(change.device), self._entries(change))

    def _change_update(self, change: Change) -> tuple[dict[str, object], list[Document]]:
        entries = self._entries(change)
        fields = to_document(change.device)
        del fields["_id"]
        return set_with_outbox(fields, entries), entries

    # -- commands -----------------------------------------------------------------------

    async def register(self, spec: DeviceSpec) -> Device:
        change = domain.register(spec, self._clock.now())
        doc = self._new_document(change)
        try:
            await self.devices.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"asset tag {spec.asset_tag} is already registered") from None
        self._relay.submit(DEVICES, [doc])
        return change.device

    async def get(self, asset_tag: str) -> Device:
        found = await self.devices.get(asset_tag)
        if found is None:
            raise NotFound(f"no device with asset tag {asset_tag}")
        return found[0]

    async def page(self, query: DeviceQuery, *, after: str | None, limit: int) -> DevicePage:
        return await self.devices.page(query, after=after, limit=limit)

    async def update(self, asset_tag: str, patch: DevicePatch, expected_version: int | None) -> Device:
        return await self._mutate(asset_tag, expected_version,
                                  lambda d: domain.update(d, patch, self._clock.now()))

    async def move(self, asset_tag: str, to: LifecycleState, expected_version: int | None) -> Device:
        return await self._mutate(asset_tag, expected_version,
                                  lambda d: domain.move(d, to, self._clock.now()))

    async def retire(self, asset_tag: str, reason: str, expected_version: int | None) -> Device:
        return await self._mutate(asset_tag, expected_version,
                                  lambda d: domain.retire(d, reason, self._clock.now()))

    async def dispose(self, asset_tag: str, record: Sanitisation, expected_version: int | None) -> Device:
        return await self._mutate(asset_tag, expected_version,
                                  lambda d: domain.dispose(d, record, self._clock.now()))

    async def _mutate(self, asset_tag: str, expected_version: int | None,
                      decide: Callable[[Device], Change]) -> Device:
        """Optimistic concurrency: the write lands only on the version the decision was made on."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            device = await self.get(asset_tag)
            if expected_version is not None and device.version != expected_version:
                raise PreconditionFailed(
                    f"device {asset_tag} is at version {device.version}, not {expected_version}; "
                    "read it again and retry")
            change = _decide(decide, device)
            if not change.changed:
                return device
            update, entries = self._change_update(change)
            written = await self.devices.collection.find_one_and_update(
                {"_id": asset_tag, "version": device.version}, update)
            if written is not None:
                self._relay.submit(DEVICES, [{"_id": asset_tag, "outbox": entries}])
                return change.device
            if expected_version is not None:
                raise PreconditionFailed(f"device {asset_tag} changed while this request ran; retry")
        raise Conflict(f"device {asset_tag} kept changing under this request; retry")

    # -- bulk import --------------------------------------------------------------------

    async def import_rows(self, rows: Iterable[ParsedRow]) -> ImportReport:
        """Store every good row (new -> registered, changed -> updated, same -> unchanged),
        report every bad one; then publish the events before answering."""
        report = ImportReport()
        first_line: dict[str, int] = {}
        chunk: list[ParsedRow] = []
        storing: asyncio.Task[None] | None = None
        try:
            for row in rows:
                report.received += 1
                if row.spec is None:
                    report.reject(*row.errors)
                    continue
                tag = row.spec.asset_tag
                if tag in first_line:
                    report.reject(RowError(row.line, tag, "asset_tag",
                                           f"asset tag {tag} repeats line {first_line[tag]} of this file"))
                    continue
                first_line[tag] = row.line
                chunk.append(row)
                if len(chunk) >= self._chunk_size:
                    # Pipelined: this chunk's documents are built while the previous one is stored.
                    fresh = self._registrations(chunk)
                    if storing is not None:
                        await storing
                    storing = asyncio.create_task(self._import_chunk(fresh, report))
                    chunk = []
                    await asyncio.sleep(0)  # let requests in between chunks, even on the embedded store
        finally:
            if storing is not None:
                await storing
        if chunk:
            await self._import_chunk(self._registrations(chunk), report)
        await self._relay.drain()
        return report

    def _registrations(self, rows: list[ParsedRow]) -> list[tuple[ParsedRow, Document]]:
        """Each row as a new device document with its registration event (most rows are new)."""
        now = self._clock.now()
        trace = current_trace_carrier()
        return [(row, new_with_outbox(to_document(change.device), self._entries(change, trace)))
                for row in rows for change in (domain.register(row.spec, now),)]  # type: ignore[arg-type]

    async def _import_chunk(self, fresh: list[tuple[ParsedRow, Document]], report: ImportReport) -> None:
        """New devices first, in one unordered insert (the common case, and the fast one);
        the rows whose asset tag is already taken then go through the update path."""
        now = self._clock.now()
        result = await self.devices.collection.insert_many([doc for _, doc in fresh])
        taken = set(result.duplicate_indexes)
        report.created += len(fresh) - len(taken)
        self._relay.submit(DEVICES, (doc for i, (_, doc) in enumerate(fresh) if i not in taken))
        if taken:
            await self._import_known([fresh[i][0] for i in sorted(taken)], report, now)

    async def _import_known(self, rows: list[ParsedRow], report: ImportReport, now: datetime) -> None:
        existing = await self.devices.get_many(r.spec.asset_tag for r in rows)  # type: ignore[union-attr]
        updates: list[tuple[ParsedRow, UpdateOp, list[Document]]] = []
        for row in rows:
            spec = row.spec
            assert spec is not None
            current = existing.get(spec.asset_tag)
            if current is None:  # devices are never deleted; a tag taken is a tag that stays
                report.reject(RowError(row.line, spec.asset_tag, None, "the device vanished while importing"))
                continue
            patch = DevicePatch(os=spec.os, hardware=spec.hardware, location=spec.location,
                                applications=spec.applications)
            try:
                change = domain.update(current, patch, now)
            except domain.DomainError as error:
                report.reject(RowError(row.line, spec.asset_tag, error.field, str(error)))
                continue
            if not change.changed:
                report.unchanged += 1
                continue
            update, entries = self._change_update(change)
            updates.append((row, UpdateOp({"_id": spec.asset_tag, "version": current.version}, update), entries))
        await self._store_updates(updates, report)

    async def _store_updates(self, updates: list[tuple[ParsedRow, UpdateOp, list[Document]]],
                             report: ImportReport) -> None:
        if not updates:
            return
        result = await self.devices.collection.bulk_update([op for _, op, _ in updates])
        landed = {row.spec.asset_tag for row, _, _ in updates}  # type: ignore[union-attr]
        if result.matched < len(updates):
            landed = await self._updates_that_landed(updates)
        for row, _, entries in updates:
            tag = row.spec.asset_tag  # type: ignore[union-attr]
            if tag in landed:
                report.updated += 1
                self._relay.submit(DEVICES, [{"_id": tag, "outbox": entries}])
            else:
                report.reject(RowError(row.line, tag, None, "the device changed while importing; import again"))

    async def _updates_that_landed(self, updates: list[tuple[ParsedRow, UpdateOp, list[Document]]]) -> set[str]:
        """After a partly matched batch: the devices whose stored outbox holds the change's own
        event. (The version number cannot tell: a concurrent change from the same version
        writes the same number.) Read one lone ``_id`` lookup at a time, a few at once, as
        ``DeviceStore.get_many`` does, but the raw outbox rather than the parsed device."""
        wanted = {op.filter["_id"]: entries[0]["id"] for _, op, entries in updates if entries}
        tags = list(wanted)
        landed: set[str] = set()
        for start in range(0, len(tags), LOOKUP_CONCURRENCY):
            docs = await asyncio.gather(*(self.devices.collection.find_one({"_id": t}, projection=[OUTBOX])
                                          for t in tags[start:start + LOOKUP_CONCURRENCY]))
            landed.update(d["_id"] for d in docs
                          if d is not None and any(isinstance(e, dict) and e.get("id") == wanted[d["_id"]]
                                                   for e in d.get(OUTBOX) or ()))
        return landed

    # -- events -------------------------------------------------------------------------

    async def on_delivery(self, envelope: Envelope) -> None:
        """Each delivered device joins the inventory. Keyed by asset tag, so a redelivered
        or replayed delivery registers (and announces) nothing twice."""
        delivery = DeliveryReceivedV1.model_validate(envelope.data)
        now = self._clock.now()
        docs = [
            self._new_document(domain.register(DeviceSpec(
                asset_tag=d.asset_tag, kind=d.kind, os=d.os, hardware=d.hardware,
                location=delivery.location, applications=d.applications), now))
            for d in delivery.devices
        ]
        result = await self.devices.collection.insert_many(docs)
        refused = set(result.duplicate_indexes)
        self._relay.submit(DEVICES, (doc for i, doc in enumerate(docs) if i not in refused))


def _decide(decide: Callable[[Device], Change], device: Device) -> Change:
    try:
        return decide(device)
    except domain.LifecycleError as error:
        raise Conflict(str(error)) from None
    except domain.DomainError as error:
        location = f"body.{error.field}" if error.field else "body"
        raise InvalidInput(str(error), [FieldError(location, str(error))]) from None
