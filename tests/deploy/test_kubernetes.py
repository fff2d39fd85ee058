"""The deployment files agree with the code they deploy."""

from __future__ import annotations

import re

import pytest

from tests.deploy.support import (
    K8S_DIR,
    TEST_SECRET,
    containers,
    docker_cmd,
    k8s,
    k8s_objects,
    load_yaml,
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
