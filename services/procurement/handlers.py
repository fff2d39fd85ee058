"""Procurement commands and event handlers: load through the repositories, decide with the
domain, save with the events. Every change is one version-guarded write of one document; the
two commands that touch two documents (an order commits against the budget, a delivery
spends against it) write the budget first or last by a key (request id, delivery id) that
makes a retry finish the job without counting twice."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from contracts.common import DeviceKind
from contracts.envelope import Envelope
from contracts.migration import ReplacementNeededV1
from contracts.procurement import ApprovalKind, DeliveryReceivedV1, NeedLine, RequestState, SpendClass
from services.procurement import budget as budget_rules
from services.procurement import domain, purchases
from services.procurement.budget import Budget, BudgetLine
from services.procurement.domain import AwardSpec, CallOff, Framework, FrameworkSpec, Variation
from services.procurement.purchases import DeliveryNote, PurchaseRequest, RequestSpec, Submission, Thresholds
from services.procurement.store import BUDGET_ID, BudgetStore, ContractStore, FrameworkStore, RequestStore
from services.runtime.changes import Change
from services.runtime.clock import Clock
from services.runtime.errors import Conflict, FieldError, InvalidInput
from services.runtime.repository import AlreadyStored, NotStored, Page, Repository
from services.runtime.store.base import Filter

T = TypeVar("T")
V = TypeVar("V")
SCAN_PAGE = 500
MAX_DRAFT_GENERATIONS = 10_000


@dataclass(frozen=True)
class Policy:
    thresholds: Thresholds
    notice_days: int
    replacement_framework: str
    """The framework replacement needs are drafted under (grouped by it and the device kind)."""


@dataclass(frozen=True)
class Supplier:
    name: str
    contracts: list[str]
    frameworks: list[str]
    value_pence: int
    legacy_pence: int
    modern_pence: int


@dataclass(frozen=True)
class BudgetFigure:
    year: str
    category: str
    allocated_pence: int
    committed_pence: int
    delivered_pence: int
    left_pence: int


def _decide(decide: Callable[[T], Change[V]], value: T) -> Change[V]:
    try:
        return decide(value)
    except domain.StateConflict as error:
        raise Conflict(str(error)) from None
    except domain.RuleBroken as error:
        raise _invalid(error) from None


def _invalid(error: domain.RuleBroken) -> InvalidInput:
    location = f"body.{error.field}" if error.field else "body"
    return InvalidInput(str(error), [FieldError(location, str(error))])


def _unknown(what: str, key: str, field: str) -> InvalidInput:
    message = f"no {what} with id {key}"
    return InvalidInput(message, [FieldError(f"body.{field}", message)])


class ProcurementHandlers:
    def __init__(self, frameworks: FrameworkStore, contracts: ContractStore, requests: RequestStore,
                 budgets: BudgetStore, clock: Clock, policy: Policy) -> None:
        self.frameworks = frameworks
        self.contracts = contracts
        self.requests = requests
        self.budgets = budgets
        self._clock = clock
        self.policy = policy

    # -- frameworks -----------------------------------------------------------------------

    async def add_framework(self, spec: FrameworkSpec) -> Framework:
        return await self.frameworks.insert(Change(domain.new_framework(spec)))

    async def replace_framework(self, framework_id: str, spec: FrameworkSpec, expected: int | None) -> Framework:
        return await self.frameworks.mutate(framework_id, expected,
                                            lambda f: _decide(lambda x: domain.replace_framework(x, spec), f))

    async def framework(self, framework_id: str) -> Framework:
        return await self.frameworks.get(framework_id)

    async def page_frameworks(self, *, after: str | None, limit: int) -> Page[Framework]:
        return await self.frameworks.page({}, after=after, limit=limit)

    async def _referenced_framework(self, framework_id: str) -> Framework:
        found = await self.frameworks.load(framework_id)
        if found is None:
            raise _unknown("framework", framework_id, "framework_id")
        return found

    # -- call-off contracts ---------------------------------------------------------------

    async def award(self, spec: AwardSpec) -> CallOff:
        framework = await self._referenced_framework(spec.framework_id)
        change = _decide(lambda f: domain.award(spec, f, self._clock.now()), framework)
        try:
            return await self.contracts.insert(change)
        except AlreadyStored:
            raise Conflict(f"a call-off contract with id {spec.contract_id} exists already") from None

    async def vary(self, contract_id: str, variation: Variation, expected: int | None) -> CallOff:
        contract = await self.contracts.get(contract_id)
        framework = await self.frameworks.get(contract.framework_id)
        return await self.contracts.mutate(contract_id, expected, lambda c: _decide(
            lambda x: domain.vary(x, variation, framework, self._clock.now()), c))

    async def contract(self, contract_id: str) -> CallOff:
        return await self.contracts.get(contract_id)

    async def page_contracts(self, *, after: str | None, limit: int) -> Page[CallOff]:
        return await self.contracts.page({}, after=after, limit=limit)

    async def _all(self, repository: Repository[T],  # type: ignore[type-var]
                   where: Filter | None = None) -> AsyncIterator[T]:
        after: str | None = None
        while True:
            page = await repository.page(where or {}, after=after, limit=SCAN_PAGE)
            for item in page.items:
                yield item
            if page.last is None:
                return
            after = page.last

    async def suppliers(self) -> list[Supplier]:
        """Each supplier the programme holds call-offs with, and what they are worth."""
        held: dict[str, list[CallOff]] = {}
        async for contract in self._all(self.contracts):
            held.setdefault(contract.supplier, []).append(contract)
        return [Supplier(name, [c.contract_id for c in cs], sorted({c.framework_name for c in cs}),
                         sum(c.value_pence for c in cs),
                         sum(c.value_pence for c in cs if c.classification is SpendClass.LEGACY),
                         sum(c.value_pence for c in cs if c.classification is SpendClass.MODERN))
                for name, cs in sorted(held.items())]

    async def expiring(self, within_days: int | None = None) -> list[CallOff]:
        """Contracts whose notice window (``within_days`` before the end, the configured
        notice period unless given) has begun and that have not ended, soonest end first."""
        days = self.policy.notice_days if within_days is None else within_days
        today = self._clock.now().date()
        found = [c async for c in self._all(self.contracts) if domain.is_expiring(c, today, days)]
        return sorted(found, key=lambda c: (c.end, c.contract_id))

    async def announce_expiring(self) -> int:
        """Announce each contract that entered its notice window, once per contract and window
        (the window is remembered in the contract's document, with the event)."""
        today = self._clock.now().date()
        announced = 0
        async for contract in self._all(self.contracts):
            change = domain.check_expiry(contract, today, self.policy.notice_days)
            if change.changed:
                await self.contracts.mutate(contract.contract_id, None,
                                            lambda c: domain.check_expiry(c, today, self.policy.notice_days))
                announced += 1
        return announced

    # -- purchase requests ----------------------------------------------------------------

    async def raise_request(self, spec: RequestSpec) -> PurchaseRequest:
        framework = await self._referenced_framework(spec.framework_id)
        if spec.contract_id is not None and await self.contracts.load(spec.contract_id) is None:
            raise _unknown("call-off contract", spec.contract_id, "contract_id")
        request_id = f"PR-{uuid.uuid4().hex[:12].upper()}"
        try:
            value = purchases.draft(request_id, spec, framework, self._clock.now())
        except domain.RuleBroken as error:
            raise _invalid(error) from None
        return await self.requests.insert(Change(value))

    async def request_states(self) -> Counter[RequestState]:
        """How many purchase requests are in each state, read by their ``state`` field alone (a
        request's needs and deliveries make it large: the gauge refresh should not load them)."""
        found = await self.requests.collection.find({}, projection=["state"])
        return Counter(RequestState(doc["state"]) for doc in found)

    def requests_in(self, state: RequestState) -> AsyncIterator[PurchaseRequest]:
        """Every purchase request in ``state``, a page at a time."""
        return self._all(self.requests, {"state": state.value})

    async def request(self, request_id: str) -> PurchaseRequest:
        return await self.requests.get(request_id)

    async def page_requests(self, state: RequestState | None, *, after: str | None,
                            limit: int) -> Page[PurchaseRequest]:
        return await self.requests.page({"state": state.value} if state else {}, after=after, limit=limit)

    async def submit(self, request_id: str, details: Submission, by: str, expected: int | None) -> PurchaseRequest:
        current = await self.requests.get(request_id)
        contract_id = details.contract_id or current.contract_id
        contract = await self.contracts.load(contract_id) if contract_id else None
        if contract_id and contract is None:
            raise _unknown("call-off contract", contract_id, "contract_id")
        return await self.requests.mutate(request_id, expected, lambda r: _decide(
            lambda x: purchases.submit(x, details, by, contract, self.policy.thresholds, self._clock.now()), r))

    async def approve(self, request_id: str, by: str, kind: ApprovalKind, expected: int | None) -> PurchaseRequest:
        return await self.requests.mutate(request_id, expected, lambda r: _decide(
            lambda x: purchases.approve(x, by, kind, self._clock.now()), r))

    async def reject(self, request_id: str, by: str, reason: str, expected: int | None) -> PurchaseRequest:
        return await self.requests.mutate(request_id, expected, lambda r: _decide(
            lambda x: purchases.reject(x, by, reason, self._clock.now()), r))

    async def order(self, request_id: str, expected: int | None) -> PurchaseRequest:
        """Commit the request's value against the budget (refused with the figures if it would
        exceed what is left), then order. The commitment is keyed by the request: if the order
        write fails after it, ordering again finishes the job and commits nothing twice."""
        request = await self.requests.get(request_id)
        if request.state is RequestState.ORDERED:
            return request
        try:
            purchases.check_orderable(request)
        except domain.StateConflict as error:
            raise Conflict(str(error)) from None
        if expected is not None and request.version != expected:
            await self.requests.mutate(request_id, expected, lambda r: Change(r))  # raises VersionMismatch
        await self.budgets.mutate(BUDGET_ID, None, lambda b: _decide(lambda x: budget_rules.commit(x, request), b))
        return await self.requests.mutate(request_id, None, lambda r: _decide(
            lambda x: purchases.place_order(x, self._clock.now()), r))

    async def deliver(self, request_id: str, note: DeliveryNote, expected: int | None) -> PurchaseRequest:
        """Record a delivery (its devices reach inventory through the event), then spend its
        value against the budget, keyed by the delivery. Should the process stop between the
        two, the delivery event (stored with the delivery) finishes the spend when procurement
        consumes it (``on_delivery_received``); either way it is counted once."""
        after = await self.requests.mutate(request_id, expected, lambda r: _decide(
            lambda x: purchases.receive(x, note, self._clock.now()), r))
        record = (next((d for d in after.deliveries if d.delivery_id == note.delivery_id), None)
                  if note.delivery_id else after.deliveries[-1])
        if record is not None:
            entry = budget_rules.delivered_spend(after, (after.unit_price_pence or 0) * len(record.asset_tags))
            await self.budgets.mutate(BUDGET_ID, None, lambda b: budget_rules.spend(b, record.delivery_id, entry))
        return after

    async def on_delivery_received(self, envelope: Envelope) -> None:
        """Spend a delivery against the budget unless it is already. Only a delivery the
        request's own document holds counts (the request is the record; an event from another
        store on the same topic, or without a request, is not this budget's)."""
        delivery = DeliveryReceivedV1.model_validate(envelope.data)
        request = await self.requests.load(delivery.request_id) if delivery.request_id else None
        record = next((d for d in request.deliveries if d.delivery_id == delivery.delivery_id), None) \
            if request is not None else None
        if request is None or record is None:
            return
        entry = budget_rules.delivered_spend(request, (request.unit_price_pence or 0) * len(record.asset_tags))
        await self.budgets.mutate(BUDGET_ID, None, lambda b: budget_rules.spend(b, record.delivery_id, entry))

    # -- replacement needs from migration -------------------------------------------------

    async def on_replacement_needed(self, envelope: Envelope) -> None:
        await self.on_replacement_needs([envelope])

    async def on_replacement_needs(self, envelopes: Sequence[Envelope]) -> None:
        """Add the needs to the open draft for their kind under the replacement framework.
        Drafts are numbered per kind and framework (PR-<framework>-<kind>-001, -002 ...) and hold
        at most ``purchases.NEEDS_PER_DRAFT`` needs; the drafts are read in order and a need any of
        them holds is left out, so a redelivered or re-announced need (same need id) is added
        once, even after its draft was submitted. Many needs together (a fetched batch) cost one
        write per draft they land in."""
        by_kind: dict[DeviceKind, dict[str, NeedLine]] = {}
        for envelope in envelopes:
            need = ReplacementNeededV1.model_validate(envelope.data)
            by_kind.setdefault(need.kind, {}).setdefault(need.need_id, NeedLine(
                need_id=need.need_id, site=need.site, borough=need.borough, quantity=need.quantity))
        if not by_kind:
            return
        framework = await self.frameworks.get(self.policy.replacement_framework)
        for kind, lines in by_kind.items():
            await self._place_needs(framework, kind, list(lines.values()))

    async def _place_needs(self, framework: Framework, kind: DeviceKind, lines: list[NeedLine]) -> None:
        for generation in range(1, MAX_DRAFT_GENERATIONS + 1):
            request_id = f"PR-{framework.framework_id}-{kind.value}-{generation:03d}"
            current = await self.requests.load(request_id)
            if current is None:
                first, rest = purchases.add_needs(purchases.draft(request_id, RequestSpec(
                    kind=kind, quantity=1, framework_id=framework.framework_id), framework, self._clock.now()),
                    lines, self._clock.now())
                try:
                    await self.requests.insert(Change(first.value.model_copy(update={"version": 1})))
                except AlreadyStored:
                    current = await self.requests.get(request_id)
                else:
                    if not (lines := rest):
                        return
                    continue
            left: list[NeedLine] = lines

            def add(request: PurchaseRequest, lines: list[NeedLine] = lines) -> Change[PurchaseRequest]:
                nonlocal left
                change, left = purchases.add_needs(request, lines, self._clock.now())
                return change

            try:
                await self.requests.mutate(request_id, None, add)
            except domain.StateConflict:  # submitted: it keeps what it holds, the next draft takes the rest
                held = {n.need_id for n in (await self.requests.get(request_id)).needs}
                left = [n for n in lines if n.need_id not in held]
            if not (lines := left):
                return
        raise RuntimeError(f"more than {MAX_DRAFT_GENERATIONS} drafts for {kind.value}")

    # -- the budget -----------------------------------------------------------------------

    async def set_budget(self, name: str, lines: list[BudgetLine]) -> Budget:
        """The programme budget's allocation (the commitments and spend against it stay)."""
        now = self._clock.now()
        if await self.budgets.load(BUDGET_ID) is None:
            change = _decide(lambda n: budget_rules.new_budget(BUDGET_ID, n, lines, now), name)
            try:
                return await self.budgets.insert(change)
            except AlreadyStored:
                pass
        return await self.budgets.mutate(BUDGET_ID, None, lambda b: _decide(
            lambda x: budget_rules.reallocate(x, name, lines, now), b))

    async def budget(self) -> Budget:
        found = await self.budgets.load(BUDGET_ID)
        if found is None:
            raise NotStored("no programme budget is set; PUT /procurement/budget sets it")
        return found


def figures(budget: Budget) -> list[BudgetFigure]:
    keys = sorted({(line.year, line.category) for line in budget.lines}
                  | {(c.year, c.category) for c in budget.commitments.values()})
    out = []
    for year, category in keys:
        allocated, committed = budget.allocated(year, category), budget.committed(year, category)
        delivered = sum(d.value_pence for d in budget.delivered.values() if d.year == year and d.category is category)
        out.append(BudgetFigure(year, category.value, allocated, committed, delivered, allocated - committed))
    return out
