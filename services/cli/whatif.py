"""``estate what-if``: ask the platform for a changed plan beside the baseline, show both."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from rich.table import Table

from services.cli.problems import describe


class WhatIfFailed(Exception):
    pass


def parse_fix(text: str) -> dict[str, str]:
    """``APPLICATION=YYYY-MM-DD``"""
    name, sep, day = text.rpartition("=")
    if not sep or not name.strip():
        raise ValueError(f"--fix {text!r}: write it as APPLICATION=YYYY-MM-DD")
    try:
        return {"application": name.strip(), "by": date.fromisoformat(day.strip()).isoformat()}
    except ValueError:
        raise ValueError(f"--fix {text!r}: {day!r} is not a date (YYYY-MM-DD)") from None


def parse_os(text: str) -> dict[str, str]:
    """``[FAMILY:]VERSION`` (Windows when no family): ``10``, ``windows:8.1``."""
    family, sep, version = text.strip().rpartition(":")
    if not version.strip() or (sep and not family.strip()):
        raise ValueError(f"--target-os {text!r}: write it as VERSION or FAMILY:VERSION, e.g. 10 or windows:10")
    return {"family": (family.strip() or "windows").lower(), "version": version.strip()}


def parse_minimum(text: str) -> dict[str, int]:
    """``RAM_MB,DISK_GB,CPU_CORES``"""
    try:
        ram, disk, cores = (int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--target-minimum {text!r}: write it as RAM_MB,DISK_GB,CPU_CORES, e.g. 4096,80,2") from None
    return {"ram_mb": ram, "disk_gb": disk, "cpu_cores": cores}


def request(fixes: list[str], capacity_factor: float | None, daily_capacity: float | None,
            budget_cut_gbp: float, *, target_os: str | None = None, target_minimum: str | None = None,
            replacement_lead_days: int | None = None, device_price_gbp: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"fixes": [parse_fix(f) for f in fixes], "budget_cut_gbp": budget_cut_gbp}
    if capacity_factor is not None:
        body["capacity_factor"] = capacity_factor
    if daily_capacity is not None:
        body["daily_capacity"] = daily_capacity
    if target_os is None:
        if target_minimum is not None or replacement_lead_days is not None or device_price_gbp is not None:
            raise ValueError("--target-minimum, --replacement-lead-days and --device-price go with --target-os")
        return body
    body["target_os"] = parse_os(target_os)
    if target_minimum is not None:
        body["target_minimum"] = parse_minimum(target_minimum)
    if replacement_lead_days is not None:
        body["replacement_lead_days"] = replacement_lead_days
    if device_price_gbp is not None:
        body["device_price_gbp"] = device_price_gbp
    return body


def ask(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response = http.post("/reporting/what-if", json=body)
    except httpx.TransportError as error:
        raise WhatIfFailed(f"the platform isn't reachable at {http.base_url} ({error})") from error
    if response.status_code != 200:
        raise WhatIfFailed(describe(response))
    answer: dict[str, Any] = response.json()
    if answer.get("result") is None:
        raise WhatIfFailed(f"no answer: {answer.get('note')}")
    return answer


def _show(value: Any) -> str:
    if value is None:
        return "not within the horizon"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


ROWS = (("remaining", "Legacy devices now"), ("mean_daily_rate", "Devices a day (mean)"),
        ("p50", "Completion, 50%"), ("p85", "Completion, 85%"), ("p95", "Completion, 95%"),
        ("probability_by_deadline", "P(finished by the deadline)"),
        ("extended_support_cost_to_completion_gbp", "Extended support to completion, GBP"),
        ("budget_gbp", "Budget, GBP"), ("budget_remaining_gbp", "Budget left, GBP"),
        ("over_budget", "Over budget"))
TARGET_ROWS = (("target", "Target OS"), ("target_support_ends", "Target supported until"),
               ("supported_days_after_p50", "Days supported after the 50% date"),
               ("new_devices_needed", "Legacy devices needing a new device"),
               ("new_devices_cost_gbp", "Those new devices, GBP"))


def table(result: dict[str, Any]) -> Table:
    out = Table(title=f"What if (as of {result['as_of']}, deadline {result['deadline']})")
    out.add_column("")
    out.add_column("baseline", justify="right")
    out.add_column("scenario", justify="right")
    rows = ROWS + (TARGET_ROWS if result["baseline"].get("target") else ())
    for key, label in rows:
        out.add_row(label, _show(result["baseline"].get(key)), _show(result["scenario"].get(key)))
    earlier = result["p50_earlier_by_days"]
    out.caption = ("50% date: " + ("not comparable" if earlier is None else
                                   f"{earlier} days earlier" if earlier >= 0 else f"{-earlier} days later")
                   + "; " + "; ".join(result["assumptions"]))
    return out
