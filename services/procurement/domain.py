"""Procurement rules: what the others build on (errors, money and dates), frameworks and
call-off contracts. Purchase requests are in ``purchases.py``, the budget in ``budget.py``.

Pure Python: no I/O, no framework. Each command takes the aggregate as it stands and returns
it changed with the events that announce it (``Change``); an unchanged aggregate records no
event. A command the rules refuse raises ``RuleBroken`` (the input is wrong for the rules:
422, naming the field and the rule) or ``StateConflict`` (the aggregate's state does not
allow it now: 409).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.common import (
    LONDON_BOROUGHS,
    ShortText,
)
from contracts.procurement import (
    AwardRoute,
    ContractAwardedV1,
    ContractExpiringV1,
    ContractSnapshot,
    ContractVariedV1,
    Pence,
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


class StrictModel(BaseModel):
    """Procurement's inputs and aggregates: an unknown field is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


def london_borough(value: str | None) -> str | None:
    """A borough name checked against the London boroughs (None passes)."""
    if value is not None and value not in LONDON_BOROUGHS:
        raise ValueError(f"unknown borough {value!r}; expected a London borough")
    return value


# -- frameworks -----------------------------------------------------------------------------


class Lot(StrictModel):
    name: ShortText
    categories: list[SpendCategory] = Field(min_length=1)
    routes: list[AwardRoute] = Field(min_length=1, description="How call-offs may be awarded")


class FrameworkSpec(StrictModel):
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


class AwardSpec(StrictModel):
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


class Variation(StrictModel):
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
