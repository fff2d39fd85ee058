"""What-if planning, pure: changes to the plan evaluated from the current figures, side by side
with the baseline, with reporting's own forecast and cost code. Nothing stored is touched.

The model, stated so that its answers can be judged:

* Baseline: reporting's forecast (the block bootstrap of the recent weekly burn-down,
  ``forecast.forecast``) from the daily legacy count, exactly what ``/reporting/forecast`` says.
* A capacity change scales the burn-down the futures are drawn from: ``capacity_factor``
  multiplies every observed daily fall; ``daily_capacity`` is the same with the factor that
  makes the mean daily rate that many devices.
* An application fixed by a date: the devices it alone blocks (reporting's blockers table,
  ``unblocks_devices``) leave the legacy count by that date, as a batch of their own; the rest
  burn down as the futures say. Each completion date is then the later of the futures' date
  and the last fix date (so a percentile is the later of the two), and the probability of
  meeting the deadline is the futures' when every fix is on or before the deadline, else 0.
* A budget cut lowers the budget the committed spend is measured against; it does not change
  the burn-down (the figures do not say how spend turns into capacity).
* Extended-support cost to completion: the cost so far plus the legacy count falling in a
  straight line from today's count to zero on the 50% completion date (``cost.cost_to_date``).
* A different target OS (``retarget.Retarget``, built from the events: the remaining legacy
  devices' hardware, the policy's lifecycle table and minimum): each side counts the remaining
  legacy devices that need a new device (replace or dispose) under its target. The difference,
  at the price of a device, is charged to the scenario's budget (a saving when fewer are
  needed). When more devices need a new one, they cannot leave before it arrives: each
  completion date is at least today plus the replacement lead time, and the deadline is missed
  if that is after it; fewer do not speed up the burn-down (the observed rate is kept). Each
  side shows its target's end of support and how long the target stays supported after the 50%
  date. Application compatibility is taken as the catalogue's (it is not kept per OS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from services.reporting.cost import SupportPrices, cost_to_date
from services.reporting.forecast import Forecast, ForecastSettings, forecast
from services.reporting.retarget import Retarget, TargetPlan


@dataclass(frozen=True, slots=True)
class Fix:
    application: str
    by: date


@dataclass(frozen=True, slots=True)
class Changes:
    fixes: tuple[Fix, ...] = ()
    capacity_factor: float | None = None
    daily_capacity: float | None = None
    budget_cut_gbp: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    remaining: int
    mean_daily_rate: float
    p50: date | None
    p85: date | None
    p95: date | None
    probability_by_deadline: float
    extended_support_cost_to_completion_gbp: float | None
    """At the 50% completion date; None when that is not within the forecast's horizon."""
    budget_gbp: float
    budget_remaining_gbp: float
    over_budget: bool
    target: str | None = None
    """With a target OS change only (else None, as the four below): the target, ``family:version``."""
    target_support_ends: date | None = None
    supported_days_after_p50: int | None = None
    new_devices_needed: int | None = None
    """Remaining legacy devices this target cannot take in place (replace + dispose)."""
    new_devices_cost_gbp: float | None = None
    """Those devices at the price of a device; None when the price is unknown."""


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    as_of: date
    deadline: date
    baseline: Outcome
    scenario: Outcome
    p50_earlier_by_days: int | None
    """Baseline p50 minus scenario p50 (negative: later); None when either is not within the horizon."""
    unblocked_devices: int
    assumptions: list[str] = field(default_factory=list)
    extra_new_devices: int | None = None
    """With a target OS change: the scenario's new devices minus the baseline's."""


def scaled(series: Sequence[tuple[date, float]], factor: float) -> list[tuple[date, float]]:
    """The series with every daily fall multiplied by ``factor`` and the last count kept."""
    ordered = sorted(series)
    last = ordered[-1][1]
    return [(d, last + factor * (c - last)) for d, c in ordered]


def shifted(series: Sequence[tuple[date, float]], by: float) -> list[tuple[date, float]]:
    """The series with ``by`` fewer devices every day: the same falls, a smaller remainder."""
    return [(d, c - by) for d, c in sorted(series)]


def cost_to_completion(series: Sequence[tuple[date, float]], completion: date | None,
                       prices: SupportPrices) -> float | None:
    if completion is None:
        return None
    ordered = sorted(series)
    as_of, remaining = ordered[-1]
    days = max((completion - as_of).days, 0)
    projected = [(as_of + timedelta(days=i), remaining * (1 - i / days)) for i in range(1, days + 1)] if days else []
    return round(cost_to_date([*ordered, *projected], prices, max(completion, as_of)), 2)


def _money(budget_gbp: float, committed_gbp: float) -> tuple[float, float, bool]:
    return budget_gbp, budget_gbp - committed_gbp, committed_gbp > budget_gbp


def _outcome(f: Forecast, remaining: int, cost: float | None, budget: tuple[float, float, bool],
             rate: float, target: TargetPlan | None = None, price: float | None = None) -> Outcome:
    targeted: dict[str, object] = {}
    if target is not None:
        targeted = {"target": target.target, "target_support_ends": target.support_ends,
                    "supported_days_after_p50": (target.support_ends - f.p50).days if f.p50 else None,
                    "new_devices_needed": target.new_devices,
                    "new_devices_cost_gbp": None if price is None else round(target.new_devices * price, 2)}
    return Outcome(remaining=remaining, mean_daily_rate=rate, p50=f.p50, p85=f.p85, p95=f.p95,
                   probability_by_deadline=f.probability_by_deadline,
                   extended_support_cost_to_completion_gbp=cost, budget_gbp=budget[0],
                   budget_remaining_gbp=budget[1], over_budget=budget[2], **targeted)  # type: ignore[arg-type]


def _later(d: date | None, fix: date | None) -> date | None:
    return d if d is None or fix is None else max(d, fix)


def evaluate(series: Sequence[tuple[date, float]], blockers: dict[str, int], changes: Changes, *,
             committed_gbp: float, budget_gbp: float, settings: ForecastSettings | None = None,
             prices: SupportPrices | None = None, retarget: Retarget | None = None) -> WhatIfResult:
    """Baseline and scenario from the daily legacy series, the devices each blocking application
    alone blocks, and the committed spend (and, for a target OS change, both targets' plans).
    ValueError: too little data, an application that blocks nothing now, a capacity that is not
    positive, or both kinds of capacity change."""
    settings = settings or ForecastSettings()
    prices = prices or SupportPrices()
    unknown = sorted({f.application for f in changes.fixes} - blockers.keys())
    if unknown:
        raise ValueError(f"not a blocking application now: {', '.join(unknown)}")
    if changes.capacity_factor is not None and changes.daily_capacity is not None:
        raise ValueError("give capacity_factor or daily_capacity, not both")
    base = forecast(series, settings)
    remaining = base.remaining

    factor = changes.capacity_factor
    if changes.daily_capacity is not None:
        if base.mean_daily_rate <= 0:
            raise ValueError("the legacy count has not fallen in the forecast window: no rate to scale")
        factor = changes.daily_capacity / base.mean_daily_rate
    if factor is not None and factor <= 0:
        raise ValueError("the capacity must be more than zero")
    adjusted = scaled(series, factor) if factor is not None else sorted(series)
    fixed = sorted({f.application for f in changes.fixes})
    batch = min(sum(blockers[a] for a in fixed), remaining)
    last_fix = max((f.by for f in changes.fixes), default=None)
    extra = retarget.extra_new_devices if retarget else 0
    arrive = base.as_of + timedelta(days=retarget.lead_days) if retarget and extra > 0 else None
    floor = max((d for d in (last_fix, arrive) if d is not None), default=None)
    raw = forecast(shifted(adjusted, batch), settings)
    by_deadline = raw.probability_by_deadline if floor is None or floor <= settings.deadline else 0.0
    scen = Forecast(as_of=raw.as_of, remaining=remaining, method=raw.method, window_days=raw.window_days,
                    mean_daily_rate=raw.mean_daily_rate, p50=_later(raw.p50, floor),
                    p85=_later(raw.p85, floor), p95=_later(raw.p95, floor), deadline=raw.deadline,
                    probability_by_deadline=by_deadline, days_left_p50=None)

    price = retarget.device_price_gbp if retarget else None
    extra_cost = extra * price if price is not None else 0.0
    baseline = _outcome(base, remaining, cost_to_completion(series, base.p50, prices),
                        _money(budget_gbp, committed_gbp), base.mean_daily_rate,
                        retarget.baseline if retarget else None, price)
    scenario = _outcome(scen, remaining, cost_to_completion(series, scen.p50, prices),
                        _money(budget_gbp - changes.budget_cut_gbp, committed_gbp + extra_cost), raw.mean_daily_rate,
                        retarget.scenario if retarget else None, price)
    earlier = (base.p50 - scen.p50).days if base.p50 and scen.p50 else None
    assumptions = [base.method]
    if factor is not None:
        assumptions.append(f"every observed daily fall multiplied by {factor:.3f}")
    if fixed:
        assumptions.append(f"{batch} devices that only {', '.join(fixed)} block(s) leave by {last_fix}; "
                           "the rest burn down as before")
    if changes.budget_cut_gbp:
        assumptions.append("a budget cut changes the money only, not the burn-down")
    if retarget:
        assumptions += _retarget_assumptions(retarget, arrive)
    return WhatIfResult(as_of=base.as_of, deadline=base.deadline, baseline=baseline, scenario=scenario,
                        p50_earlier_by_days=earlier, unblocked_devices=batch, assumptions=assumptions,
                        extra_new_devices=extra if retarget else None)


def _retarget_assumptions(r: Retarget, arrive: date | None) -> list[str]:
    m = r.scenario.minimum
    out = [f"target {r.scenario.target} instead of {r.baseline.target}, with the minimum "
           f"RAM {m.ram_mb} MB, disk {m.disk_gb} GB, {m.cpu_cores} CPU cores; the remaining legacy devices "
           "judged on their hardware as migration does (cannot run the OS: dispose; below the minimum: replace); "
           "application compatibility as the catalogue has it"]
    extra = r.extra_new_devices
    if extra > 0:
        out.append(f"{extra} more devices need a new device; they leave no earlier than {arrive} "
                   f"({r.lead_days} days' replacement lead time)")
    elif extra < 0:
        out.append(f"{-extra} fewer devices need a new device; the burn-down keeps its observed rate")
    if r.device_price_gbp is None:
        out.append("no price for a device (no deliveries yet, none given): the budget is left as it is")
    else:
        out.append(f"a new device costs GBP {r.device_price_gbp:,.2f}; the difference is charged to the budget")
    return out
