"""The deployment files agree with the code they deploy.

Dockerfile, docker-compose.yml and deploy/{prometheus,grafana,otel,k8s} are parsed, never run:
every ESTATE_* variable they set is a Settings field (and the values validate), every metric and
label the alert rules and the dashboard query is one services/runtime/metrics.py exports, and the
files point at each other correctly (depends_on, mounts, rule files, probes, selectors). The
Prometheus rule unit tests (deploy/prometheus/alerts.test.yml) run when promtool is on PATH.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from services.runtime.metrics import Metrics
from services.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = DEPLOY / "grafana"
K8S_DIR = DEPLOY / "k8s"
OWNED_DIRS = (PROMETHEUS_DIR, GRAFANA_DIR, DEPLOY / "otel", K8S_DIR)

YAML_FILES = [COMPOSE_FILE, *sorted(p for d in OWNED_DIRS for p in d.rglob("*.y*ml"))]
JSON_FILES = sorted(p for d in OWNED_DIRS for p in d.rglob("*.json"))
TEST_SECRET = "compose-test-secret-0123456789-abcdefghij"
SCRAPE_LABELS = {"job", "instance"}
"""Labels Prometheus adds to every scraped series (more come from prometheus.yml)."""


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_yaml(path: Path) -> Any:
    (document,) = load_yaml_documents(path)
    return document


# ---------------------------------------------------------------------------------------------
# What the code defines: settings and metrics
# ---------------------------------------------------------------------------------------------

def settings_env_vars() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


@cache
def exported_series() -> dict[str, frozenset[str]]:
    """Every series name Metrics() exposes, as Prometheus stores it, with its label names."""
    metrics = Metrics()
    labels = {c._name: tuple(c._labelnames)  # noqa: SLF001 - prometheus_client keeps them here
              for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)}
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}
    series: dict[str, frozenset[str]] = {}
    for family in metrics.registry.collect():
        for suffix in suffixes[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = frozenset(labels[family.name]) | extra
    return series


@cache
def scrape_labels() -> frozenset[str]:
    """Labels every scraped series carries: job, instance, static labels of prometheus.yml."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    static = {label for job in config["scrape_configs"] for group in job.get("static_configs", [])
              for label in group.get("labels", {})}
    return frozenset(SCRAPE_LABELS | static)


def known_series() -> dict[str, frozenset[str]]:
    return {**exported_series(), "up": frozenset()}


# ---------------------------------------------------------------------------------------------
# A small PromQL reader: enough to find metric names, label matchers and grouping labels
# ---------------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
             "bool", "offset", "inf", "nan", "atan2"}


def promql_problems(expr: str) -> list[str]:
    """What in ``expr`` does not exist: unknown metrics, or labels those metrics do not have."""
    series = known_series()
    text = _STRING.sub('""', expr)
    grouping = [g.strip() for clause in _GROUPING.findall(text)
                for g in clause.split(",") if g.strip()]
    text = _GROUPING.sub(" ", text)
    problems: list[str] = []
    names: set[str] = set()
    for name, body in _SELECTOR.findall(text):
        matched = set(_MATCHER.findall(body))
        if not name:
            name = next((v for k, v in re.findall(r'(__name__)\s*=\s*"([^"]*)"', body)), "")
        names.add(name)
        unknown = matched - series.get(name, frozenset()) - scrape_labels() - {"__name__"}
        if name in series:
            problems += [f"{name} has no label {label!r}" for label in sorted(unknown)]
    bare = _IDENTIFIER.findall(_RANGE.sub(" ", _SELECTOR.sub(r" \1 ", text)))
    names |= {n for n in bare if n not in _KEYWORDS}
    names.discard("")
    problems += [f"unknown metric {name!r}" for name in sorted(names - series.keys())]
    available = set(scrape_labels()).union(*(series.get(n, frozenset()) for n in names))
    problems += [f"grouping by unknown label {g!r}" for g in grouping if g not in available]
    return problems


def expression_labels(expr: str) -> set[str]:
    """Every label the series in ``expr`` may carry (to check legends and annotations against)."""
    series = known_series()
    text = _STRING.sub('""', expr)
    text = _SELECTOR.sub(r" \1 ", _GROUPING.sub(" ", text))
    names = set(_IDENTIFIER.findall(_RANGE.sub(" ", text)))
    return set(scrape_labels()).union(*(series.get(n, frozenset()) for n in names))


def test_the_promql_reader_catches_misspelt_metrics_and_labels() -> None:
    assert promql_problems('sum by (topic) (rate(events_published_total{job=~"$job"}[5m]))') == []
    assert promql_problems("histogram_quantile(0.95, sum by (le, route) "
                           "(rate(http_request_duration_seconds_bucket[5m])))") == []
    assert promql_problems("up == 0 and dead_letters_total offset 15m > 1e3") == []
    assert promql_problems("rate(http_request_total[5m])") == [
        "unknown metric 'http_request_total'"]
    assert promql_problems("outbox_backlog_events") == []
    assert promql_problems("outbox_backlog") == ["unknown metric 'outbox_backlog'"]
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


# ---------------------------------------------------------------------------------------------
# Every file parses
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_files_parse(path: Path) -> None:
    assert load_yaml_documents(path), f"{_rel(path)} is empty"


@pytest.mark.parametrize("path", JSON_FILES, ids=_rel)
def test_json_files_parse(path: Path) -> None:
    assert json.loads(path.read_text())


def test_the_expected_files_exist() -> None:
    for path in (DOCKERFILE, ROOT / ".dockerignore", COMPOSE_FILE, ALERTS_FILE,
                 PROMETHEUS_DIR / "prometheus.yml", GRAFANA_DIR / "dashboards/platform-health.json",
                 DEPLOY / "otel/collector.yaml", K8S_DIR / "kustomization.yaml"):
        assert path.is_file(), f"missing {_rel(path)}"


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def docker_cmd() -> list[str]:
    cmds = [arg for op, arg in dockerfile_instructions() if op == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    return json.loads(cmds[-1])


def test_dockerfile_runs_a_service_as_a_non_root_user_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    args = [arg for op, arg in instructions if op == "ARG" and arg.startswith("PYTHON_IMAGE=")]
    assert args and re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", args[0])
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    (healthcheck,) = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert "/health/live" in healthcheck
    installs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip install ." in installs and "[dev]" not in installs


def test_docker_cmd_parses_and_serves_the_inventory_app_on_the_checked_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    cmd = docker_cmd()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts, f"CMD runs {cmd[0]!r}, not a [project.scripts] entry"
    module, _, attribute = scripts[cmd[0]].partition(":")
    app = getattr(__import__(module, fromlist=[attribute]), attribute)
    served: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **kw: served.append((asgi, kw)))
    for key in settings_env_vars():
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(app, cmd[1:])
    assert result.exit_code == 0, result.output
    ((asgi, options),) = served
    client = TestClient(asgi)  # no lifespan: nothing starts, the routes still answer
    assert client.get("/health/live").status_code == 200
    assert "http_requests_total" in client.get("/metrics").text
    assert asgi.state.runtime.settings.service_name == "inventory"
    assert not asgi.state.runtime.settings.load_sample_estate
    exposed = [arg for op, arg in dockerfile_instructions() if op == "EXPOSE"]
    assert options["host"] == "0.0.0.0" and exposed == [str(options["port"])]
    (healthcheck,) = [arg for op, arg in dockerfile_instructions() if op == "HEALTHCHECK"]
    assert f"127.0.0.1:{options['port']}/health/live" in healthcheck


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allow-list"
    allowed = {p.lstrip("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = [arg.split()[:-1] for op, arg in dockerfile_instructions()
              if op == "COPY" and not arg.startswith("--from")]
    for sources in copied:
        for source in sources:
            assert source.rstrip("*") in allowed, f"COPY {source} is excluded by .dockerignore"
            if not source.endswith("*"):
                assert (ROOT / source).exists(), f"COPY {source}: no such path"


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+][^}]*)?\}")


def interpolate(value: str) -> str:
    return _INTERPOLATION.sub(lambda m: TEST_SECRET if m.group(1) == "ESTATE_JWT_SECRET" else "x",
                              value)


def estate_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items()
            if any(k.startswith("ESTATE_") for k in environment_of(svc))}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as patch:
        for key in settings_env_vars():
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings()


def test_compose_estate_variables_are_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    assert estate_services(), "no service in docker-compose.yml sets ESTATE_* variables"
    fields = settings_env_vars()
    for name, service in estate_services().items():
        env = {k: interpolate(v) for k, v in environment_of(service).items()}
        unknown = {k for k in env if k.startswith("ESTATE_")} - fields
        assert not unknown, f"{name}: {sorted(unknown)} are not fields of Settings"
        settings = settings_from(env, monkeypatch)
        assert settings.mode == "distributed"
        assert settings.jwt_secret == TEST_SECRET


def test_compose_requires_a_jwt_secret_instead_of_defaulting_one() -> None:
    for name, service in estate_services().items():
        secret = environment_of(service).get("ESTATE_JWT_SECRET", "")
        assert re.fullmatch(r"\$\{ESTATE_JWT_SECRET:\?[^}]+\}", secret), name


def test_compose_depends_on_targets_exist_and_can_be_waited_for() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = spec.get("condition", "service_started")
            assert condition in ("service_started", "service_healthy",
                                 "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_compose_publishes_ports_on_loopback_only_and_pins_images() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        image = service.get("image", "")
        if "build" not in service:
            tag = image.rpartition(":")[2]
            assert ":" in image and tag != "latest" and re.search(r"\d", tag), \
                f"{name}: pin {image!r} to a version"


def test_compose_bind_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_compose_kafka_is_a_single_kraft_node() -> None:
    env = environment_of(compose()["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    bootstrap = {environment_of(s)["ESTATE_KAFKA_BOOTSTRAP"] for s in estate_services().values()}
    assert bootstrap <= set(env["KAFKA_ADVERTISED_LISTENERS"].replace("PLAINTEXT://", "")
                            .split(","))


def test_compose_otlp_endpoint_reaches_the_collector() -> None:
    collector = load_yaml(DEPLOY / "otel/collector.yaml")
    port = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rpartition(":")[2]
    for name, service in estate_services().items():
        endpoint = environment_of(service)["ESTATE_OTLP_ENDPOINT"]
        assert re.fullmatch(rf"http://otel-collector:{port}/?", endpoint), name
    assert "otel-collector" in compose()["services"]


def test_collector_pipelines_use_defined_components() -> None:
    config = load_yaml(DEPLOY / "otel/collector.yaml")
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} is not defined in {kind}"


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------

def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS_FILE)["groups"] for rule in group["rules"]]


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


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_use_real_metrics_and_labels(rule: dict[str, Any]) -> None:
    assert promql_problems(rule["expr"]) == []
    available = expression_labels(rule["expr"])
    for text in rule["annotations"].values():
        used = set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= available, f"annotations use labels {sorted(used - available)}"


# ---------------------------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------------------------

def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    return [(path, json.loads(path.read_text())) for path in files]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard/panel, expression, legend) for every Prometheus query on every dashboard."""
    found = []
    for path, dashboard in dashboards():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append((f"{path.stem}/{panel['title']}", target["expr"],
                              target.get("legendFormat", "")))
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            for metric, _label in re.findall(r"label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)", text):
                found.append((f"{path.stem}/${variable['name']}", metric, ""))
    return found


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
    exprs = " ".join(expr for _, expr, _ in dashboard_queries())
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "events_published_total", "events_consumed_total",
                   "event_handler_duration_seconds_bucket", "consumer_lag_messages",
                   "outbox_backlog_events", "dead_letters_total"):
        assert metric in exprs, f"no panel shows {metric}"


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(str(v).split(":")[:2] for v in grafana["volumes"] if str(v).startswith("."))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = load_yaml(GRAFANA_DIR / "provisioning/dashboards/estate.yaml")["providers"]
    assert {p["options"]["path"] for p in providers} == {mounts["./deploy/grafana/dashboards"]}
    datasources = load_yaml(GRAFANA_DIR / "provisioning/datasources/prometheus.yaml")["datasources"]
    prometheus_port = compose()["services"]["prometheus"]["ports"][0].rpartition(":")[2]
    assert {ds["url"] for ds in datasources} == {f"http://prometheus:{prometheus_port}"}


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------

def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    files = [p for p in sorted(K8S_DIR.glob("*.yaml")) if p.name != "kustomization.yaml"]
    return [(path, doc) for path in files for doc in load_yaml_documents(path)]


def k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_objects() if doc["kind"] == kind]


def containers() -> list[dict[str, Any]]:
    return [c for d in k8s("Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def test_k8s_objects_have_kind_name_and_namespace() -> None:
    (namespace,) = k8s("Namespace")
    for path, doc in k8s_objects():
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path.name
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], path.name


def test_kustomization_lists_existing_files_and_not_the_secret_template() -> None:
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S_DIR / resource).is_file(), resource
    assert not any("secret" in r for r in kustomization["resources"])


def test_k8s_estate_variables_are_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = settings_env_vars()
    used = {k for cm in k8s("ConfigMap") for k in cm["data"]}
    used |= {k for s in k8s("Secret") for k in {**s.get("stringData", {}), **s.get("data", {})}}
    used |= {e["name"] for c in containers() for e in c.get("env", [])}
    estate = {k for k in used if k.startswith("ESTATE_")}
    assert estate and estate <= fields, f"not Settings fields: {sorted(estate - fields)}"
    (config,) = k8s("ConfigMap")
    settings = settings_from({**config["data"], "ESTATE_JWT_SECRET": TEST_SECRET}, monkeypatch)
    assert settings.mode == "distributed"


def test_k8s_secret_is_only_a_template() -> None:
    for secret in k8s("Secret"):
        values = {**secret.get("stringData", {}), **secret.get("data", {})}
        jwt = values.get("ESTATE_JWT_SECRET", "")
        assert len(jwt) < 32, "the template must not hold a usable JWT secret"
        assert all(re.search(r"REPLACE|USER|PASSWORD|CHANGE", v) for v in values.values())


def test_k8s_env_from_refers_to_defined_objects() -> None:
    names = {kind: {o["metadata"]["name"] for o in k8s(kind)} for kind in ("ConfigMap", "Secret")}
    for container in containers():
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    assert source[key]["name"] in names[kind], source


def test_inventory_deployment_probes_resources_and_scraping() -> None:
    from services.runtime.http import ops_router

    routes = {getattr(route, "path", "") for route in ops_router().routes}
    (deployment,) = [d for d in k8s("Deployment") if d["metadata"]["name"] == "inventory"]
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["path"] in routes
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in ports.values()
    assert annotations["prometheus.io/path"] in routes
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert [*container["command"], *container["args"]] == docker_cmd()


def test_services_select_deployment_pods_and_named_ports() -> None:
    pods = [(d["spec"]["template"]["metadata"]["labels"],
             {p["name"] for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]})
            for d in k8s("Deployment")]
    for service in k8s("Service"):
        selector = service["spec"]["selector"]
        matching = [ports for labels, ports in pods if selector.items() <= labels.items()]
        assert matching, f"service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert isinstance(target, int) or target in matching[0]
    for deployment in k8s("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
