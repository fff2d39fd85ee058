"""The programme scenario: the plan's calibration (pure), and a scaled-down run through all four
services on the embedded platform whose reporting figures follow the published trajectory."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.reporting.cost import TRAJECTORY
from services.scenario.driver import run_scenario
from services.scenario.plan import PUBLISHED_COST_GBP, ScenarioPlan, calibrate, spread, tranches, weekly_wave


def test_the_plan_passes_through_every_published_count_scaled() -> None:
    plan = ScenarioPlan(scale=0.05)
    targets = plan.targets()
    for day, count in TRAJECTORY:
        assert targets[day] == round(count * 0.05)
    assert targets[plan.finish_by] == 0 and targets[plan.end] == 0
    days = sorted(targets)
    assert all(targets[a] >= targets[b] for a, b in zip(days, days[1:], strict=False))  # never rises


def test_calibration_accepts_the_published_trajectory_and_rejects_a_miss() -> None:
    plan = ScenarioPlan()
    exact = {d: float(n) for d, n in plan.targets().items()}
    checks = calibrate(exact, plan)
    assert [c.ok for c in checks] == [True, True, True], checks
    assert checks[-1].actual == pytest.approx(PUBLISHED_COST_GBP, rel=0.02)
    behind = {d: n * 1.03 for d, n in exact.items()}  # 3% more XP left every day
    assert [c.ok for c in calibrate(behind, plan)] == [False, False, True]
    early = {d: n for d, n in exact.items() if d < date(2015, 9, 1)}  # a run that stopped in August 2015
    assert [(c.on, c.ok) for c in calibrate(early, plan)] == [(date(2015, 8, 1), True)]


def test_sizing_helpers() -> None:
    assert weekly_wave(100, 0.6) == (60, 9)
    assert weekly_wave(-5, 0.6) == (0, 1)
    assert weekly_wave(100, 0.6, final=True) == (100, 15)  # the last week leaves nothing to replacements
    assert tranches(10, 3) == [4, 3, 3] and sum(tranches(15_000, 18)) == 15_000
    assert spread(5, ["b", "a", "c"]) == {"a": 2, "b": 2, "c": 1}


def test_a_scaled_run_follows_the_published_trajectory_through_all_four_services() -> None:
    plan = ScenarioPlan(scale=0.01, end=date(2016, 1, 2))
    result = run_scenario(plan)
    assert result.calibrated, result.checks
    by_day = result.legacy_by_day
    assert by_day[plan.start] == 350  # 35,000 / 100, as reporting counted them from the events
    assert abs(by_day[date(2015, 8, 1)] - 270) <= 270 * 0.02
    assert abs(by_day[date(2016, 1, 1)] - 195) <= 195 * 0.02
    kinds = {row[0]: row[1] for row in result.kinds}
    assert kinds["body_worn_camera"] == 10  # the pilot, bought and delivered in May 2014
    assert kinds["tablet"] == 25 + sum(tranches(150, 18)[:12])  # the estate's, and 12 monthly tranches
    assert result.summary["retired"] + result.summary["disposed"] > 0  # replaced hardware left the estate
    assert result.summary["spend_committed_gbp"] > 0 and result.waves > 0 and result.orders > 0
    assert {row[0] for row in result.deliveries} >= {"Sprint ii", "Technology Products (successor of CITHS)"}


def test_the_same_seed_gives_the_same_run() -> None:
    plan = ScenarioPlan(scale=0.01, end=date(2014, 4, 8) + timedelta(days=14))
    first, second = run_scenario(plan), run_scenario(plan)
    assert first.legacy_by_day == second.legacy_by_day
    assert first.kinds == second.kinds and first.events == second.events
