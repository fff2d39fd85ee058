"""Budget rules: the programme budget's allocation by year and category, commitments made by
orders and spend made by deliveries. Pure, as ``domain.py`` is."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.common import (
    ShortText,
)
from contracts.procurement import (
    BudgetAllocatedV1,
    BudgetAllocation,
    BudgetYear,
    Pence,
    SpendCategory,
    SpendClass,
)
from services.procurement.domain import MAX_PENCE, STORED_ONLY, RuleBroken, StateConflict, StrictModel, pounds
from services.procurement.purchases import PurchaseRequest
from services.runtime.changes import Change

# -- the budget -----------------------------------------------------------------------------


class BudgetLine(StrictModel):
    year: BudgetYear
    category: SpendCategory
    allocated_pence: Pence


class Commitment(StrictModel):
    year: BudgetYear
    category: SpendCategory
    classification: SpendClass
    framework_id: str
    value_pence: Pence


class Budget(StrictModel):
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
