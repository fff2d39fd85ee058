"""``estate what-if``: the request it builds, what it shows, and its failures over real HTTP."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

import pytest
from rich.console import Console
from typer.testing import CliRunner

from services.cli import app
from services.cli import whatif as cli_whatif
from services.reporting.forecast import ForecastSettings
from services.reporting.whatif import Changes, Fix, evaluate
from tests.unit.test_cli import platform_url  # noqa: F401  (the module's uvicorn platform)
from tests.unit.test_whatif import AS_OF, SERIES

runner = CliRunner()


def test_the_request_carries_the_changes() -> None:
    body = cli_whatif.request(["NSPIS Custody=2016-12-31", "A=B = 2016-01-02"], 2.0, None, 1e6)
    assert body == {"fixes": [{"application": "NSPIS Custody", "by": "2016-12-31"},
                              {"application": "A=B", "by": "2016-01-02"}],
                    "budget_cut_gbp": 1e6, "capacity_factor": 2.0}
    for bad in ("NSPIS Custody", "=2016-01-01", "X=31/12/2016"):
        with pytest.raises(ValueError, match="--fix"):
            cli_whatif.parse_fix(bad)


def test_the_table_shows_baseline_and_scenario_side_by_side() -> None:
    result = evaluate(SERIES, {"AWARE": 700}, Changes(fixes=(Fix("AWARE", AS_OF + timedelta(days=30)),)),
                      committed_gbp=0, budget_gbp=1e6, settings=ForecastSettings(runs=500))
    answer = json.loads(json.dumps(asdict(result), default=str))
    console = Console(record=True, width=160)
    console.print(cli_whatif.table(answer))
    text = console.export_text()
    assert str(result.baseline.p50) in text and str(result.scenario.p50) in text
    assert f"{result.p50_earlier_by_days} days earlier" in text


def test_failures_say_why(platform_url: str) -> None:  # noqa: F811
    anonymous = runner.invoke(app, ["what-if", "--url", platform_url], env={"ESTATE_TOKEN": ""})
    assert anonymous.exit_code == 1 and "HTTP 401" in anonymous.stderr
    token = runner.invoke(app, ["token", "--role", "reader"]).stdout.strip()
    env = {"ESTATE_TOKEN": token}
    empty = runner.invoke(app, ["what-if", "--url", platform_url], env=env)  # no daily counts yet
    assert empty.exit_code == 1 and "no answer" in empty.stderr
    unknown = runner.invoke(app, ["what-if", "--url", platform_url, "--fix", "Nope=2016-01-01"], env=env)
    assert unknown.exit_code == 1 and "HTTP 422" in unknown.stderr and "body.fixes.0.application" in unknown.stderr
    bad = runner.invoke(app, ["what-if", "--url", platform_url, "--fix", "Nope"], env=env)
    assert bad.exit_code == 1 and "APPLICATION=YYYY-MM-DD" in bad.stderr
