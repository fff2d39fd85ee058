"""Purchase request rules: drafts (and the replacement needs added to them), submission,
approvals, rejection, the order and deliveries. Pure, as ``domain.py`` is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Self

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from contracts.common import (
    OS_FOR_KIND,
    ApplicationName,
    DeviceKind,
    Hardware,
    Location,
    OperatingSystem,
    ShortText,
)
from contracts.procurement import (
    Approval,
    ApprovalKind,
    BudgetYear,
    DeliveredDevice,
    DeliveryReceivedV1,
    NeedLine,
    Pence,
    PurchaseApprovedV1,
    PurchaseOrderedV1,
    PurchaseRejectedV1,
    PurchaseRequestedV1,
    PurchaseRequestSnapshot,
    RequestState,
    RequiredApprovals,
    SpendClass,
)
from services.procurement.domain import (
    DEVICE_CATEGORY,
    MAX_PENCE,
    STORED_ONLY,
    CallOff,
    Framework,
    Id,
    RuleBroken,
    StateConflict,
    StrictModel,
    budget_year_of,
    london_borough,
    pounds,
)
from services.runtime.changes import Change

# -- purchase requests ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Governance thresholds, in pence: up to ``single_approver`` one approver; above it two;
    above ``board`` the board too; above ``spend_control`` the central spend-control approval too."""

    single_approver: int
    board: int
    spend_control: int

    def __post_init__(self) -> None:
        if not 0 < self.single_approver <= self.board <= self.spend_control:
            raise ValueError("thresholds must rise: single approver <= board <= spend control")

    def required(self, value_pence: int) -> RequiredApprovals:
        return RequiredApprovals(approvers=1 if value_pence <= self.single_approver else 2,
                                 board=value_pence > self.board,
                                 spend_control=value_pence > self.spend_control)


class DeliveryRecord(StrictModel):
    delivery_id: ShortText
    received_at: AwareDatetime
    asset_tags: list[str]
    serial_numbers: list[str]


class PurchaseRequest(PurchaseRequestSnapshot):
    """A purchase request as stored: the published snapshot plus its deliveries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deliveries: list[DeliveryRecord] = Field(default_factory=list)

    def snapshot(self) -> PurchaseRequestSnapshot:
        return PurchaseRequestSnapshot(**self.model_dump(exclude={"deliveries"}))


class RequestSpec(StrictModel):
    kind: DeviceKind
    quantity: int = Field(ge=1, le=100_000)
    framework_id: Id
    model: ShortText | None = None
    unit_price_pence: Pence | None = Field(default=None, gt=0)
    contract_id: Id | None = None
    classification: SpendClass = SpendClass.MODERN
    budget_year: BudgetYear | None = None
    site: ShortText | None = None
    borough: str | None = None

    @model_validator(mode="after")
    def _known_borough(self) -> Self:
        london_borough(self.borough)
        return self


def _check_value(unit_price_pence: int | None, quantity: int) -> None:
    if unit_price_pence is not None and unit_price_pence * quantity > MAX_PENCE:
        raise RuleBroken(f"{quantity} at {pounds(unit_price_pence)} is over the largest value a request may "
                         f"have ({pounds(MAX_PENCE)})", "unit_price_pence")


def _check_framework_buys_devices(framework: Framework) -> None:
    if framework.lot_for(DEVICE_CATEGORY) is None:
        raise RuleBroken(f"framework {framework.name} has no lot that may buy {DEVICE_CATEGORY.value}",
                         "framework_id")


def draft(request_id: str, spec: RequestSpec, framework: Framework, now: datetime,
          needs: list[NeedLine] | None = None) -> PurchaseRequest:
    """A new draft request (drafts are not announced: they are announced when submitted)."""
    _check_framework_buys_devices(framework)
    _check_value(spec.unit_price_pence, spec.quantity)
    lot = framework.lot_for(DEVICE_CATEGORY)
    return PurchaseRequest(
        request_id=request_id, state=RequestState.DRAFT, kind=spec.kind, model=spec.model,
        quantity=spec.quantity, unit_price_pence=spec.unit_price_pence,
        value_pence=None if spec.unit_price_pence is None else spec.unit_price_pence * spec.quantity,
        framework_id=framework.framework_id, framework_name=framework.name, lot=lot.name if lot else None,
        contract_id=spec.contract_id, category=DEVICE_CATEGORY, classification=spec.classification,
        budget_year=spec.budget_year, site=spec.site, borough=spec.borough, needs=needs or [],
        version=1, created_at=now, updated_at=now)


def _next(request: PurchaseRequest, now: datetime, **changes: object) -> PurchaseRequest:
    return request.model_copy(update={**changes, "version": request.version + 1, "updated_at": now})


NEEDS_PER_DRAFT = 1000
"""Replacement needs one draft holds at most (the next draft takes the rest): the contract
allows 5,000, and a draft is loaded whole each time needs are added to it."""
MAX_REQUEST_QUANTITY = 100_000


def add_needs(request: PurchaseRequest, needs: Sequence[NeedLine], now: datetime,
              limit: int = NEEDS_PER_DRAFT) -> tuple[Change[PurchaseRequest], list[NeedLine]]:
    """Add replacement needs to a draft, in their order, while it has room (``limit`` needs,
    ``MAX_REQUEST_QUANTITY`` devices); a need it holds already changes nothing. Returns the
    change and the needs left for the next draft."""
    held = {n.need_id for n in request.needs}
    new = [n for n in needs if n.need_id not in held]
    if not new:
        return Change(request), []
    if request.state is not RequestState.DRAFT:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a draft takes needs")
    taken: list[NeedLine] = []
    quantity = sum(n.quantity for n in request.needs)
    for line in new:
        if len(request.needs) + len(taken) >= limit or quantity + line.quantity > MAX_REQUEST_QUANTITY:
            break
        taken.append(line)
        quantity += line.quantity
    if not taken:
        return Change(request), new
    lines = [*request.needs, *taken]
    sites = {n.site for n in lines}
    after = _next(request, now, needs=lines, quantity=quantity,
                  site=lines[0].site if len(sites) == 1 else None,
                  borough=lines[0].borough if len(sites) == 1 else None)
    # A draft is not announced (it is when submitted): stored, not published.
    return Change(after, [(STORED_ONLY, after)]), new[len(taken):]


class Submission(StrictModel):
    """What a draft may still lack when it is submitted; what is given replaces the draft's."""

    model: ShortText | None = None
    unit_price_pence: Pence | None = Field(default=None, gt=0)
    contract_id: Id | None = None
    budget_year: BudgetYear | None = None
    quantity: int | None = Field(default=None, ge=1, le=100_000)


def submit(request: PurchaseRequest, details: Submission, by: str, contract: CallOff | None,
           thresholds: Thresholds, now: datetime) -> Change[PurchaseRequest]:
    if request.state is not RequestState.DRAFT:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a draft can be submitted")
    model = details.model or request.model
    price = details.unit_price_pence or request.unit_price_pence
    quantity = details.quantity or request.quantity
    if model is None:
        raise RuleBroken("say which model to buy (model)", "model")
    if price is None:
        raise RuleBroken("say the unit price in pence (unit_price_pence)", "unit_price_pence")
    if contract is None:
        raise RuleBroken("name the call-off contract to buy through (contract_id)", "contract_id")
    if contract.framework_id != request.framework_id:
        raise RuleBroken(f"contract {contract.contract_id} is under {contract.framework_name}, not the request's "
                         f"{request.framework_name}", "contract_id")
    if contract.category is not request.category:
        raise RuleBroken(f"contract {contract.contract_id} buys {contract.category.value}, not "
                         f"{request.category.value}", "contract_id")
    if not contract.start <= now.date() <= contract.end:
        raise RuleBroken(f"contract {contract.contract_id} runs {contract.start} to {contract.end}; "
                         f"it cannot be bought through on {now.date()}", "contract_id")
    _check_value(price, quantity)
    value = price * quantity
    after = _next(request, now, state=RequestState.SUBMITTED, model=model, unit_price_pence=price,
                  quantity=quantity, value_pence=value, contract_id=contract.contract_id,
                  supplier=contract.supplier, lot=contract.lot,
                  budget_year=details.budget_year or request.budget_year or budget_year_of(now.date()),
                  requested_by=by, required=thresholds.required(value))
    return Change(after, [("procurement.purchase.requested.v1",
                           PurchaseRequestedV1(request_id=after.request_id, version=after.version,
                                               request=after.snapshot()))])


def fully_approved(request: PurchaseRequest) -> bool:
    required = request.required
    if required is None:
        return False
    kinds = [a.kind for a in request.approvals]
    return (kinds.count(ApprovalKind.APPROVER) >= required.approvers
            and (not required.board or ApprovalKind.BOARD in kinds)
            and (not required.spend_control or ApprovalKind.SPEND_CONTROL in kinds))


def _check_decidable(request: PurchaseRequest, by: str, verb: str) -> None:
    """Approving and rejecting alike: only a submitted request, and never by who raised it."""
    if request.state is not RequestState.SUBMITTED:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a submitted "
                            f"request can be {verb}")
    if by == request.requested_by:
        raise StateConflict(f"no self-approval: {by} raised request {request.request_id}; another approver "
                            "must decide it")


def approve(request: PurchaseRequest, by: str, kind: ApprovalKind, now: datetime) -> Change[PurchaseRequest]:
    _check_decidable(request, by, "approved")
    if any(a.by == by for a in request.approvals):
        raise StateConflict(f"{by} has already approved request {request.request_id}; an approver counts once")
    required = request.required
    assert required is not None
    kinds = [a.kind for a in request.approvals]
    if kind is ApprovalKind.APPROVER and kinds.count(kind) >= required.approvers:
        raise StateConflict(f"request {request.request_id} has its {required.approvers} approver(s) already")
    if kind is ApprovalKind.BOARD and not required.board:
        raise StateConflict(f"request {request.request_id} ({pounds(request.value_pence or 0)}) is under the "
                            "board threshold; it needs no board approval")
    if kind is ApprovalKind.SPEND_CONTROL and not required.spend_control:
        raise StateConflict(f"request {request.request_id} ({pounds(request.value_pence or 0)}) is under the "
                            "central spend-control threshold; it needs no spend-control approval")
    if kind is not ApprovalKind.APPROVER and kind in kinds:
        raise StateConflict(f"request {request.request_id} has its {kind.value} approval already")
    approval = Approval(by=by, kind=kind, at=now)
    approved = _next(request, now, approvals=[*request.approvals, approval])
    done = fully_approved(approved)
    if done:
        approved = approved.model_copy(update={"state": RequestState.APPROVED})
    return Change(approved, [("procurement.purchase.approved.v1",
                              PurchaseApprovedV1(request_id=request.request_id, version=approved.version,
                                                 approval=approval, fully_approved=done,
                                                 request=approved.snapshot()))])


def reject(request: PurchaseRequest, by: str, reason: str, now: datetime) -> Change[PurchaseRequest]:
    _check_decidable(request, by, "rejected")
    after = _next(request, now, state=RequestState.REJECTED, rejected_by=by, rejection_reason=reason)
    return Change(after, [("procurement.purchase.rejected.v1",
                           PurchaseRejectedV1(request_id=request.request_id, version=after.version,
                                              rejected_by=by, reason=reason, request=after.snapshot()))])


def order_id_of(request: PurchaseRequest) -> str:
    return f"PO-{request.request_id}"


def check_orderable(request: PurchaseRequest) -> None:
    if request.state is not RequestState.APPROVED:
        held = ""
        if request.state is RequestState.SUBMITTED and request.required and request.required.spend_control \
                and ApprovalKind.SPEND_CONTROL not in [a.kind for a in request.approvals]:
            held = " (held until the central spend-control approval is recorded)"
        raise StateConflict(f"request {request.request_id} is {request.state.value}{held}; only an approved "
                            "request can be ordered")


def place_order(request: PurchaseRequest, now: datetime) -> Change[PurchaseRequest]:
    if request.state is RequestState.ORDERED and request.order_id:
        return Change(request)
    check_orderable(request)
    assert request.value_pence is not None and request.budget_year is not None
    after = _next(request, now, state=RequestState.ORDERED, order_id=order_id_of(request), ordered_at=now)
    return Change(after, [("procurement.purchase.ordered.v1",
                           PurchaseOrderedV1(request_id=request.request_id, order_id=after.order_id or "",
                                             version=after.version, value_pence=request.value_pence,
                                             budget_year=request.budget_year, ordered_at=now,
                                             request=after.snapshot()))])


class DeliveredItem(StrictModel):
    asset_tag: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$", strip_whitespace=True)]
    serial_number: ShortText
    os: OperatingSystem
    hardware: Hardware
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)


class DeliveryNote(StrictModel):
    delivery_id: Id | None = Field(default=None, description="The supplier's delivery note; made up if absent. "
                                   "Sending the same one again changes nothing")
    location: Location
    devices: list[DeliveredItem] = Field(min_length=1, max_length=5000)


def receive(request: PurchaseRequest, note: DeliveryNote, now: datetime) -> Change[PurchaseRequest]:
    """Record a (possibly partial) delivery against an ordered request."""
    delivery_id = note.delivery_id or f"{request.order_id}-D{len(request.deliveries) + 1}"
    if note.delivery_id and any(d.delivery_id == note.delivery_id for d in request.deliveries):
        return Change(request)
    if request.state not in (RequestState.ORDERED, RequestState.PARTIALLY_DELIVERED):
        raise StateConflict(f"request {request.request_id} is {request.state.value}; deliveries are recorded "
                            "against an ordered request")
    left = request.quantity - request.delivered_quantity
    if len(note.devices) > left:
        raise RuleBroken(f"request {request.request_id} ordered {request.quantity}, {request.delivered_quantity} "
                         f"delivered already: at most {left} more, not {len(note.devices)}", "devices")
    seen_tags = {t for d in request.deliveries for t in d.asset_tags}
    seen_serials = {s for d in request.deliveries for s in d.serial_numbers}
    tags: list[str] = []
    serials: list[str] = []
    for i, device in enumerate(note.devices):
        if device.os.family not in OS_FOR_KIND[request.kind]:
            allowed = ", ".join(sorted(f.value for f in OS_FOR_KIND[request.kind]))
            raise RuleBroken(f"a {request.kind.value} cannot run {device.os.family.value}; expected one of {allowed}",
                             f"devices.{i}.os.family")
        if device.asset_tag in seen_tags or device.asset_tag in tags:
            raise RuleBroken(f"asset tag {device.asset_tag} is delivered already", f"devices.{i}.asset_tag")
        if device.serial_number in seen_serials or device.serial_number in serials:
            raise RuleBroken(f"serial number {device.serial_number} is delivered already",
                             f"devices.{i}.serial_number")
        tags.append(device.asset_tag)
        serials.append(device.serial_number)
    delivered = request.delivered_quantity + len(tags)
    price = request.unit_price_pence or 0
    after = _next(request, now,
                  state=RequestState.DELIVERED if delivered == request.quantity else RequestState.PARTIALLY_DELIVERED,
                  delivered_quantity=delivered, delivered_value_pence=request.delivered_value_pence + price * len(tags),
                  deliveries=[*request.deliveries, DeliveryRecord(delivery_id=delivery_id, received_at=now,
                                                                  asset_tags=tags, serial_numbers=serials)])
    event = DeliveryReceivedV1(
        delivery_id=delivery_id, order_id=request.order_id or "", framework=request.framework_id,
        supplier=request.supplier or "", received_at=now, location=note.location,
        devices=[DeliveredDevice(asset_tag=d.asset_tag, kind=request.kind, os=d.os, hardware=d.hardware,
                                 applications=d.applications, serial_number=d.serial_number)
                 for d in note.devices],
        request_id=request.request_id, contract_id=request.contract_id, framework_name=request.framework_name,
        lot=request.lot, category=request.category, classification=request.classification,
        budget_year=request.budget_year, unit_price_pence=request.unit_price_pence,
        value_pence=price * len(tags), ordered_quantity=request.quantity, delivered_quantity=delivered)
    return Change(after, [("procurement.delivery.received.v1", event)])


