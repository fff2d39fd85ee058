"""The deployment files agree with the code they deploy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services import registry
from services.runtime.bus import dead_letter_topic
from tests.deploy.support import (
    ALERTS_FILE,
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    README,
    alert_rules,
    bind_mounts,
    compose,
    dashboard_metrics,
    dashboard_named,
    dashboard_queries,
    dashboards,
    estate_services,
    exported_series,
    expression_labels,
    known_series,
    load_yaml,
    panels,
    promql_problems,
    promtool,
    queries_of,
    rendered_k8s,
)


def test_the_promql_reader_catches_misspelt_metrics_and_labels() -> None:
    assert promql_problems('sum by (topic) (rate(events_published_total{job=~"$job"}[5m]))') == []
    assert promql_problems("histogram_quantile(0.95, sum by (le, route) "
                           "(rate(http_request_duration_seconds_bucket[5m])))") == []
    assert promql_problems("up == 0 and dead_letters_total offset 15m > 1e3") == []
    assert promql_problems("rate(http_request_total[5m])") == [
        "unknown metric 'http_request_total'"]
    assert promql_problems("outbox_backlog_events") == []
    assert promql_problems("outbox_backlog") == ["unknown metric 'outbox_backlog'"]
    assert promql_problems('{__name__="outbox_backlog", job="x"}') == ["unknown metric 'outbox_backlog'"]
    assert promql_problems('count({__name__="outbox_backlog_events", colection=~"a{2}"})') == [
        "outbox_backlog_events has no label 'colection'"]
    assert promql_problems('consumer_lag_messages{partiton="0"}') == [
        "consumer_lag_messages has no label 'partiton'"]
    assert promql_problems("sum by (route) (consumer_lag_messages)") == [
        "grouping by unknown label 'route'"]
    assert promql_problems("rate(http_request_duration_seconds[5m])") == [
        "unknown metric 'http_request_duration_seconds'"]


def test_exported_series_follow_prometheus_client_naming() -> None:
    series = exported_series()
    assert {"http_requests_total", "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_count", "consumer_lag_messages",
            "dead_letters_total", "outbox_backlog_events"} <= series.keys()
    assert "http_requests_total_total" not in series
    assert series["http_request_duration_seconds_bucket"] >= {"route", "le"}


def test_prometheus_config_points_at_rule_files_and_compose_services() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), rule_file
    services = compose()["services"]
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            for target in group["targets"]:
                host = target.rpartition(":")[0]
                assert host in services or host == "localhost", f"{job['job_name']}: {target}"
    scraped = {t.rpartition(":")[0] for job in config["scrape_configs"]
               for group in job.get("static_configs", []) for t in group["targets"]}
    assert set(estate_services()) <= scraped, "an estate service is not scraped"


def test_alert_rules_have_the_required_keys() -> None:
    groups = load_yaml(ALERTS_FILE)["groups"]
    assert groups and all(group["name"] and group["rules"] for group in groups)
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
        if "for" in rule:
            assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"]), rule["for"]


def test_the_required_alerts_exist() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for metric in ("up", "dead_letters_total", "outbox_backlog_events", "consumer_lag_messages",
                   "http_requests_total"):
        assert re.search(rf"\b{metric}\b", exprs), f"no alert on {metric}"
    backlog = next(r for r in alert_rules() if "outbox_backlog_events" in r["expr"])
    assert backlog["for"] == "10m"


def test_the_outbox_and_infrastructure_alerts_exist() -> None:
    by_metric = {metric: [r for r in alert_rules() if re.search(rf"\b{metric}\b", r["expr"])]
                 for metric in ("outbox_clear_misses_total", "outbox_lease_held", "outbox_publish_failures_total")}
    assert all(by_metric.values()), f"no alert on {[m for m, rules in by_metric.items() if not rules]}"
    [lease] = by_metric["outbox_lease_held"]
    assert lease["for"] == "2m" and "== 0" in lease["expr"], "no replica holds the lease for 2 minutes"
    assert any('outcome="unavailable"' in r["expr"] and "events_consumed_total" in r["expr"]
               for r in alert_rules()), "no alert on handlers finding the store or the bus unavailable"


def test_the_dead_letter_alert_names_the_groups_topic_and_the_command() -> None:
    rule = next(r for r in alert_rules() if "dead_letters_total" in r["expr"])
    text = " ".join(rule["annotations"]["description"].split())
    assert dead_letter_topic("{{ $labels.topic }}", "{{ $labels.group }}") in text
    assert "estate dead-letters --topic {{ $labels.topic }} --group {{ $labels.group }}" in text
    assert "--replay" in text


def test_every_services_metrics_are_known_to_the_checks() -> None:
    """The series the checks accept include each service's own metrics class, not only the runtime's."""
    series = exported_series()
    assert {"import_rows_total", "procurement_contract_expiry_notices_total", "procurement_contracts_expiring",
            "procurement_spend_committed_pence", "migration_sagas_ended_total", "migration_assessments_total",
            "migration_step_seconds_bucket", "estate_legacy_devices_remaining",
            "estate_forecast_probability_by_deadline", "estate_devices_blocked"} <= series.keys()
    assert series["migration_sagas_ended_total"] == {"state"}
    assert series["procurement_spend_committed_pence"] == {"year", "category"}


def test_the_issue_alerts_exist_for_every_service() -> None:
    """Service down, consumer lag growing, dead letters, outbox backlog, error rate, saga failure
    rate, a contract entering its notice window, the forecast slipping past the deadline."""
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    wanted = {"up{platform=\"estate\"}": "service down", "consumer_lag_messages offset": "lag growing",
              "dead_letters_total": "dead letters", "outbox_backlog_events": "outbox backlog",
              "http_requests_total{status=~\"5..\"}": "error rate",
              "migration_sagas_ended_total{state=\"failed\"}": "saga failures",
              "procurement_contract_expiry_notices_total": "notice window",
              "estate_forecast_probability_by_deadline": "forecast"}
    for needle, what in wanted.items():
        assert any(needle in expr for expr in exprs.values()), f"no alert on {what} ({needle})"
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
            if any(g.get("labels", {}).get("platform") == "estate" for g in job.get("static_configs", []))}
    assert jobs == set(registry.SERVICES), "every service is scraped with platform=estate, as EstateServiceDown selects"


@pytest.mark.parametrize("command", [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                                     ["test", "rules", "alerts.test.yml"]], ids=" ".join)
def test_promtool_accepts_the_config_and_rules_and_every_alert_case_passes(command: list[str]) -> None:
    done = subprocess.run([promtool(), *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(command)}:\n{done.stdout}\n{done.stderr}"


def prometheus_images() -> dict[str, str]:
    """Where a Prometheus server image is named: the compose service, and any rendered k8s pod."""
    images = {"docker-compose.yml prometheus": compose()["services"]["prometheus"]["image"]}
    for doc in rendered_k8s():
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if re.search(r"(^|/)prometheus:", container["image"]):
                images[f"k8s {doc['metadata']['name']}/{container['name']}"] = container["image"]
    return images


def test_the_deployed_prometheus_has_the_major_version_of_the_tested_promtool() -> None:
    """The rules, their unit tests and the config are checked with Debian's promtool; Prometheus 3
    changed range selectors (left-open) and other semantics, so the server that runs them must be
    the same major version or the tests prove nothing about it."""
    done = subprocess.run([promtool(), "--version"], capture_output=True, text=True, timeout=60)
    found = re.search(r"version (\d+)\.\d+", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    for where, image in prometheus_images().items():
        tag = re.fullmatch(r"v?(\d+)\.\d+\.\d+", image.rpartition(":")[2])
        assert tag, f"{where}: pin {image} to a release"
        assert tag.group(1) == found.group(1), \
            f"{where} runs {image}, the tests use promtool {found.group(0)}: pin the same major version"


def test_promtool_test_rules_fails_when_an_alert_case_is_wrong(tmp_path: Path) -> None:
    """The promtool run above can fail: the same cases against a broken threshold do not pass."""
    broken = ALERTS_FILE.read_text().replace("> 0.1\n", "> 0.5\n")
    assert broken != ALERTS_FILE.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "alerts.test.yml").write_text((PROMETHEUS_DIR / "alerts.test.yml").read_text())
    done = subprocess.run([promtool(), "test", "rules", "alerts.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "EstateMigrationSagaFailureRateHigh" in done.stdout + done.stderr


def alert_tests() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_DIR / "alerts.test.yml")


def test_every_alert_has_a_promtool_case_that_matches_it() -> None:
    tests = alert_tests()
    assert [PROMETHEUS_DIR / f for f in tests["rule_files"]] == [ALERTS_FILE]
    rules = {rule["alert"]: rule for rule in alert_rules()}
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
    tested = {case["alertname"] for case in cases}
    assert tested <= rules.keys(), f"cases for unknown alerts {sorted(tested - rules.keys())}"
    assert rules.keys() <= tested, f"alerts without a case {sorted(rules.keys() - tested)}"
    for name in rules:
        assert any(case["exp_alerts"] for case in cases if case["alertname"] == name), f"{name} never fires"
        assert any(not case["exp_alerts"] for case in cases if case["alertname"] == name), \
            f"{name} has no case where it must not fire"
    for case in cases:
        rule = rules[case["alertname"]]
        for alert in case["exp_alerts"]:
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], case["alertname"]
            assert alert["exp_annotations"].keys() == rule["annotations"].keys(), case["alertname"]
    for test in tests["tests"]:
        for series in test["input_series"]:
            assert promql_problems(series["series"]) == [], series["series"]


def runbook_rows() -> list[tuple[str, str | None]]:
    """(alert, severity shown or None) for each row of the README's runbook table."""
    text = README.read_text()
    section = text[text.index("### Runbook"):]
    lines = section.splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("| Alert |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = line.split("|")[1].strip()
        found = re.fullmatch(r"(\w+)(?: \((\w+)\))?", cell)
        assert found, f"runbook row {cell!r} is not `Alert` or `Alert (severity)`"
        rows.append((found.group(1), found.group(2)))
    return rows


def test_the_readme_runbook_lists_exactly_the_alerts_with_their_severity() -> None:
    """One row per alert of alerts.yml, none for an alert that is gone; the severity is shown
    unless it is warning."""
    rows = runbook_rows()
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "an alert has two runbook rows"
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(names) == rules.keys(), (f"missing from the runbook: {sorted(rules.keys() - set(names))}; "
                                        f"not alerts: {sorted(set(names) - rules.keys())}")
    for name, shown in rows:
        assert (shown or "warning") == rules[name]["labels"]["severity"], f"{name}: runbook says {shown}"


def test_alert_cases_use_topics_the_platform_has() -> None:
    """A case on a topic no service publishes tests an alert nobody can receive that way."""
    published = {topic for unit in registry.units() for topic in unit.publishes}
    tests = alert_tests()["tests"]
    used = {topic for test in tests for series in test["input_series"]
            for topic in re.findall(r'\btopic="([^"]*)"', series["series"])}
    used |= {alert["exp_labels"]["topic"] for test in tests for case in test["alert_rule_test"]
             for alert in case["exp_alerts"] if "topic" in alert["exp_labels"]}
    assert used, "no case names a topic"
    assert used <= published, f"not topics of the platform: {sorted(used - published)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_use_real_metrics_and_labels(rule: dict[str, Any]) -> None:
    assert promql_problems(rule["expr"]) == []
    available = expression_labels(rule["expr"])
    for text in rule["annotations"].values():
        used = set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= available, f"annotations use labels {sorted(used - available)}"


def test_dashboards_are_well_formed() -> None:
    assert dashboards()
    datasources = load_yaml(GRAFANA_DIR / "provisioning/datasources/prometheus.yaml")["datasources"]
    uids = {ds["uid"] for ds in datasources}
    for path, dashboard in dashboards():
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for panel in panels(dashboard):
            assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{panel['title']} has no query"
            uid = panel["datasource"]["uid"]
            assert uid in uids or uid.strip("${}") in variables, f"{panel['title']}: {uid}"
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))
        if "datasource" in variables:
            assert variables["datasource"]["current"]["value"] in uids


@pytest.mark.parametrize("where,expr,legend",
                         [pytest.param(*q, id=q[0]) for q in dashboard_queries()])
def test_dashboard_queries_use_real_metrics_and_labels(where: str, expr: str, legend: str) -> None:
    assert promql_problems(expr) == [], where
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    assert used <= expression_labels(expr), f"{where}: legend uses {used}"


def test_the_health_dashboard_covers_the_platform_metrics() -> None:
    shown = dashboard_metrics("platform-health")
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "events_published_total", "events_consumed_total",
                   "event_handler_duration_seconds_bucket", "consumer_lag_messages",
                   "outbox_backlog_events", "dead_letters_total", "outbox_uncleared_events",
                   "outbox_clear_misses_total", "outbox_publish_failures_total", "outbox_lease_held"):
        assert metric in shown, f"no panel shows {metric}"


def test_the_programme_dashboard_shows_progress_blockers_spend_and_the_forecast() -> None:
    """Legacy devices remaining, migrations per day, blocked devices, spend and the forecast: the
    figures the programme is steered by, each read from the metric that carries it."""
    shown = dashboard_metrics("programme-progress")
    wanted = {"legacy devices remaining": {"estate_legacy_devices_remaining"},
              "blocked devices": {"estate_devices_blocked"},
              "spend": {"procurement_spend_committed_pence", "procurement_spend_delivered_pence",
                        "estate_spend_committed_gbp"},
              "the forecast": {"estate_forecast_probability_by_deadline", "estate_forecast_days_left"}}
    for what, metrics in wanted.items():
        assert metrics <= shown, f"no panel shows {what}: {sorted(metrics - shown)}"
    per_day = re.compile(r'increase\(migration_sagas_ended_total\{[^}]*state="migrated"[^}]*\}\[1d\]\)')
    assert any(per_day.search(expr) for _, expr, _ in queries_of(*dashboard_named("programme-progress"))), \
        "no panel counts the sagas that ended migrated per day"


@pytest.mark.parametrize("stem", [path.stem for path, _ in dashboards()])
def test_every_metric_a_dashboard_reads_is_exported_by_the_services(stem: str) -> None:
    """Named by the services' metrics classes (or up, which Prometheus adds to every target)."""
    shown = dashboard_metrics(stem)
    assert shown, f"{stem}: no metric found in its queries"
    assert shown <= known_series().keys(), f"{stem} reads {sorted(shown - known_series().keys())}"


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {source: target for target, source in bind_mounts(grafana).items()}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = load_yaml(GRAFANA_DIR / "provisioning/dashboards/estate.yaml")["providers"]
    assert {p["options"]["path"] for p in providers} == {mounts["./deploy/grafana/dashboards"]}
    datasources = load_yaml(GRAFANA_DIR / "provisioning/datasources/prometheus.yaml")["datasources"]
    prometheus_port = compose()["services"]["prometheus"]["ports"][0].rpartition(":")[2]
    assert {ds["url"] for ds in datasources} == {f"http://prometheus:{prometheus_port}"}
