"""Inventory commands and event handlers: load through the repository, decide with the domain,
save with the events (the repository keeps the outbox and the version guard)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from contracts.common import OperatingSystem, Sanitisation
from contracts.envelope import Envelope
from contracts.inventory import LifecycleState
from contracts.procurement import DeliveryReceivedV1
from services.inventory import domain
from services.inventory.domain import Change, Device, DevicePatch, DeviceSpec
from services.inventory.imports import ImportReport, ParsedRow, RowError
from services.inventory.store import DeviceQuery, DeviceStore
from services.runtime.clock import Clock
from services.runtime.errors import Conflict, FieldError, InvalidInput
from services.runtime.outbox import OutboxRelay
from services.runtime.repository import Page, VersionedWrite
from services.runtime.store import Document
from services.runtime.telemetry import current_trace_carrier

S = LifecycleState
YIELD_EVERY = 100
"""Rows an import reads between yields to the event loop: the chunk being stored is sent and
answered, and the relay publishes, while the next one is read."""

ImportOutcomes = Callable[[ImportReport], None]
"""Told of each import's report (the service's metrics count the rows by outcome)."""


class InventoryHandlers:
    def __init__(self, devices: DeviceStore, relay: OutboxRelay, clock: Clock, *, chunk_size: int = 1000,
                 chunks_in_flight: int = 2, on_import: ImportOutcomes | None = None) -> None:
        self.devices = devices
        self._relay = relay
        self._clock = clock
        self._chunk_size = chunk_size
        self._chunks_in_flight = chunks_in_flight
        self._on_import = on_import

    # -- commands -----------------------------------------------------------------------

    async def register(self, spec: DeviceSpec) -> Device:
        return await self.devices.insert(domain.register(spec, self._clock.now()))

    async def get(self, asset_tag: str) -> Device:
        return await self.devices.get(asset_tag)

    async def page(self, query: DeviceQuery, *, after: str | None, limit: int) -> Page[Device]:
        return await self.devices.page(query.filter(), after=after, limit=limit)

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
        return await self.devices.mutate(asset_tag, expected_version, lambda d: _decide(decide, d))

    # -- bulk import --------------------------------------------------------------------

    async def import_rows(self, rows: Iterable[ParsedRow]) -> ImportReport:
        """Store every good row (new -> registered, changed -> updated, same -> unchanged),
        report every bad one; then publish the events before answering."""
        report = ImportReport()
        first_line: dict[str, int] = {}
        chunk: list[tuple[ParsedRow, Document]] = []
        storing: deque[asyncio.Task[None]] = deque()
        trace = current_trace_carrier()
        try:
            for row in rows:
                report.received += 1
                if report.received % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the chunk being stored (and the relay) get on meanwhile
                if row.spec is None:
                    report.reject(*row.errors)
                    continue
                tag = row.spec.asset_tag
                if tag in first_line:
                    report.reject(RowError(row.line, tag, "asset_tag",
                                           f"asset tag {tag} repeats line {first_line[tag]} of this file"))
                    continue
                first_line[tag] = row.line
                # Most rows are new: each becomes a new device document with its registration event.
                chunk.append((row, self.devices.new_document(
                    domain.register(row.spec, self._clock.now()), trace)))
                if len(chunk) >= self._chunk_size:
                    # Pipelined: chunks are stored concurrently (different devices, so in any
                    # order) while the next one is read and built.
                    if len(storing) >= self._chunks_in_flight:
                        await storing.popleft()
                    storing.append(asyncio.create_task(self._import_chunk(chunk, report)))
                    chunk = []
                    await asyncio.sleep(0)  # let requests in between chunks, even on the embedded store
        finally:
            # Every chunk started is finished (or its failure raised) before the answer.
            for outcome in await asyncio.gather(*storing, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
        if chunk:
            await self._import_chunk(chunk, report)
        await self._relay.drain()
        if self._on_import is not None:
            self._on_import(report)
        return report

    async def _import_chunk(self, fresh: list[tuple[ParsedRow, Document]], report: ImportReport) -> None:
        """New devices first, in one unordered insert (the common case, and the fast one);
        the rows whose asset tag is already taken then go through the update path."""
        now = self._clock.now()
        taken = await self.devices.insert_documents([doc for _, doc in fresh])
        report.created += len(fresh) - len(taken)
        if taken:
            await self._import_known([fresh[i][0] for i in sorted(taken)], report, now)

    async def _import_known(self, rows: list[ParsedRow], report: ImportReport, now: datetime) -> None:
        existing = await self.devices.load_many(r.spec.asset_tag for r in rows)  # type: ignore[union-attr]
        writes: list[tuple[ParsedRow, VersionedWrite[Device]]] = []
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
            if change.changed:
                writes.append((row, VersionedWrite(change, current.version)))
            else:
                report.unchanged += 1
        landed = await self.devices.write_many([w for _, w in writes])
        for row, write in writes:
            tag = write.change.value.asset_tag
            if tag in landed:
                report.updated += 1
            else:
                report.reject(RowError(row.line, tag, None, "the device changed while importing; import again"))

    # -- events -------------------------------------------------------------------------

    async def on_delivery(self, envelope: Envelope) -> None:
        """Each delivered device joins the inventory. Keyed by asset tag, so a redelivered
        or replayed delivery registers (and announces) nothing twice."""
        delivery = DeliveryReceivedV1.model_validate(envelope.data)
        now = self._clock.now()
        await self.devices.insert_documents([
            self.devices.new_document(domain.register(DeviceSpec(
                asset_tag=d.asset_tag, kind=d.kind, os=d.os, hardware=d.hardware,
                location=delivery.location, applications=d.applications), now))
            for d in delivery.devices
        ])

    # -- migration's events -------------------------------------------------------------

    async def on_migration(self, envelope: Envelope) -> None:
        """Migration moves devices through events: started -> migrating; migrated -> the new
        OS, migrated; rolled back -> in service; replaced -> retired; sanitised -> disposed.
        Each is a no-op on a device already there, so a redelivery changes nothing."""
        data, tag, now = envelope.data, envelope.subject, self._clock.now()
        kind = envelope.type.removeprefix("migration.device.").removesuffix(".v1")
        steps: list[Callable[[Device], Change]] = []
        if kind == "started":
            steps = [lambda d: domain.move(d, S.MIGRATING, now) if d.state is not S.MIGRATED else Change(d)]
        elif kind == "migrated":
            os_after = OperatingSystem.model_validate(data["os_after"])
            steps = [lambda d: domain.move(d, S.MIGRATING, now) if d.state is S.IN_SERVICE else Change(d),
                     lambda d: domain.update(d, DevicePatch(os=os_after), now),
                     lambda d: domain.move(d, S.MIGRATED, now)]
        elif kind == "rolled_back":
            steps = [lambda d: domain.move(d, S.IN_SERVICE, now) if d.state is S.MIGRATING else Change(d)]
        elif kind == "replacement_paired":
            reason = f"replaced by {data['replacement_asset_tag']}"
            steps = [lambda d: domain.retire(d, reason, now) if d.state is not S.DISPOSED else Change(d)]
        elif kind == "disposal_requested":
            record = Sanitisation.model_validate(data["sanitisation"])
            steps = [lambda d: domain.dispose(d, record, now)]
        for step in steps:
            await self.devices.mutate(tag, None, step)


def _decide(decide: Callable[[Device], Change], device: Device) -> Change:
    try:
        return decide(device)
    except domain.LifecycleError as error:
        raise Conflict(str(error)) from None
    except domain.DomainError as error:
        location = f"body.{error.field}" if error.field else "body"
        raise InvalidInput(str(error), [FieldError(location, str(error))]) from None
