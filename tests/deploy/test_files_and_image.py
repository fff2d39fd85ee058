"""The deployment files agree with the code they deploy."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from services.inventory.app import InventorySettings
from tests.deploy.support import (
    ALERTS_FILE,
    COMPOSE_FILE,
    DEPLOY,
    DOCKERFILE,
    GRAFANA_DIR,
    JSON_FILES,
    K8S_DIR,
    PROMETHEUS_DIR,
    ROOT,
    YAML_FILES,
    _rel,
    docker_cmd,
    dockerfile_instructions,
    load_yaml_documents,
    settings_env_vars,
)


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
    assert re.search(r"pip install .*(-c|--constraint) constraints\.txt", installs), \
        "the image installs the versions constraints.txt pins"


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
    assert not asgi.state.runtime.settings_of(InventorySettings).load_sample_estate
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
