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

from services.reporting.forecast import Forecast
from services.reporting.handlers import TABLES, ReportingHandlers, Summary, Table
from services.reporting.replay import ReplayReport
from services.runtime.auth import Admin, Reader
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
