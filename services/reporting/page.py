"""The programme report: one HTML page with the figures and charts drawn on the server as
inline SVG (no scripts, no external assets; it works offline and can be saved and shared).

Every figure comes from reporting's handlers, the same calls its JSON routes make: the summary
(with the forecast), the daily series and the boroughs, blockers, spend and contracts tables.
Each figure on the page carries ``data-figure`` (its summary field) and ``data-value`` (the
value as JSON gives it), so that the page can be checked against the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from services.reporting.handlers import ReportingHandlers, Summary, Table
from services.runtime.auth import Reader
from services.runtime.http import handlers_of
from services.runtime.openapi import PROTECTED, problem_responses

router = APIRouter(tags=["reporting"])
Handlers = Annotated[ReportingHandlers, Depends(handlers_of("reporting"))]
HTML = "text/html"

WIDTH, HEIGHT, PAD = 760, 300, 50
BAND = (("p50", "#1f6fb2", 0.45), ("p85", "#1f6fb2", 0.28), ("p95", "#1f6fb2", 0.15))


@dataclass(frozen=True, slots=True)
class ReportData:
    summary: Summary
    series: Table
    boroughs: Table
    blockers: Table
    spend: Table
    contracts: Table


async def report_data(handlers: ReportingHandlers, as_of: date | None) -> ReportData:
    async def table(name: str) -> Table:
        return await handlers.table(name, as_of)

    return ReportData(await handlers.summary(as_of), await table("series"), await table("boroughs"),
                      await table("blockers"), await table("spend"), await table("contracts"))


# -- formatting ---------------------------------------------------------------------------------

def gbp(value: float) -> str:
    return f"GBP {value:,.0f}"


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def figure(name: str, value: Any, shown: str) -> str:
    raw = "" if value is None else value.isoformat() if isinstance(value, date) else str(value)
    return f'<span data-figure="{escape(name)}" data-value="{escape(raw)}">{escape(shown)}</span>'


def _text(x: float, y: float, content: str, anchor: str = "start", size: int = 11) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
            f"{escape(content)}</text>")


def _svg(title: str, body: list[str], chart: str, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" data-chart="{chart}" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


# -- charts -------------------------------------------------------------------------------------

def burn_down_chart(series: Table, summary: Summary) -> str:
    """Legacy devices by day; the forecast band from the last count to the 50/85/95% dates;
    the extended-support deadline."""
    legacy_at = series.columns.index("legacy")
    points = [(date.fromisoformat(r[0]), float(r[legacy_at])) for r in series.rows]
    f = summary.forecast
    if not points:
        return _svg("Legacy devices over time: no data yet", [_text(PAD, HEIGHT / 2, "No daily counts yet")],
                    "burn-down")
    deadline = f.deadline if f else None
    ends = [d for d in (f.p50, f.p85, f.p95) if d] if f else []
    first, last = points[0][0], max([points[-1][0], *ends, *([deadline] if deadline else [])])
    span = max((last - first).days, 1)
    top = max(max(c for _, c in points), 1.0)

    def x(d: date) -> float:
        return PAD + (d - first).days / span * (WIDTH - 2 * PAD)

    def y(c: float) -> float:
        return HEIGHT - PAD - c / top * (HEIGHT - 2 * PAD)

    body = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>',
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>',
            _text(PAD - 4, y(top) + 4, f"{top:,.0f}", "end"), _text(PAD - 4, HEIGHT - PAD + 4, "0", "end"),
            _text(PAD, HEIGHT - PAD + 16, first.isoformat()), _text(WIDTH - PAD, HEIGHT - PAD + 16,
                                                                    last.isoformat(), "end")]
    if f:
        start = (x(f.as_of), y(f.remaining))
        for name, colour, opacity in reversed(BAND):
            end = getattr(f, name)
            if end is None:
                continue
            body.append(f'<polygon data-series="forecast-{name}" fill="{colour}" fill-opacity="{opacity}" '
                        f'points="{start[0]:.1f},{start[1]:.1f} {x(end):.1f},{y(0):.1f} '
                        f'{x(f.as_of):.1f},{y(0):.1f}"><title>{name}: {end.isoformat()}</title></polygon>')
    line = " ".join(f"{x(d):.1f},{y(c):.1f}" for d, c in points)
    body.append(f'<polyline data-series="legacy" data-points="{len(points)}" fill="none" stroke="#b22222" '
                f'stroke-width="2" points="{line}"/>')
    if deadline:
        body += [f'<line data-series="deadline" x1="{x(deadline):.1f}" y1="{PAD}" x2="{x(deadline):.1f}" '
                 f'y2="{HEIGHT - PAD}" stroke="#000" stroke-dasharray="5,4"/>',
                 _text(x(deadline) - 4, PAD - 6, f"support ends {deadline.isoformat()}", "end")]
    return _svg("Legacy devices over time, with the forecast band and the extended-support deadline", body,
                "burn-down")


def bar_chart(chart: str, title: str, bars: list[tuple[str, float, str]], scale: float | None = None) -> str:
    """Horizontal bars: (label, value, value as shown)."""
    row = 22
    height = max(len(bars), 1) * row + 30
    biggest = scale or max([v for _, v, _ in bars] + [1e-9])
    left, right = 230, 110
    body = []
    for i, (label, value, shown) in enumerate(bars):
        top = 10 + i * row
        length = max(value, 0) / biggest * (WIDTH - left - right)
        body += [_text(left - 6, top + 14, label, "end"),
                 f'<rect data-bar="{escape(label)}" x="{left}" y="{top + 2}" width="{length:.1f}" height="{row - 6}" '
                 f'fill="#1f6fb2"/>', _text(left + length + 4, top + 14, shown)]
    if not bars:
        body.append(_text(left, 24, "Nothing yet"))
    return _svg(title, body, chart, height)


def _table_html(table: Table, columns: list[str] | None = None) -> str:
    wanted = columns or table.columns
    at = [table.columns.index(c) for c in wanted]
    head = "".join(f"<th>{escape(c)}</th>" for c in wanted)
    rows = "".join("<tr>" + "".join(f"<td>{escape('' if r[i] is None else str(r[i]))}</td>" for i in at) + "</tr>"
                   for r in table.rows)
    return f'<table data-table="{escape(table.name)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


# -- the page -----------------------------------------------------------------------------------

STYLE = ("body{font-family:sans-serif;margin:2em;color:#222;max-width:900px}"
         "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;"
         "text-align:right}th{background:#eee}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}"
         "dt{font-weight:bold}")


def render(data: ReportData) -> str:
    s, f = data.summary, data.summary.forecast
    facts = [
        ("Devices in the estate", figure("devices", s.devices, f"{s.devices:,}")),
        ("Legacy (Windows XP) devices remaining", figure("legacy_remaining", s.legacy_remaining,
                                                         f"{s.legacy_remaining:,} of {s.legacy_at_start:,}")),
        ("Migrated", figure("migrated", s.migrated, f"{s.migrated:,}")),
        ("Extended-support cost to date", figure("extended_support_cost_gbp", s.extended_support_cost_gbp,
                                                 gbp(s.extended_support_cost_gbp))),
        ("Cost of each week of delay", figure("cost_per_week_of_delay_gbp", s.cost_per_week_of_delay_gbp,
                                              gbp(s.cost_per_week_of_delay_gbp))),
        ("Spend committed", figure("spend_committed_gbp", s.spend_committed_gbp, gbp(s.spend_committed_gbp))),
        ("Budget", figure("budget_gbp", s.budget_gbp, gbp(s.budget_gbp))),
        ("Share of the budget committed", figure("budget_share_committed", s.budget_share_committed,
                                                 share(s.budget_share_committed))),
        ("Legacy share of classified spend (baseline 80%)",
         figure("legacy_spend_share", s.legacy_spend_share, share(s.legacy_spend_share))),
    ]
    if f:
        facts += [(f"Forecast completion, {p}%", figure(f"forecast.p{p}", getattr(f, f"p{p}"),
                                                        str(getattr(f, f"p{p}") or "not within the horizon")))
                  for p in (50, 85, 95)]
        facts.append((f"Probability of finishing by {f.deadline.isoformat()}",
                      figure("forecast.probability_by_deadline", f.probability_by_deadline,
                             share(f.probability_by_deadline))))
    else:
        facts.append(("Forecast", escape(s.forecast_note or "none")))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in facts)

    b = data.boroughs
    progress = [(r[0], float(r[b.columns.index("progress")] or 0.0), share(r[b.columns.index("progress")]))
                for r in b.rows]
    bl = data.blockers
    blockers = [(r[1], float(r[2]), f"{r[2]:,} devices") for r in bl.rows]
    sp = data.spend
    frameworks = [(r[1], float(r[2]) + float(r[4]), gbp(float(r[2]) + float(r[4]))) for r in sp.rows
                  if r[0] == "framework"]
    budget = [("committed", s.spend_committed_gbp, gbp(s.spend_committed_gbp)),
              ("budget", s.budget_gbp, gbp(s.budget_gbp))]
    classes = [(r[1], float(r[2]) + float(r[4]), gbp(float(r[2]) + float(r[4]))) for r in sp.rows
               if r[0] == "class"]
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>Windows XP migration: programme report</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>Windows XP migration: programme report</h1><p>Figures as of {figure('as_of', s.as_of, str(s.as_of))}"
        ", from the reporting service's read model.</p>",
        f"<h2>Summary</h2><dl>{dl}</dl>",
        "<h2>Legacy devices over time</h2>", burn_down_chart(data.series, s),
        "<p>Shaded: the forecast band (darkest 50%, then 85%, 95%); dashed: the end of extended support.</p>",
        "<h2>Progress by borough</h2>",
        bar_chart("boroughs", "Share of each borough's legacy devices migrated or replaced", progress, 1.0),
        _table_html(b, ["borough", "devices", "legacy", "legacy_at_start", "migrated", "progress"]),
        "<h2>Blockers, ranked by what a fix unblocks</h2>",
        bar_chart("blockers", "Devices each application alone blocks", blockers), _table_html(bl),
        "<h2>Money</h2>",
        bar_chart("budget", "Spend committed against the budget", budget),
        bar_chart("frameworks", "Committed and contracted spend by framework", frameworks),
        bar_chart("classes", "Legacy and modern spend (baseline 80/20)", classes),
        _table_html(sp), "<h2>Contracts expiring</h2>", _table_html(data.contracts),
        "</body></html>"])


@router.get("/report", response_class=HTMLResponse, summary="The programme report: one page, charts as SVG",
            description="Burn-down with the forecast band and the deadline, progress by borough, blockers, "
                        "the money. No scripts and no external assets: the page works offline.",
            responses={200: {"content": {HTML: {"schema": {"type": "string"}}}},
                       **problem_responses(*PROTECTED, 422)})
async def report(handlers: Handlers, _: Reader,
                 as_of: Annotated[date | None, Query(description="Figures at the end of this day; default: now")]
                 = None) -> HTMLResponse:
    day = None if as_of is None or as_of >= handlers.today() else as_of
    return HTMLResponse(render(await report_data(handlers, day)))
