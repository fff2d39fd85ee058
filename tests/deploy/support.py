"""What the deploy-file tests share: file loaders, what the code defines (settings,
metrics), and a small PromQL reader."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings

from services import registry
from services.runtime.metrics import Metrics
from services.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


DEPLOY = ROOT / "deploy"


COMPOSE_FILE = ROOT / "docker-compose.yml"


DOCKERFILE = ROOT / "Dockerfile"


README = ROOT / "README.md"


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


def settings_env_vars() -> set[str]:
    """Every ESTATE_* variable: the runtime's settings and each service's own."""
    kinds: list[type[BaseSettings]] = [Settings, *(u.settings for u in registry.units() if u.settings is not None)]
    return {f"{k.model_config.get('env_prefix', '')}{name}".upper() for k in kinds for name in k.model_fields}


@cache
def exported_series() -> dict[str, frozenset[str]]:
    """Every series name the runtime's and the services' metrics expose, as Prometheus stores
    it, with its label names."""
    metrics = Metrics()
    collectors = [*vars(metrics).values(), *(c for u in registry.units() if u.metrics is not None
                                             for c in vars(u.metrics(metrics.registry)).values())]
    labels = {c._name: tuple(c._labelnames)  # noqa: SLF001 - prometheus_client keeps them here
              for c in collectors if isinstance(c, MetricWrapperBase)}
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


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")


_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


_RANGE = re.compile(r"\[[^\]]*\]")


_IDENTIFIER = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
             "bool", "offset", "inf", "nan", "atan2"}


def _without_strings(expr: str) -> tuple[str, list[str]]:
    """``expr`` with each string literal replaced by its index in the list returned beside it (so
    braces or names inside strings are not read as PromQL), grouping clauses removed."""
    strings: list[str] = []

    def keep(match: re.Match[str]) -> str:
        strings.append(match.group(0)[1:-1])
        return f'"{len(strings) - 1}"'

    return _GROUPING.sub(" ", _STRING.sub(keep, expr)), strings


def _selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers) of every ``{...}`` selector; the name from ``__name__`` if it has none."""
    text, strings = _without_strings(expr)
    found = []
    for name, body in _SELECTOR.findall(text):
        if not name:
            name = next((strings[int(i)] for i in re.findall(r'__name__\s*=\s*"(\d+)"', body)), "")
        found.append((name, body))
    return found


def metric_names(expr: str) -> set[str]:
    """Every metric ``expr`` reads: selector names and bare names (not functions, keywords, labels)."""
    text, _ = _without_strings(expr)
    bare = _IDENTIFIER.findall(_RANGE.sub(" ", _SELECTOR.sub(r" \1 ", text)))
    names = {name for name, _ in _selectors(expr)} | {n for n in bare if n not in _KEYWORDS}
    names.discard("")
    return names


def promql_problems(expr: str) -> list[str]:
    """What in ``expr`` does not exist: unknown metrics, or labels those metrics do not have."""
    series = known_series()
    grouping = [g.strip() for clause in _GROUPING.findall(_STRING.sub('""', expr))
                for g in clause.split(",") if g.strip()]
    problems: list[str] = []
    for name, body in _selectors(expr):
        unknown = set(_MATCHER.findall(body)) - series.get(name, frozenset()) - scrape_labels() - {"__name__"}
        if name in series:
            problems += [f"{name} has no label {label!r}" for label in sorted(unknown)]
    names = metric_names(expr)
    problems += [f"unknown metric {name!r}" for name in sorted(names - series.keys())]
    available = set(scrape_labels()).union(*(series.get(n, frozenset()) for n in names))
    problems += [f"grouping by unknown label {g!r}" for g in grouping if g not in available]
    return problems


def expression_labels(expr: str) -> set[str]:
    """Every label the series in ``expr`` may carry (to check legends and annotations against)."""
    series = known_series()
    return set(scrape_labels()).union(*(series.get(n, frozenset()) for n in metric_names(expr)))


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def docker_cmd() -> list[str]:
    cmds = [arg for op, arg in dockerfile_instructions() if op == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    return json.loads(cmds[-1])


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


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path (as written, ./...) of each of a compose service's bind mounts."""
    mounts = [str(v).split(":") for v in service.get("volumes", []) if str(v).startswith(".")]
    return {target.rstrip("/"): source for source, target, *_ in mounts}


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


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS_FILE)["groups"] for rule in group["rules"]]


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    return [(path, json.loads(path.read_text())) for path in files]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries_of(path: Path, dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(dashboard/panel, expression, legend) for every Prometheus query on one dashboard: its
    panels' targets and the series its ``label_values(...)`` variables read."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"{path.stem}/{panel['title']}", target["expr"], target.get("legendFormat", "")))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for series, _label in re.findall(r"label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)", text):
            found.append((f"{path.stem}/${variable['name']}", series, ""))
    return found


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard/panel, expression, legend) for every Prometheus query on every dashboard."""
    return [query for path, dashboard in dashboards() for query in queries_of(path, dashboard)]


def dashboard_named(stem: str) -> tuple[Path, dict[str, Any]]:
    """deploy/grafana/dashboards/<stem>.json, loaded."""
    (found,) = [(path, dashboard) for path, dashboard in dashboards() if path.stem == stem]
    return found


def dashboard_metrics(stem: str) -> set[str]:
    """Every metric the queries of deploy/grafana/dashboards/<stem>.json read."""
    return {name for _, expr, _ in queries_of(*dashboard_named(stem)) for name in metric_names(expr)}


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    files = [p for p in sorted(K8S_DIR.glob("*.yaml")) if p.name != "kustomization.yaml"]
    return [(path, doc) for path in files for doc in load_yaml_documents(path)]


def k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_objects() if doc["kind"] == kind]


def containers() -> list[dict[str, Any]]:
    return [c for d in k8s("Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def kustomize() -> str:
    """The kustomize binary deploy/local/kustomize.sh builds (what `kubectl kustomize` runs)."""
    done = subprocess.run(["bash", str(DEPLOY / "local/kustomize.sh"), "path"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("kustomize is not built: run `bash deploy/local/kustomize.sh install` (make test does)\n"
                    + done.stderr, pytrace=False)
    return done.stdout.strip()


@cache
def rendered_k8s() -> tuple[dict[str, Any], ...]:
    """Every object `kustomize build deploy/k8s` renders: what `kubectl apply -k` applies."""
    rendered = subprocess.run([kustomize(), "build", str(K8S_DIR)], capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    return tuple(doc for doc in yaml.safe_load_all(rendered.stdout) if doc)


def rendered_config_map(name: str) -> dict[str, Any]:
    (found,) = [d for d in rendered_k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
    return found


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `bash deploy/local/prometheus.sh install` "
                    "(make test does)", pytrace=False)
    return found
