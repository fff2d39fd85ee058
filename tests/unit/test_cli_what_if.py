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


def test_the_request_carries_another_target_os() -> None:
    body = cli_whatif.request([], None, None, 0.0, target_os="10", target_minimum="4096,80,2",
                              replacement_lead_days=30, device_price_gbp=650.0)
    assert body["target_os"] == {"family": "windows", "version": "10"}
    assert body["target_minimum"] == {"ram_mb": 4096, "disk_gb": 80, "cpu_cores": 2}
    assert (body["replacement_lead_days"], body["device_price_gbp"]) == (30, 650.0)
    assert cli_whatif.parse_os("Windows:8.1") == {"family": "windows", "version": "8.1"}
    for bad in ("", ":10", "windows:"):
        with pytest.raises(ValueError, match="--target-os"):
            cli_whatif.parse_os(bad)
    with pytest.raises(ValueError, match="RAM_MB,DISK_GB,CPU_CORES"):
        cli_whatif.parse_minimum("4096,80")
    with pytest.raises(ValueError, match="go with --target-os"):
        cli_whatif.request([], None, None, 0.0, device_price_gbp=650.0)


def test_the_table_shows_both_targets() -> None:
    from tests.unit.test_whatif_target_os import retarget
    result = evaluate(SERIES, {}, Changes(), committed_gbp=0, budget_gbp=1e6, settings=ForecastSettings(runs=500),
                      retarget=retarget())
    console = Console(record=True, width=200)
    console.print(cli_whatif.table(json.loads(json.dumps(asdict(result), default=str))))
    text = console.export_text()
    assert "windows:8.1" in text and "windows:10" in text and "2025-10-14" in text
    assert "Legacy devices needing a new device" in text and "476" in text


def test_an_unknown_target_os_is_refused_naming_the_field(platform_url: str) -> None:  # noqa: F811
    env = {"ESTATE_TOKEN": runner.invoke(app, ["token", "--role", "reader"]).stdout.strip()}
    unknown = runner.invoke(app, ["what-if", "--url", platform_url, "--target-os", "11"], env=env)
    assert unknown.exit_code == 1 and "HTTP 422" in unknown.stderr and "body.target_os" in unknown.stderr
