"""What-if planning, pure: the baseline is reporting's forecast; each change moves it as the
model says."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.reporting.cost import SupportPrices, cost_to_date
from services.reporting.forecast import ForecastSettings, forecast
from services.reporting.whatif import Changes, Fix, cost_to_completion, evaluate

START = date(2015, 6, 1)
SETTINGS = ForecastSettings(runs=2000, deadline=date(2016, 6, 1))


def burn_down(days: int = 98, start_count: int = 3000) -> list[tuple[date, float]]:
    """12 devices each weekday, 3 each weekend day: 66 a week."""
    out, count = [(START, float(start_count))], float(start_count)
    for i in range(1, days + 1):
        day = START + timedelta(days=i)
        count -= 12 if day.weekday() < 5 else 3
        out.append((day, count))
    return out


SERIES = burn_down()
AS_OF, REMAINING = SERIES[-1]
RATE = 66 / 7


def run(changes: Changes, committed: float = 0.0, budget: float = 1_000_000.0):  # type: ignore[no-untyped-def]
    return evaluate(SERIES, {"AWARE": 700, "IDENT1": 50}, changes, committed_gbp=committed, budget_gbp=budget,
                    settings=SETTINGS)


def test_no_change_is_the_baseline_and_the_baseline_is_reportings_forecast() -> None:
    result = run(Changes())
    expected = forecast(SERIES, SETTINGS)
    assert (result.baseline.p50, result.baseline.p85, result.baseline.p95) == (expected.p50, expected.p85, expected.p95)
    assert result.baseline.probability_by_deadline == expected.probability_by_deadline
    assert result.scenario == result.baseline and result.p50_earlier_by_days == 0
    assert result.baseline.remaining == int(REMAINING) == 2_076


def test_fixing_the_top_blocker_moves_the_forecast_earlier_by_its_devices_over_the_rate() -> None:
    result = run(Changes(fixes=(Fix("AWARE", AS_OF + timedelta(days=30)),)))
    assert result.unblocked_devices == 700
    # a constant weekly burn-down: every future is the same, 700 devices fewer is 700 / rate days sooner
    assert result.p50_earlier_by_days is not None and abs(result.p50_earlier_by_days - 700 / RATE) <= 7
    assert result.scenario.p95 is not None and result.baseline.p95 is not None
    assert result.scenario.p95 < result.baseline.p95
    assert result.scenario.extended_support_cost_to_completion_gbp is not None
    assert result.baseline.extended_support_cost_to_completion_gbp is not None
    assert result.scenario.extended_support_cost_to_completion_gbp < \
        result.baseline.extended_support_cost_to_completion_gbp


def test_a_fix_after_everything_else_sets_the_date_and_after_the_deadline_misses_it() -> None:
    late = SETTINGS.deadline + timedelta(days=1)
    result = run(Changes(fixes=(Fix("AWARE", late),)))
    assert result.scenario.p50 == late and result.scenario.probability_by_deadline == 0.0
    assert result.baseline.probability_by_deadline == 1.0  # 2,076 at 66 a week: ~32 weeks, before June 2016


def test_capacity_doubled_halves_the_time_left() -> None:
    base = run(Changes())
    for changes in (Changes(capacity_factor=2.0), Changes(daily_capacity=2 * RATE)):
        result = run(changes)
        assert result.scenario.mean_daily_rate == pytest.approx(2 * RATE)
        assert base.baseline.p50 is not None and result.scenario.p50 is not None
        left = (base.baseline.p50 - AS_OF).days
        assert abs((result.scenario.p50 - AS_OF).days - left / 2) <= 4


def test_a_budget_cut_changes_the_money_not_the_forecast() -> None:
    result = run(Changes(budget_cut_gbp=600_000), committed=500_000)
    assert result.baseline.budget_remaining_gbp == 500_000 and not result.baseline.over_budget
    assert result.scenario.budget_gbp == 400_000 and result.scenario.over_budget
    assert result.scenario.p50 == result.baseline.p50


def test_refusals() -> None:
    with pytest.raises(ValueError, match="not a blocking application"):
        run(Changes(fixes=(Fix("Nope", AS_OF),)))
    with pytest.raises(ValueError, match="not both"):
        run(Changes(capacity_factor=2, daily_capacity=3))
    with pytest.raises(ValueError, match="at least"):
        evaluate(SERIES[:3], {}, Changes(), committed_gbp=0, budget_gbp=1)


def test_cost_to_completion_is_the_cost_so_far_plus_a_straight_line_to_zero() -> None:
    prices = SupportPrices()
    assert cost_to_completion(SERIES, None, prices) is None
    assert cost_to_completion(SERIES, AS_OF, prices) == round(cost_to_date(SERIES, prices, AS_OF), 2)
    ten = cost_to_completion(SERIES, AS_OF + timedelta(days=10), prices)
    assert ten is not None
    extra = sum(REMAINING * (1 - i / 10) * prices.daily(AS_OF + timedelta(days=i)) for i in range(1, 11))
    assert ten == pytest.approx(cost_to_date(SERIES, prices, AS_OF) + extra, abs=0.01)
