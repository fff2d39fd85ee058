"""The deployment files agree with the code they deploy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services import registry
from tests.deploy.support import (
    COMPOSE_FILE,
    DEPLOY,
    ROOT,
    TEST_SECRET,
    bind_mounts,
    compose,
    environment_of,
    estate_services,
    interpolate,
    load_yaml,
    settings_env_vars,
    settings_from,
)


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


def test_traces_reach_the_trace_viewer() -> None:
    """The collector's traces pipeline exports to a compose service that serves a trace UI."""
    config = load_yaml(DEPLOY / "otel/collector.yaml")
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    viewers = [name for name in exporters if name.startswith("otlphttp/")]
    assert viewers, "the traces pipeline keeps no trace anywhere (debug only)"
    services = compose()["services"]
    for name in viewers:
        host = re.fullmatch(r"http://([a-z0-9-]+):4318/?", config["exporters"][name]["endpoint"])
        assert host and host.group(1) in services, f"{name} points at no compose service"
        viewer = services[host.group(1)]
        assert any(p.endswith(":16686") for p in viewer.get("ports", [])), "the trace UI is not published"
        assert host.group(1) in services["otel-collector"].get("depends_on", {})


def test_collector_pipelines_use_defined_components() -> None:
    config = load_yaml(DEPLOY / "otel/collector.yaml")
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} is not defined in {kind}"


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the compose specification's schema it ships (no network)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    done = check_compose_schema(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = compose()
    broken["services"]["inventory"]["helthcheck"] = broken["services"]["inventory"].pop("healthcheck")
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert check_compose_schema(tmp_path / "broken.yml").returncode != 0


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_every_service_runs_from_the_one_image_by_command(name: str) -> None:
    service = compose()["services"][name]
    assert service["build"]["context"] == "." and service["image"] == "estate-platform:local"
    assert service["command"][:4] == ["estate", "run", "--service", name]
    port = service["command"][service["command"].index("--port") + 1]
    assert [p.rpartition(":")[2] for p in service["ports"]] == [port]
    assert f":{port}/health/ready" in " ".join(service["healthcheck"]["test"])
    assert environment_of(service)["ESTATE_SERVICE_NAME"] == name
    depends = service["depends_on"]
    assert depends["kafka-init"]["condition"] == depends["mongo-init"]["condition"] == "service_completed_successfully"
    prometheus = compose()["services"]["prometheus"]
    assert name in prometheus["depends_on"]


def test_host_ports_are_distinct() -> None:
    published = [p.rsplit(":", 1)[0] for s in compose()["services"].values() for p in s.get("ports", [])]
    assert len(published) == len(set(published))


def test_kafka_init_creates_every_published_topic_with_the_services_partition_count() -> None:
    init = environment_of(compose()["services"]["kafka-init"])
    published = {t for unit in registry.units() for t in unit.publishes}
    assert set(init["TOPICS"].split()) == published
    partitions = {environment_of(s)["ESTATE_TOPIC_PARTITIONS"] for s in estate_services().values()}
    assert partitions == {init["TOPIC_PARTITIONS"]}
    script = " ".join(compose()["services"]["kafka-init"]["command"])
    assert "--create --if-not-exists" in script and '--partitions "$$TOPIC_PARTITIONS"' in script


def test_mongo_runs_as_the_replica_set_the_services_name() -> None:
    services = compose()["services"]
    replica_set = services["mongo"]["command"][services["mongo"]["command"].index("--replSet") + 1]
    for name, service in estate_services().items():
        assert environment_of(service)["ESTATE_MONGO_URL"].endswith(f"?replicaSet={replica_set}"), name
    script = " ".join(services["mongo-init"]["command"])
    assert f'rs.initiate({{_id: "{replica_set}"' in script and "mongo:27017" in script


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_prometheus_scrapes_each_service_on_the_port_its_command_listens_on(name: str) -> None:
    command = compose()["services"][name]["command"]
    port = command[command.index("--port") + 1]
    config = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == name]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"{name}:{port}"], f"{name} listens on {port}; Prometheus scrapes {targets}"


def test_grafana_home_dashboard_is_a_provisioned_dashboard_file() -> None:
    grafana = compose()["services"]["grafana"]
    home = environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, _, file = home.rpartition("/")
    mounts = bind_mounts(grafana)
    assert mounts.get(folder) == "./deploy/grafana/dashboards", f"{home} is not in the mounted dashboards folder"
    source = ROOT / mounts[folder] / file
    assert source.is_file(), f"{home} names no dashboard: {source.relative_to(ROOT)} is missing"
    assert json.loads(source.read_text())["uid"]


NO_HEALTH_CHECK = {"otel-collector": "its image is FROM scratch: no shell or HTTP client to check with"}
"""Long-running compose services without a health check, and why."""


def test_every_long_running_service_has_a_health_check_on_its_own_port() -> None:
    for name, service in compose()["services"].items():
        if service.get("restart") == "no":
            continue  # one-shot jobs (mongo-init, kafka-init): dependants wait for their exit
        if name in NO_HEALTH_CHECK:
            assert "healthcheck" not in service, f"{name} has a health check now: drop it from NO_HEALTH_CHECK"
            continue
        assert "healthcheck" in service, f"{name} has no health check"
        test = " ".join(service["healthcheck"]["test"])
        container_ports = {p.rpartition(":")[2] for p in service.get("ports", [])}
        for host, port in re.findall(r"https?://([\w.-]+):(\d+)", test):
            assert host in ("127.0.0.1", "localhost"), f"{name} checks {host}, not itself"
            assert port in container_ports, f"{name} checks port {port}; it serves {sorted(container_ports)}"
