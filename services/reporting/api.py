"""Reporting routes: the programme's figures as JSON, every table also as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from contracts.common import OperatingSystem
from services.reporting.forecast import Forecast
from services.reporting.handlers import TABLES, ReportingHandlers, Summary, Table
from services.reporting.replay import ReplayReport
from services.reporting.retarget import Minimum, Retarget, minimum_for, plan
from services.reporting.whatif import Changes, Fix, WhatIfResult, evaluate
from services.runtime.auth import Admin, Reader
from services.runtime.errors import FieldError, InvalidInput
from services.runtime.http import handlers_of
from services.runtime.openapi import PROTECTED, problem_responses

router = APIRouter(prefix="/reporting", tags=["reporting"])
Handlers = Annotated[ReportingHandlers, Depends(handlers_of("reporting"))]
AsOf = Annotated[date | None, Query(description="Figures at the end of this day (from the daily read model); "
                                               "default: now. A date after today means today.")]
CSV = "text/csv"

TableName = StrEnum("TableName", {name: name for name in TABLES})  # type: ignore[misc]


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class ForecastAnswer(BaseModel):
    forecast: Forecast | None
    note: str | None = Field(description="Why there is no forecast (too little data), else null")


class ReplayAnswer(BaseModel):
    report: ReplayReport
    equal_to_live: bool
    differences: list[str] = Field(description="The first differences from the live read model")


def _day(handlers: ReportingHandlers, as_of: date | None) -> date | None:
    return None if as_of is None or as_of >= handlers.today() else as_of


def csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return out.getvalue()


@router.get("/summary", response_model=Summary, summary="Legacy devices remaining, cost, spend and forecast",
            responses=problem_responses(*PROTECTED, 422))
async def summary(handlers: Handlers, _: Reader, as_of: AsOf = None) -> Summary:
    return await handlers.summary(_day(handlers, as_of))


@router.get("/forecast", response_model=ForecastAnswer, summary="Completion date (50/85/95%) and P(deadline)",
            description="Monte Carlo (block bootstrap of weekly burn-down over the recent days, fixed seed) "
                        "from the daily legacy count up to as_of.",
            responses=problem_responses(*PROTECTED, 422))
async def get_forecast(handlers: Handlers, _: Reader, as_of: AsOf = None) -> ForecastAnswer:
    result, note = await handlers.forecast(_day(handlers, as_of))
    return ForecastAnswer(forecast=result, note=note)


@router.get("/tables/{name}", response_model=Table, summary="One table of figures, as JSON or CSV",
            description="Tables: " + ", ".join(TABLES) + ". `format=csv` gives CSV "
                        "with a header row.",
            responses={200: {"content": {CSV: {"schema": {"type": "string"}}}},
                       **problem_responses(*PROTECTED, 422)})
async def table(name: TableName, handlers: Handlers, _: Reader, as_of: AsOf = None,
                format: Format | None = None) -> Any:
    result = await handlers.table(str(name.value), _day(handlers, as_of))
    if format is Format.CSV:
        return Response(csv_text(result), media_type=CSV,
                        headers={"Content-Disposition": f'attachment; filename="{result.name}.csv"'})
    return result


@router.post("/replay", response_model=ReplayAnswer,
             summary="Rebuild every projection from the topics into a fresh read model; compare with live",
             responses=problem_responses(*PROTECTED))
async def replay(handlers: Handlers, _: Admin) -> ReplayAnswer:
    report, differences = await handlers.replay()
    return ReplayAnswer(report=report, equal_to_live=not differences, differences=differences)


class FixChange(BaseModel):
    application: str = Field(min_length=1, max_length=200, description="A blocking application (blockers table)")
    by: date = Field(description="The day its devices are unblocked and migrated by")


class TargetMinimum(BaseModel):
    model_config = {"extra": "forbid"}

    ram_mb: int = Field(ge=0, le=1024 * 1024)
    disk_gb: int = Field(ge=0, le=100_000)
    cpu_cores: int = Field(ge=1, le=256)


class WhatIfRequest(BaseModel):
    model_config = {"extra": "forbid"}

    fixes: list[FixChange] = Field(default=[], max_length=50)
    capacity_factor: float | None = Field(default=None, gt=0, le=100,
                                          description="Multiply the observed burn-down (2 = twice the engineers)")
    daily_capacity: float | None = Field(default=None, gt=0, le=1_000_000,
                                         description="Devices a day on average instead (not with capacity_factor)")
    budget_cut_gbp: float = Field(default=0.0, ge=0, le=1e12)
    target_os: OperatingSystem | None = Field(
        default=None, description="Another target OS, one of the policy's lifecycle table (/reporting/tables/policy)")
    target_minimum: TargetMinimum | None = Field(
        default=None, description="The force's minimum for target_os; default: the one in force, raised to what "
                                  "target_os needs")
    replacement_lead_days: int = Field(default=56, ge=0, le=3650,
                                       description="Days a new device takes to arrive (with target_os)")
    device_price_gbp: float | None = Field(default=None, gt=0, le=1e7,
                                           description="Price of a new device (with target_os); default: the mean "
                                                       "of the devices delivered so far")


class WhatIfAnswer(BaseModel):
    result: WhatIfResult | None
    note: str | None = Field(description="Why there is no answer (too little data), else null")


@router.post("/what-if", response_model=WhatIfAnswer,
             summary="Baseline and a changed plan side by side: forecast, P(deadline), cost; nothing stored",
             description="Changes: applications fixed by a date, a capacity change, a budget cut, another "
                         "target OS. "
                         "The model is described in services/reporting/whatif.py.",
             responses=problem_responses(*PROTECTED, 422))
async def what_if(body: WhatIfRequest, handlers: Handlers, _: Reader) -> WhatIfAnswer:
    changes = Changes(fixes=tuple(Fix(f.application, f.by) for f in body.fixes),
                      capacity_factor=body.capacity_factor, daily_capacity=body.daily_capacity,
                      budget_cut_gbp=body.budget_cut_gbp)
    if changes.capacity_factor is not None and changes.daily_capacity is not None:
        raise InvalidInput("give capacity_factor or daily_capacity, not both",
                           [FieldError("body.daily_capacity", "not with capacity_factor")])
    blockers = await handlers.table("blockers")
    unblocks = {str(r[1]): int(r[2]) for r in blockers.rows}
    unknown = [i for i, f in enumerate(body.fixes) if f.application not in unblocks]
    if unknown:
        raise InvalidInput("not a blocking application now (see /reporting/tables/blockers)",
                           [FieldError(f"body.fixes.{i}.application", "not a blocking application now")
                            for i in unknown])
    retarget = await _retarget(body, handlers) if body.target_os is not None else None
    summary = await handlers.summary()
    series = await handlers.legacy_series()
    try:
        result = evaluate(series, unblocks, changes, committed_gbp=summary.spend_committed_gbp,
                          budget_gbp=summary.budget_gbp, settings=handlers.config.forecast,
                          prices=handlers.config.prices, retarget=retarget)
    except ValueError as error:
        return WhatIfAnswer(result=None, note=str(error))
    return WhatIfAnswer(result=result, note=None)


async def _retarget(body: WhatIfRequest, handlers: ReportingHandlers) -> Retarget:
    """Both targets' plans for the legacy devices still in the estate, from the read model.
    InvalidInput (422): an OS the policy's lifecycle table does not list, or no policy yet."""
    assert body.target_os is not None
    facts = await handlers.target_facts()
    wanted = f"{body.target_os.family.value}:{body.target_os.version}"
    known = ", ".join(sorted(facts.lifecycle)) or "none: no policy with a lifecycle table has been published"
    if wanted not in facts.lifecycle:
        raise InvalidInput(f"{wanted} is not in the migration policy's lifecycle table (known: {known})",
                           [FieldError("body.target_os", f"not in the lifecycle table; known: {known}")])
    if facts.target is None or facts.target not in facts.lifecycle:
        raise InvalidInput(f"the target in force ({facts.target or 'none'}) is not in the lifecycle table: "
                           "nothing to compare with", [FieldError("body.target_os", "no target in force to compare")])
    needs, current = facts.lifecycle[wanted], facts.lifecycle[facts.target]
    given = Minimum(**body.target_minimum.model_dump()) if body.target_minimum else None
    return Retarget(baseline=plan(facts.hardware, current, facts.minimum),
                    scenario=plan(facts.hardware, needs, minimum_for(facts.minimum, needs, given)),
                    device_price_gbp=body.device_price_gbp or facts.device_price_gbp,
                    lead_days=body.replacement_lead_days)
