"""The programme report page on the embedded platform: valid HTML, no external references,
SVG charts, and the same figures as the reporting JSON API."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
from fastapi import FastAPI

from services.runtime.clock import FixedClock
from tests.api.test_reporting_api import eventually, spec

VOID = {"meta", "br", "img", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class Page(HTMLParser):
    """Checks nesting (every element closed, in order) and collects what the test looks at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.figures: dict[str, str] = {}
        self.cells: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if "data-figure" in a:
            self.figures[str(a["data-figure"])] = str(a["data-value"])
        if tag == "table":
            self._table = a.get("data-table")
            self.cells.setdefault(str(self._table), [])
        if tag == "tr" and self._table:
            self._row = []
        if tag == "td":
            self._cell = []
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))  # <x/>: nothing to close

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
            return
        self.open.pop()
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        if tag == "tr" and self._table and self._row:
            self.cells[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


async def test_the_report_page_is_self_contained_html_with_charts_and_the_apis_figures(
        app: FastAPI, writer: httpx.AsyncClient, reader: httpx.AsyncClient, clock: FixedClock) -> None:
    for n in range(30):
        assert (await writer.post("/devices", json=spec(f"MPS-D-{n:04d}", borough="Camden" if n % 3 else "Barnet"))
                ).status_code == 201
    for n in range(14):  # a device a day leaves Windows XP: a burn-down and a forecast
        clock.advance(timedelta(days=1))
        changed = await writer.patch(f"/devices/MPS-D-{n:04d}", json={"os": {"family": "windows", "version": "8.1"}})
        assert changed.status_code == 200, changed.text
    clock.advance(timedelta(hours=1))
    summary = await eventually(reader, "/reporting/summary", lambda b: b["legacy_remaining"] == 16)
    assert summary["forecast"] is not None

    answer = await reader.get("/report")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    text = answer.text
    assert text.startswith("<!DOCTYPE html>")
    page = parse(text)
    assert page.errors == [] and page.open == []

    # self-contained: no scripts, stylesheets or fetched resources
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "img"), tag
        for name in ("src", "href"):
            assert not str(attrs.get(name) or "").lower().startswith(("http://", "https://", "//")), (tag, attrs)
    assert "<script" not in text.lower() and "@import" not in text and "url(" not in text

    charts = {str(a["data-chart"]) for t, a in page.tags if t == "svg"}
    assert {"burn-down", "boroughs", "blockers", "budget", "frameworks", "classes"} <= charts
    series = {str(a["data-series"]): a for t, a in page.tags if "data-series" in a}
    assert {"legacy", "deadline", "forecast-p50", "forecast-p85", "forecast-p95"} <= series.keys()
    rows = (await reader.get("/reporting/tables/series")).json()["rows"]
    assert series["legacy"]["data-points"] == str(len(rows))
    assert len(str(series["legacy"]["points"]).split()) == len(rows) == 15

    # the figures are the API's
    for name in ("devices", "legacy_remaining", "migrated", "extended_support_cost_gbp",
                 "cost_per_week_of_delay_gbp", "spend_committed_gbp", "budget_gbp", "budget_share_committed",
                 "legacy_spend_share", "as_of"):
        assert page.figures[name] == as_text(summary[name]), name
    for name in ("p50", "p85", "p95", "probability_by_deadline"):
        assert page.figures[f"forecast.{name}"] == as_text(summary["forecast"][name]), name
    assert page.figures["legacy_remaining"] == "16" and float(page.figures["extended_support_cost_gbp"]) > 0

    boroughs = (await reader.get("/reporting/tables/boroughs")).json()
    at = [boroughs["columns"].index(c) for c in ("borough", "devices", "legacy", "legacy_at_start", "migrated",
                                                   "progress")]
    assert page.cells["boroughs"] == [[as_text(r[i]) for i in at] for r in boroughs["rows"]]
    assert {r[0] for r in page.cells["boroughs"]} == {"Camden", "Barnet"}
    bars = {str(a["data-bar"]) for t, a in page.tags if t == "rect"}
    assert {"Camden", "Barnet", "committed", "budget"} <= bars
    for name in ("blockers", "spend", "contracts"):
        table = (await reader.get(f"/reporting/tables/{name}")).json()
        assert page.cells[name] == [[as_text(v) for v in r] for r in table["rows"]], name


async def test_the_report_page_needs_a_reader(anonymous: httpx.AsyncClient, reader: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/report")).status_code == 401
    past = await reader.get("/report", params={"as_of": "2015-01-01"})
    assert past.status_code == 200 and "<svg" in past.text
    assert (await reader.get("/report", params={"as_of": "not a day"})).status_code == 422
