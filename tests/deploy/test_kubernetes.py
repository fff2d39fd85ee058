"""The deployment files agree with the code they deploy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services import registry
from tests.deploy.support import (
    ALERTS_FILE,
    K8S_DIR,
    TEST_SECRET,
    alert_rules,
    containers,
    docker_cmd,
    k8s,
    k8s_objects,
    load_yaml,
    promtool,
    rendered_config_map,
    rendered_k8s,
    settings_env_vars,
    settings_from,
)


def test_k8s_objects_have_kind_name_and_namespace() -> None:
    (namespace,) = k8s("Namespace")
    for path, doc in k8s_objects():
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path.name
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], path.name


def test_kustomization_lists_existing_files_and_not_the_secret_template() -> None:
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    for resource in kustomization["resources"]:
        path = K8S_DIR / resource
        assert path.is_file() or (path / "kustomization.yaml").is_file(), resource
    for generator in kustomization.get("configMapGenerator", []):
        for file in generator["files"]:
            assert (K8S_DIR / file.rpartition("=")[2]).is_file(), file
    assert not any("secret" in r for r in kustomization["resources"])


def test_k8s_estate_variables_are_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = settings_env_vars()
    used = {k for cm in k8s("ConfigMap") for k in cm["data"]}
    used |= {k for s in k8s("Secret") for k in {**s.get("stringData", {}), **s.get("data", {})}}
    used |= {e["name"] for c in containers() for e in c.get("env", [])}
    estate = {k for k in used if k.startswith("ESTATE_")}
    assert estate and estate <= fields, f"not Settings fields: {sorted(estate - fields)}"
    (config,) = [cm for cm in k8s("ConfigMap") if cm["metadata"]["name"] == "estate-config"]
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


def test_inventory_deployment_resources_and_scraping() -> None:
    from services.runtime.http import ops_router

    routes = {getattr(route, "path", "") for route in ops_router().routes}
    (deployment,) = [d for d in k8s("Deployment") if d["metadata"]["name"] == "inventory"]
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["resources"]["limits"]["memory"] == "384Mi"
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


def deployment(name: str) -> dict[str, object]:
    (found,) = [d for d in k8s("Deployment") if d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_every_service_has_a_deployment_running_it_and_a_service(name: str) -> None:
    d = deployment(name)
    (container,) = d["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    command = [*container["command"], *container["args"]]
    assert command[:4] == ["estate", "run", "--service", name]
    assert {"name": "ESTATE_SERVICE_NAME", "value": name} in container["env"]
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    template = d["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == name, "the scrape config makes it the job"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert [s for s in k8s("Service") if s["spec"]["selector"] == {"app.kubernetes.io/name": name}]


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_every_deployment_probes_readiness_liveness_and_startup_on_the_ops_routes(name: str) -> None:
    """Ready = the store and the bus answer; live = the process answers (a store outage must not
    restart every pod); the startup probe holds the liveness probe off while the service starts."""
    from services.runtime.http import ops_router

    routes = {getattr(route, "path", "") for route in ops_router().routes}
    (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
    expected = {"readinessProbe": "/health/ready", "livenessProbe": "/health/live", "startupProbe": "/health/live"}
    for probe, path in expected.items():
        assert probe in container, f"{name} has no {probe}"
        assert container[probe]["httpGet"]["path"] == path and path in routes, f"{name} {probe}"
        assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe} probes a port the container lacks"
    startup = container["startupProbe"]
    liveness = container["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, f"{name}: too little time to start"
    assert liveness["periodSeconds"] * liveness.get("failureThreshold", 3) >= 30, f"{name}: restarts on one blip"


def test_replicas_respect_the_partitions_and_disruption_budgets_leave_one_pod_free() -> None:
    (config,) = [cm for cm in k8s("ConfigMap") if cm["metadata"]["name"] == "estate-config"]
    partitions = int(config["data"]["ESTATE_TOPIC_PARTITIONS"])
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: b for b in k8s("PodDisruptionBudget")}
    for d in k8s("Deployment"):
        name, replicas = d["metadata"]["name"], d["spec"]["replicas"]
        assert 1 <= replicas <= partitions, f"{name}: {replicas} replicas, {partitions} partitions: some would idle"
        if replicas > 1:
            assert budgets[name]["spec"]["minAvailable"] < replicas, name
        else:
            assert name not in budgets, f"{name}: a budget on one replica blocks every node drain"


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    """kubernetes-validate ships the API schemas: strict validation, offline."""
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    documents = [doc for resource in kustomization["resources"] if (K8S_DIR / resource).is_file()
                 for doc in yaml.safe_load_all((K8S_DIR / resource).read_text()) if doc]
    assert {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"} == set(registry.SERVICES)
    for doc in documents:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    broken = {**deployment("inventory"), "spec": {**deployment("inventory")["spec"], "replicas": "two"}}  # type: ignore[dict-item]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


def test_the_kustomize_output_validates_against_the_kubernetes_schemas() -> None:
    """What `kubectl kustomize deploy/k8s` renders (kustomize build; deploy/local/kustomize.sh
    builds it): every object, strictly validated, the four services' Deployments among them."""
    documents = rendered_k8s()
    assert {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"} == set(registry.SERVICES)
    assert all(d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace")
    for doc in documents:
        kubernetes_validate.validate(doc, "1.33", strict=True)


def test_the_rendered_prometheus_config_map_carries_the_alert_rules_unchanged() -> None:
    """deploy/prometheus/alerts.yml is the one copy of the rules: compose mounts it, and kustomize
    renders it, byte for byte, into the estate-prometheus ConfigMap beside the scrape config."""
    data = rendered_config_map("estate-prometheus")["data"]
    assert data.keys() == {"prometheus.yml", ALERTS_FILE.name}
    assert data[ALERTS_FILE.name] == ALERTS_FILE.read_text()
    assert yaml.safe_load(data[ALERTS_FILE.name]) == load_yaml(ALERTS_FILE)
    assert data["prometheus.yml"] == (K8S_DIR / "prometheus.yml").read_text()
    rule_files = yaml.safe_load(data["prometheus.yml"])["rule_files"]
    assert rule_files and set(rule_files) <= data.keys(), "a rule file is not in the ConfigMap beside the config"


def kubernetes_prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(rendered_config_map("estate-prometheus")["data"]["prometheus.yml"])
    return config


def test_the_kubernetes_scrape_config_keeps_annotated_pods_and_labels_job_and_platform() -> None:
    """The labels the alerts select on (job = the service, platform = estate) and the annotations
    the Deployments carry."""
    prometheus = kubernetes_prometheus_config()
    assert prometheus["rule_files"] == [ALERTS_FILE.name]
    (job,) = prometheus["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["estate"]}}]
    relabels = job["relabel_configs"]
    assert {"target_label": "platform", "replacement": "estate"} in relabels
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "job"} in relabels
    keep = [r for r in relabels if r.get("action") == "keep"]
    assert keep == [{"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true",
                     "action": "keep"}]


def test_promtool_accepts_the_kubernetes_prometheus_config_and_its_rules(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes discovery, so the pod discovery is swapped for
    a static target; the rest (relabelling regexes and targets, rule files) is promtool's to check,
    with the ConfigMap's two files side by side as a Prometheus pod mounts them."""
    data = rendered_config_map("estate-prometheus")["data"]
    config = kubernetes_prometheus_config()
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    (tmp_path / ALERTS_FILE.name).write_text(data[ALERTS_FILE.name])

    def check(prometheus: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
        return subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    done = check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(alert_rules())} rules found" in done.stdout + done.stderr
    relabels = config["scrape_configs"][0]["relabel_configs"]
    (address,) = [r for r in relabels if r.get("target_label") == "__address__"]
    address["regex"] = "(.+;(\\d+)"
    assert check(config).returncode != 0, "promtool does not look at the relabelling"
