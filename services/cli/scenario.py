"""``estate scenario``: the programme run forward on a simulated clock, with a progress bar
while it runs and the figures (from the reporting service) at the end."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.runtime.settings import Settings
from services.scenario.driver import Progress as DayDone
from services.scenario.driver import ScenarioResult, run_scenario
from services.scenario.plan import ScenarioPlan


def run(plan: ScenarioPlan, console: Console, show_progress: bool = True,
        settings: Settings | None = None) -> ScenarioResult:
    """The scenario with a progress bar; embedded, or on the real stack ``settings`` name."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[day]}  XP {task.fields[legacy]:>6} (plan {task.fields[target]:>6})"),
                  TimeElapsedColumn(), console=console, disable=not show_progress) as bar:
        task = bar.add_task("programme", total=len(plan.days()), day="", legacy=0, target=0)

        def advanced(p: DayDone) -> None:
            bar.update(task, completed=p.done, day=p.day.isoformat(), legacy=p.legacy, target=p.target)

        return run_scenario(plan, advanced, settings)


def summary_table(result: ScenarioResult) -> Table:
    s = result.summary
    table = Table(title=f"The programme on {s['as_of']} (scale {result.plan.scale:g}, seed {result.plan.seed})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    forecast = s.get("forecast") or {}
    rows: list[tuple[str, Any]] = [
        ("devices in the estate", s["devices"]), ("legacy (Windows XP) remaining", s["legacy_remaining"]),
        ("legacy at the start", s["legacy_at_start"]), ("migrated", s["migrated"]), ("retired", s["retired"]),
        ("disposed", s["disposed"]), ("extended-support cost to date", f"GBP {s['extended_support_cost_gbp']:,.0f}"),
        ("spend committed", f"GBP {s['spend_committed_gbp']:,.0f}"),
        ("forecast completion (p50)", forecast.get("p50") or s.get("forecast_note") or "-"),
        ("waves planned", result.waves), ("orders placed", result.orders), ("events", result.events),
        ("wall time", f"{result.wall_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    for kind, devices, *_ in result.kinds:
        table.add_row(f"devices: {kind}", str(devices))
    return table


def calibration_table(result: ScenarioResult) -> Table:
    table = Table(title="Calibration against the published figures (scaled)")
    for column in ("figure", "on", "published", "reporting", "error", "ok"):
        table.add_column(column)
    for c in result.checks:
        table.add_row(c.what, c.on.isoformat(), f"{c.expected:,.0f}", f"{c.actual:,.0f}", f"{c.error:+.2%}",
                      "yes" if c.ok else f"NO (> {c.tolerance:.0%})")
    return table


def write_json(result: ScenarioResult, out: Path) -> None:
    body = {"plan": {"seed": result.plan.seed, "scale": result.plan.scale, "end": result.plan.end.isoformat()},
            "summary": result.summary, "kinds": result.kinds, "deliveries": result.deliveries,
            "calibration": [{"what": c.what, "on": c.on, "expected": c.expected, "actual": c.actual,
                             "error": c.error, "ok": c.ok} for c in result.checks],
            "legacy_by_day": {d.isoformat(): v for d, v in sorted(result.legacy_by_day.items())},
            "events": result.events, "wall_s": result.wall_s}
    out.write_text(json.dumps(body, indent=1, default=lambda v: v.isoformat() if isinstance(v, date) else str(v)))
