"""Procurement handlers on the embedded store: the notice window announced once per contract
even across restarts; replacement needs grouped into drafts by kind and framework, each need
once however often it is delivered; an order's budget commitment counted once on retry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.common import DeviceKind
from contracts.envelope import Envelope, new_envelope
from contracts.migration import ReplacementNeededV1
from contracts.procurement import ApprovalKind, RequestState
from services.procurement import purchases
from services.procurement.handlers import Policy, ProcurementHandlers
from services.procurement.purchases import DeliveryNote, Submission, Thresholds
from services.procurement.sample_data import load_sample_contracts, seed_reference_data
from services.procurement.store import BudgetStore, ContractStore, FrameworkStore, RequestStore
from services.runtime.clock import FixedClock
from services.runtime.errors import Conflict
from services.runtime.store import Document
from services.runtime.store.memory import MemoryStore

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)
HARDWARE = {"model": "L", "cpu_model": "i5", "cpu_arch": "x64", "cpu_cores": 2, "ram_mb": 8192, "disk_gb": 256,
            "tpm": "2.0", "firmware": "uefi"}


class RecordingRelay:
    def __init__(self) -> None:
        self.submitted: list[Document] = []

    def watch(self, collection: str) -> None:
        pass

    def submit(self, collection: str, docs: Iterable[Document]) -> None:
        self.submitted.extend(docs)

    async def drain(self) -> None:
        return None

    def events(self, type_: str) -> list[dict[str, object]]:
        return [json.loads(e["event"]) for d in self.submitted for e in d.get("outbox", []) if e["type"] == type_]


def handlers_on(store: MemoryStore, relay: RecordingRelay, clock: FixedClock) -> ProcurementHandlers:
    """A fresh set of handlers on the same store: what a restarted process has."""
    args = (store, relay, clock)
    policy = Policy(Thresholds(10_000_000, 100_000_000, 500_000_000), 180, "SPRINT-II")
    return ProcurementHandlers(FrameworkStore(*args), ContractStore(*args), RequestStore(*args),  # type: ignore[arg-type]
                               BudgetStore(*args), clock, policy)  # type: ignore[arg-type]


@pytest.fixture
async def world() -> tuple[MemoryStore, RecordingRelay, FixedClock, ProcurementHandlers]:
    store, relay, clock = MemoryStore(), RecordingRelay(), FixedClock(NOW)
    handlers = handlers_on(store, relay, clock)
    await seed_reference_data(handlers, 200_000_000_00, NOW.date())
    return store, relay, clock, handlers


def need(need_id: str, kind: DeviceKind = DeviceKind.LAPTOP, quantity: int = 2, site: str = "Holborn") -> Envelope:
    data = ReplacementNeededV1(need_id=need_id, site=site, kind=kind, quantity=quantity, reason="below minimum")
    return new_envelope(type="migration.replacement.needed.v1", source="/migration", subject=need_id,
                        time=NOW, data=data)


async def test_the_notice_window_is_announced_once_across_restarts(world: tuple) -> None:  # type: ignore[type-arg]
    store, relay, clock, handlers = world
    await load_sample_contracts(handlers, date(2026, 11, 23))  # sample dates are relative to today
    clock.advance(timedelta(days=365 * 11 + 120))  # ~2026-12: the XP support call-off is in its window
    first = await handlers.announce_expiring()
    assert first >= 1
    restarted = handlers_on(store, relay, clock)
    assert await restarted.announce_expiring() == 0
    announced = relay.events("procurement.contract.expiring.v1")
    assert len(announced) == first
    assert len({e["subject"] for e in announced}) == first
    assert "CO-XP-SUPPORT" in {e["subject"] for e in announced}


async def test_needs_group_into_one_draft_per_kind_and_framework_once_each(world: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, handlers = world
    for envelope in (need("N1"), need("N1"), need("N2", site="Brixton", quantity=3), need("T1", DeviceKind.TABLET)):
        await handlers.on_replacement_needed(envelope)
    # a re-announced need: same need id, another event id
    await handlers.on_replacement_needed(need("N1").model_copy(update={"id": str(uuid.uuid4())}))
    laptops = await handlers.request("PR-SPRINT-II-laptop-001")
    assert [n.need_id for n in laptops.needs] == ["N1", "N2"]
    assert (laptops.state, laptops.quantity) == (RequestState.DRAFT, 5)
    assert (await handlers.request("PR-SPRINT-II-tablet-001")).quantity == 2
    assert len((await handlers.page_requests(None, after=None, limit=50)).items) == 2


async def test_a_batch_of_needs_fills_drafts_up_to_their_limit_each_need_once(world: tuple) -> None:  # type: ignore[type-arg]
    """The sample estate raises thousands of needs of one kind: one draft never holds more than
    NEEDS_PER_DRAFT (the contract allows 5,000), the rest open the next draft, and a batch
    delivered again (or one by one) adds nothing."""
    _, _, _, handlers = world
    needs = [need(f"N{i:05d}", quantity=1) for i in range(2 * purchases.NEEDS_PER_DRAFT + 300)]
    for start in range(0, len(needs), 500):
        await handlers.on_replacement_needs(needs[start:start + 500])
    await handlers.on_replacement_needs(needs[:700])
    for envelope in needs[-3:]:
        await handlers.on_replacement_needed(envelope)
    drafts = [await handlers.request(f"PR-SPRINT-II-laptop-{g:03d}") for g in (1, 2, 3)]
    assert [len(d.needs) for d in drafts] == [purchases.NEEDS_PER_DRAFT, purchases.NEEDS_PER_DRAFT, 300]
    assert [d.quantity for d in drafts] == [len(d.needs) for d in drafts]
    placed = [n.need_id for d in drafts for n in d.needs]
    assert placed == [f"N{i:05d}" for i in range(len(needs))]
    assert await handlers.requests.load("PR-SPRINT-II-laptop-004") is None


async def test_a_draft_takes_no_more_than_its_limit_of_devices(world: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, handlers = world
    await handlers.on_replacement_needs([need("BIG1", quantity=5000) for _ in range(1)] +
                                        [need(f"BIG{i}", quantity=5000) for i in range(2, 22)])
    first = await handlers.request("PR-SPRINT-II-laptop-001")
    second = await handlers.request("PR-SPRINT-II-laptop-002")
    assert (first.quantity, len(first.needs)) == (100_000, 20)
    assert (second.quantity, [n.need_id for n in second.needs]) == (5000, ["BIG21"])


async def test_a_need_redelivered_after_its_draft_was_submitted_opens_no_new_draft(world: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, handlers = world
    await load_sample_contracts(handlers, NOW.date())
    await handlers.on_replacement_needed(need("N1"))
    await handlers.submit("PR-SPRINT-II-laptop-001", Submission(model="Latitude", unit_price_pence=899_00,
                                                                contract_id="CO-DEVICES"), "buyer", None)
    await handlers.on_replacement_needed(need("N1"))
    assert await handlers.requests.load("PR-SPRINT-II-laptop-002") is None
    await handlers.on_replacement_needed(need("N3"))
    assert [n.need_id for n in (await handlers.request("PR-SPRINT-II-laptop-002")).needs] == ["N3"]


async def test_ordering_again_commits_once(world: tuple) -> None:  # type: ignore[type-arg]
    _, relay, _, handlers = world
    await load_sample_contracts(handlers, NOW.date())
    await handlers.on_replacement_needed(need("N1"))
    rid = "PR-SPRINT-II-laptop-001"
    await handlers.submit(rid, Submission(model="Latitude", unit_price_pence=899_00, contract_id="CO-DEVICES"),
                          "buyer", None)
    await handlers.approve(rid, "approver", ApprovalKind.APPROVER, None)
    await handlers.order(rid, None)
    await handlers.order(rid, None)
    budget = await handlers.budget()
    assert list(budget.commitments) == [rid] and budget.commitments[rid].value_pence == 2 * 899_00
    assert len(relay.events("procurement.purchase.ordered.v1")) == 1
    with pytest.raises(Conflict, match="only a draft can be submitted"):
        await handlers.submit(rid, Submission(), "buyer", None)


async def test_a_delivery_whose_spend_a_stop_left_out_is_spent_once_from_its_event(world: tuple) -> None:  # type: ignore[type-arg]
    _, relay, _, handlers = world
    await load_sample_contracts(handlers, NOW.date())
    await handlers.on_replacement_needed(need("N1"))
    rid = "PR-SPRINT-II-laptop-001"
    await handlers.submit(rid, Submission(model="Latitude", unit_price_pence=899_00, contract_id="CO-DEVICES"),
                          "buyer", None)
    await handlers.approve(rid, "approver", ApprovalKind.APPROVER, None)
    await handlers.order(rid, None)
    note = DeliveryNote.model_validate({"delivery_id": "DN-1", "location": {"site": "Holborn", "unit": "T"},
                                        "devices": [{"asset_tag": "MPS-L-1", "serial_number": "SN-1",
                                                     "os": {"family": "windows", "version": "8.1"},
                                                     "hardware": HARDWARE}]})
    # the delivery is stored with its event, and the process stops before the budget is touched
    await handlers.requests.mutate(rid, None, lambda r: purchases.receive(r, note, NOW))
    assert (await handlers.budget()).delivered == {}
    [event] = relay.events("procurement.delivery.received.v1")
    envelope = Envelope.model_validate(event)
    for _ in range(2):
        await handlers.on_delivery_received(envelope)
    stranger = envelope.data | {"delivery_id": "DN-ELSEWHERE"}  # not a delivery this store recorded
    await handlers.on_delivery_received(envelope.model_copy(update={"id": "other", "data": stranger}))
    await handlers.deliver(rid, note, None)  # the buyer sends the note again: nothing more
    budget = await handlers.budget()
    assert list(budget.delivered) == ["DN-1"] and budget.delivered["DN-1"].value_pence == 899_00
