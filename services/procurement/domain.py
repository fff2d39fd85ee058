"""Procurement rules: frameworks, call-off contracts, purchase requests and the budget.

Pure Python: no I/O, no framework. Each command takes the aggregate as it stands and returns
it changed with the events that announce it (``Change``); an unchanged aggregate records no
event. A command the rules refuse raises ``RuleBroken`` (the input is wrong for the rules:
422, naming the field and the rule) or ``StateConflict`` (the aggregate's state does not
allow it now: 409).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.common import (
    LONDON_BOROUGHS,
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
    AwardRoute,
    BudgetAllocatedV1,
    BudgetAllocation,
    BudgetYear,
    ContractAwardedV1,
    ContractExpiringV1,
    ContractSnapshot,
    ContractVariedV1,
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
    SpendCategory,
    SpendClass,
)
from services.runtime.changes import Change

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
VARIATION_LIMIT_PERCENT = 10
DEVICE_CATEGORY = SpendCategory.END_USER_DEVICES
STORED_ONLY = "stored-only"
"""The name of a change's "event" that is stored but not published (a draft, the budget,
a framework): the repositories publish only registered event types."""


MAX_PENCE = 10**13
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
"""Dates the programme's records may carry (keeps term arithmetic inside the calendar)."""


def _in_range(day: date | None) -> date | None:
    if day is not None and not EARLIEST <= day <= LATEST:
        raise ValueError(f"{day} is outside {EARLIEST} to {LATEST}")
    return day


PlausibleDate = Annotated[date, AfterValidator(_in_range)]


class RuleBroken(ValueError):
    """The input breaks a rule; ``field`` names the input at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StateConflict(ValueError):
    """The aggregate's current state does not allow the command."""


def pounds(pence: int) -> str:
    return f"GBP {pence // 100:,}.{pence % 100:02d}"


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def budget_year_of(day: date) -> str:
    """The UK financial year (April to March) a day falls in, e.g. 2015-16."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _borough(value: str | None) -> str | None:
    if value is not None and value not in LONDON_BOROUGHS:
        raise ValueError(f"unknown borough {value!r}; expected a London borough")
    return value


# -- frameworks -----------------------------------------------------------------------------


class Lot(_Model):
    name: ShortText
    categories: list[SpendCategory] = Field(min_length=1)
    routes: list[AwardRoute] = Field(min_length=1, description="How call-offs may be awarded")


class FrameworkSpec(_Model):
    framework_id: Id
    name: ShortText
    lots: list[Lot] = Field(min_length=1, max_length=30)
    initial_term_months: int = Field(ge=1, le=120, description="Longest initial call-off term")
    extension_months: int = Field(ge=0, le=60, description="Length of each extension option")
    max_extensions: int = Field(ge=0, le=5)
    open_from: PlausibleDate
    open_until: PlausibleDate | None = Field(default=None, description="Last day call-offs may be awarded")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [lot.name for lot in self.lots]
        if len(set(names)) != len(names):
            raise ValueError("lot names must be unique within a framework")
        if self.open_until is not None and self.open_until < self.open_from:
            raise ValueError("open_until is before open_from")
        return self


class Framework(FrameworkSpec):
    version: int = Field(ge=1)

    def lot(self, name: str, field: str = "lot") -> Lot:
        for lot in self.lots:
            if lot.name == name:
                return lot
        names = ", ".join(lot.name for lot in self.lots)
        raise RuleBroken(f"framework {self.name} has no lot {name!r}; its lots are {names}", field)

    def lot_for(self, category: SpendCategory) -> Lot | None:
        return next((lot for lot in self.lots if category in lot.categories), None)

    @property
    def longest_term_months(self) -> int:
        return self.initial_term_months + self.extension_months * self.max_extensions


def new_framework(spec: FrameworkSpec) -> Framework:
    return Framework(**spec.model_dump(), version=1)


def replace_framework(current: Framework, spec: FrameworkSpec) -> Change[Framework]:
    if spec.framework_id != current.framework_id:
        raise RuleBroken(f"the body names framework {spec.framework_id}, the path {current.framework_id}",
                         "framework_id")
    after = Framework(**spec.model_dump(), version=current.version + 1)
    if after.model_dump(exclude={"version"}) == current.model_dump(exclude={"version"}):
        return Change(current)
    return Change(after, [(STORED_ONLY, after)])


# -- call-off contracts ---------------------------------------------------------------------


class AwardSpec(_Model):
    contract_id: Id
    title: ShortText
    framework_id: Id
    lot: ShortText
    supplier: ShortText
    category: SpendCategory
    classification: SpendClass
    route: AwardRoute
    value_pence: Pence = Field(gt=0)
    start: PlausibleDate
    initial_term_months: int = Field(ge=1, le=120)


class CallOff(ContractSnapshot):
    """A call-off contract as stored: the published snapshot plus what the rules remember."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    awarded_value_pence: Pence
    notices: list[str] = Field(default_factory=list, description="Notice windows already announced")

    def snapshot(self) -> ContractSnapshot:
        return ContractSnapshot(**self.model_dump(exclude={"awarded_value_pence", "notices"}))


def _term_end(start: date, months: int) -> date:
    return add_months(start, months) - timedelta(days=1)


def award(spec: AwardSpec, framework: Framework, now: datetime) -> Change[CallOff]:
    lot = framework.lot(spec.lot)
    if spec.category not in lot.categories:
        allowed = ", ".join(c.value for c in lot.categories)
        raise RuleBroken(f"{framework.name} {lot.name} may not buy {spec.category.value}; it may buy {allowed}",
                         "category")
    if spec.route not in lot.routes:
        allowed = ", ".join(r.value for r in lot.routes)
        raise RuleBroken(f"{framework.name} {lot.name} does not allow {spec.route.value}; it allows {allowed}",
                         "route")
    if spec.initial_term_months > framework.initial_term_months:
        raise RuleBroken(
            f"term limit: {framework.name} allows an initial call-off term of at most "
            f"{framework.initial_term_months} months (then up to {framework.max_extensions} extensions of "
            f"{framework.extension_months} months); {spec.initial_term_months} asked", "initial_term_months")
    if spec.start < framework.open_from or (framework.open_until is not None and spec.start > framework.open_until):
        until = framework.open_until.isoformat() if framework.open_until else "now"
        raise RuleBroken(f"{framework.name} takes call-offs from {framework.open_from} to {until}; "
                         f"the contract starts {spec.start}", "start")
    contract = CallOff(
        **spec.model_dump(), framework_name=framework.name, end=_term_end(spec.start, spec.initial_term_months),
        extensions_used=0, extension_months_used=0, version=1, awarded_value_pence=spec.value_pence)
    return Change(contract, [("procurement.contract.awarded.v1",
                              ContractAwardedV1(contract=contract.snapshot(), awarded_at=now))])


class Variation(_Model):
    value_pence: Pence | None = Field(default=None, gt=0, description="The contract's new total value")
    extend: bool = Field(default=False, description="Take the next extension option")
    reason: ShortText

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.value_pence is None and not self.extend:
            raise ValueError("a variation changes the value (value_pence) or takes an extension (extend)")
        return self


def vary(contract: CallOff, variation: Variation, framework: Framework, now: datetime) -> Change[CallOff]:
    if now.date() > contract.end:
        raise StateConflict(f"contract {contract.contract_id} ended on {contract.end}; it can no longer be varied")
    value = contract.value_pence if variation.value_pence is None else variation.value_pence
    ceiling = contract.awarded_value_pence * (100 + VARIATION_LIMIT_PERCENT) // 100
    if value > ceiling:
        raise RuleBroken(
            f"10% variation rule: raising contract {contract.contract_id} to {pounds(value)} is "
            f"{(value - contract.awarded_value_pence) * 100 / contract.awarded_value_pence:.1f}% over its awarded "
            f"{pounds(contract.awarded_value_pence)} (at most {pounds(ceiling)}); that needs re-procurement",
            "value_pence")
    end, used, months = contract.end, contract.extensions_used, contract.extension_months_used
    if variation.extend:
        if used >= framework.max_extensions or framework.extension_months == 0:
            raise RuleBroken(
                f"term limit: {framework.name} allows {framework.max_extensions} extension(s) of "
                f"{framework.extension_months} months; contract {contract.contract_id} has used {used}", "extend")
        end, used, months = (add_months(end + timedelta(days=1), framework.extension_months) - timedelta(days=1),
                             used + 1, months + framework.extension_months)
    if value == contract.value_pence and end == contract.end:
        return Change(contract)
    after = contract.model_copy(update={"value_pence": value, "end": end, "extensions_used": used,
                                        "extension_months_used": months, "version": contract.version + 1})
    event = ContractVariedV1(
        contract_id=contract.contract_id, version=after.version, previous_value_pence=contract.value_pence,
        value_pence=value, previous_end=contract.end, end=end, extension_taken=variation.extend,
        reason=variation.reason, varied_at=now, contract=after.snapshot())
    return Change(after, [("procurement.contract.varied.v1", event)])


def notice_window(contract: CallOff, notice_days: int) -> tuple[str, date]:
    """The key of the contract's current notice window and its first day."""
    return f"{contract.end.isoformat()}/{notice_days}d", contract.end - timedelta(days=notice_days)


def is_expiring(contract: CallOff, today: date, notice_days: int) -> bool:
    return notice_window(contract, notice_days)[1] <= today <= contract.end


def check_expiry(contract: CallOff, today: date, notice_days: int) -> Change[CallOff]:
    """Announce that the contract entered its notice window: once per contract and window
    (an extension moves the end, and so opens a new window)."""
    key, starts = notice_window(contract, notice_days)
    if key in contract.notices or not is_expiring(contract, today, notice_days):
        return Change(contract)
    after = contract.model_copy(update={"notices": [*contract.notices, key], "version": contract.version + 1})
    event = ContractExpiringV1(contract_id=contract.contract_id, end=contract.end, notice_days=notice_days,
                               notice_from=starts, days_left=(contract.end - today).days,
                               contract=after.snapshot())
    return Change(after, [("procurement.contract.expiring.v1", event)])


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


class DeliveryRecord(_Model):
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


class RequestSpec(_Model):
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
        _borough(self.borough)
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


MAX_NEEDS = 5000
"""Needs one request holds at most (the contract's limit): a full draft refuses the next, which
goes to the next draft."""


def add_need(request: PurchaseRequest, need: NeedLine, now: datetime) -> Change[PurchaseRequest]:
    """Add a replacement need to a draft; a need it holds already changes nothing; a full
    draft refuses a new one (StateConflict, as a submitted one does)."""
    if any(n.need_id == need.need_id for n in request.needs):
        return Change(request)
    if request.state is not RequestState.DRAFT:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a draft takes needs")
    if len(request.needs) >= MAX_NEEDS:
        raise StateConflict(f"request {request.request_id} holds {MAX_NEEDS} needs, as many as a request may")
    needs = [*request.needs, need]
    sites = {n.site for n in needs}
    after = _next(request, now, needs=needs, quantity=sum(n.quantity for n in needs),
                  site=needs[0].site if len(sites) == 1 else None,
                  borough=needs[0].borough if len(sites) == 1 else None)
    # A draft is not announced (it is when submitted): stored, not published.
    return Change(after, [(STORED_ONLY, after)])


class Submission(_Model):
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


def approve(request: PurchaseRequest, by: str, kind: ApprovalKind, now: datetime) -> Change[PurchaseRequest]:
    if request.state is not RequestState.SUBMITTED:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a submitted "
                            "request can be approved")
    if by == request.requested_by:
        raise StateConflict(f"no self-approval: {by} raised request {request.request_id} and cannot approve it")
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
    if request.state is not RequestState.SUBMITTED:
        raise StateConflict(f"request {request.request_id} is {request.state.value}; only a submitted "
                            "request can be rejected")
    if by == request.requested_by:
        raise StateConflict(f"{by} raised request {request.request_id}; another approver must decide it")
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


class DeliveredItem(_Model):
    asset_tag: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{2,31}$", strip_whitespace=True)]
    serial_number: ShortText
    os: OperatingSystem
    hardware: Hardware
    applications: list[ApplicationName] = Field(default_factory=list, max_length=200)


class DeliveryNote(_Model):
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


# -- the budget -----------------------------------------------------------------------------


class BudgetLine(_Model):
    year: BudgetYear
    category: SpendCategory
    allocated_pence: Pence


class Commitment(_Model):
    year: BudgetYear
    category: SpendCategory
    classification: SpendClass
    framework_id: str
    value_pence: Pence


class Budget(_Model):
    """The programme budget, in one document: what is allocated by year and category, and
    what each order committed and each delivery spent against it (keyed, so counted once)."""

    budget_id: str
    name: ShortText
    lines: list[BudgetLine]
    commitments: dict[str, Commitment] = Field(default_factory=dict, description="By request id")
    delivered: dict[str, Commitment] = Field(default_factory=dict, description="By delivery id")
    version: int = Field(ge=1)

    def allocated(self, year: str, category: SpendCategory) -> int:
        return sum(line.allocated_pence for line in self.lines if line.year == year and line.category is category)

    def committed(self, year: str, category: SpendCategory) -> int:
        return sum(c.value_pence for c in self.commitments.values() if c.year == year and c.category is category)


def _allocated(budget: Budget, now: datetime) -> tuple[str, BaseModel]:
    return ("procurement.budget.allocated.v1", BudgetAllocatedV1(
        budget_id=budget.budget_id, name=budget.name, total_pence=sum(line.allocated_pence for line in budget.lines),
        lines=[BudgetAllocation(**line.model_dump()) for line in budget.lines], version=budget.version,
        allocated_at=now))


def _check_lines(lines: list[BudgetLine]) -> None:
    seen: set[tuple[str, SpendCategory]] = set()
    for i, line in enumerate(lines):
        if (line.year, line.category) in seen:
            raise RuleBroken(f"{line.year} {line.category.value} is allocated twice", f"lines.{i}")
        seen.add((line.year, line.category))
    if sum(line.allocated_pence for line in lines) > MAX_PENCE:
        raise RuleBroken(f"the lines add up to more than {pounds(MAX_PENCE)}", "lines")


def new_budget(budget_id: str, name: str, lines: list[BudgetLine], now: datetime) -> Change[Budget]:
    _check_lines(lines)
    budget = Budget(budget_id=budget_id, name=name, lines=lines, version=1)
    return Change(budget, [_allocated(budget, now)])


def reallocate(budget: Budget, name: str, lines: list[BudgetLine], now: datetime) -> Change[Budget]:
    """A new allocation; the commitments and spend against the budget stay."""
    _check_lines(lines)
    if budget.name == name and budget.lines == lines:
        return Change(budget)
    after = budget.model_copy(update={"name": name, "lines": lines, "version": budget.version + 1})
    return Change(after, [_allocated(after, now)])


def commit(budget: Budget, request: PurchaseRequest) -> Change[Budget]:
    """Commit an approved request's value against its year and category; refused, with the
    figures, when it would exceed what is left. Committing the same request again changes nothing."""
    if request.request_id in budget.commitments:
        return Change(budget)
    assert request.value_pence is not None and request.budget_year is not None
    year, category, value = request.budget_year, request.category, request.value_pence
    allocated, committed = budget.allocated(year, category), budget.committed(year, category)
    left = allocated - committed
    if value > left:
        raise StateConflict(
            f"budget: ordering request {request.request_id} ({pounds(value)}) would exceed what is left of the "
            f"{year} {category.value} budget: allocated {pounds(allocated)}, committed {pounds(committed)}, "
            f"left {pounds(max(left, 0))}")
    entry = Commitment(year=year, category=category, classification=request.classification,
                       framework_id=request.framework_id, value_pence=value)
    after = budget.model_copy(update={"commitments": {**budget.commitments, request.request_id: entry},
                                      "version": budget.version + 1})
    return Change(after, [(STORED_ONLY, entry)])


def delivered_spend(request: PurchaseRequest, value_pence: int) -> Commitment:
    assert request.budget_year is not None
    return Commitment(year=request.budget_year, category=request.category, classification=request.classification,
                      framework_id=request.framework_id, value_pence=value_pence)


def spend(budget: Budget, delivery_id: str, entry: Commitment) -> Change[Budget]:
    """Record a delivery's value as delivered spend; the same delivery again changes nothing."""
    if delivery_id in budget.delivered:
        return Change(budget)
    after = budget.model_copy(update={"delivered": {**budget.delivered, delivery_id: entry},
                                      "version": budget.version + 1})
    return Change(after, [(STORED_ONLY, entry)])
