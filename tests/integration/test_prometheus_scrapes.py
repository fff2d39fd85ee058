"""A real Prometheus (Debian's package, started here on 127.0.0.1 with its own storage) scrapes
the four services, each a process of its own started by ``estate run --service <name>`` on the
real Kafka and FerretDB, while they do some work. Then every dashboard panel's query and every
alert rule's expression runs against it through the HTTP API: each parses, each panel returns
data, every rule loaded from deploy/prometheus/alerts.yml evaluates without error."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services import registry
from services.runtime.auth import Role
from services.runtime.settings import Settings
from tests.conftest import bearer, distributed_settings
from tests.deploy.support import ALERTS_FILE, PROMETHEUS_DIR, ROOT, alert_rules, dashboards, panels
from tests.integration.conftest import free_port, produce
from tests.integration.groups import every_service_begins_at_end
from tests.integration.processes import ServiceProcess, _env
from tests.samples import CSV_HEADER, csv_line, device_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

RATE_INTERVAL = "30s"
"""What $__rate_interval stands for here (Grafana makes it at least four scrape intervals; 1s here)."""


def substitute(expr: str) -> str:
    """A panel's query as Grafana sends it with every service selected."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", ".*")


def panel_queries() -> list[tuple[str, str]]:
    return [(f"{path.stem}/{panel['title']}/{target['refId']}", target["expr"])
            for path, dashboard in dashboards() for panel in panels(dashboard) if panel["type"] != "row"
            for target in panel["targets"]]


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard/$variable, series selector, label) of every label_values() variable."""
    found = []
    for path, dashboard in dashboards():
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            for selector, label in re.findall(r"label_values\((.+),\s*(\w+)\s*\)", text):
                found.append((f"{path.stem}/${variable['name']}", selector.strip(), label))
    return found


def prometheus_config(targets: dict[str, str], rules: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with the estate jobs pointed at the local processes,
    scraped every second; same job names, labels and rule file."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = []
    for job in config["scrape_configs"]:
        groups = job.get("static_configs", [])
        if job["job_name"] in targets:
            groups = [{**g, "targets": [targets[job["job_name"]]]} for g in groups]
            jobs.append({**job, "static_configs": groups})
    assert {j["job_name"] for j in jobs} == set(targets), "prometheus.yml has no job for some service"
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)], "scrape_configs": jobs}


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: `bash deploy/local/prometheus.sh install` (make test runs it)",
                    pytrace=False)
    return found


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def query(self, expr: str) -> dict[str, Any]:
        answer = await self.http.post("/api/v1/query", data={"query": expr})
        body: dict[str, Any] = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body

    async def results(self, expr: str) -> list[dict[str, Any]]:
        return list((await self.query(expr))["data"]["result"])


@pytest.fixture
async def services(kafka_bootstrap: str, mongo_url: str) -> AsyncIterator[tuple[Settings, dict[str, ServiceProcess]]]:
    settings = distributed_settings(kafka_bootstrap, mongo_url)
    await every_service_begins_at_end(kafka_bootstrap, settings.consumer_group_prefix)
    env = {**_env(settings), "PYTHONPATH": str(ROOT),
           "ESTATE_LOG_LEVEL": os.environ.get("ESTATE_TEST_LOG_LEVEL", "WARNING"),
           "ESTATE_WAVE_INTERVAL_S": "0.5", "ESTATE_REPORTING_REFRESH_S": "1", "ESTATE_EXPIRY_CHECK_INTERVAL_S": "1",
           "ESTATE_EXECUTOR_FAILURE_RATE": "0"}
    env.pop("ESTATE_SERVICE_NAME", None)
    running: dict[str, ServiceProcess] = {}
    try:
        for name in registry.SERVICES:
            port = free_port()
            sample = ["--sample-estate"] if name == "procurement" else ["--no-sample-estate"]  # call-off contracts
            command = [sys.executable, "-c", "from services.cli import app; app()", "run", "--service", name,
                       "--host", "127.0.0.1", "--port", str(port), *sample]
            running[name] = ServiceProcess(f"http://127.0.0.1:{port}",
                                           subprocess.Popen(command, env=env, cwd=ROOT), settings)
        yield settings, running
    finally:
        for process in running.values():
            process.stop()


async def until_ready(service: ServiceProcess, name: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(1200):
            assert service.process.poll() is None, f"{name} exited during start-up"
            try:
                if (await http.get(f"{service.url}/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not become ready")


@pytest.fixture
async def prometheus(prometheus_binary: str, services: tuple[Settings, dict[str, ServiceProcess]],
                     tmp_path: Path) -> AsyncIterator[Prometheus]:
    _, running = services
    for name, service in running.items():
        await until_ready(service, name)
    rules = tmp_path / "alerts.yml"
    shutil.copy(ALERTS_FILE, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(
        {name: s.url.removeprefix("http://") for name, s in running.items()}, rules)))
    port = free_port()
    process = subprocess.Popen(
        [prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(300):
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                try:
                    if (await http.get("/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("prometheus did not become ready")
        yield Prometheus(url)
    finally:
        process.terminate()
        process.wait(30)


async def work(settings: Settings, running: dict[str, ServiceProcess]) -> None:
    """A little of everything: devices registered one by one and imported, assessed (one blocked,
    one below the hardware minimum), a wave that migrates some, a 404, a poison message."""
    headers = bearer(settings, Role.ADMIN)
    site = f"Ops {uuid.uuid4().hex[:6]} Police Station"
    location = {"site": site, "borough": "Camden", "unit": "Territorial Policing"}
    tags = [f"MPS-D-{uuid.uuid4().hex[:6].upper()}" for _ in range(4)]
    async with httpx.AsyncClient(base_url=running["inventory"].url, headers=headers, timeout=60) as inventory, \
            httpx.AsyncClient(base_url=running["migration"].url, headers=headers, timeout=60) as migration:
        bodies = [device_body(tags[0], location=location), device_body(tags[1], location=location),
                  device_body(tags[2], location=location, applications=["NSPIS Custody"]),
                  device_body(tags[3], location=location,
                              hardware={**device_body()["hardware"], "ram_mb": 1024})]
        for body in bodies:
            created = await inventory.post("/devices", json=body)
            assert created.status_code == 201, created.text
        prefix = f"MPS-D-{uuid.uuid4().hex[:4].upper()}"
        csv = "\n".join([CSV_HEADER, *(csv_line(f"{prefix}{n:02d}") for n in range(10))]) + "\n"
        imported = await inventory.post("/devices/import", content=csv, headers={"content-type": "text/csv"})
        assert imported.status_code == 200, imported.text
        assert (await inventory.get("/devices/MPS-D-NOSUCH")).status_code == 404

        async def assessed() -> bool:
            answers = [await migration.get(f"/migration/devices/{t}") for t in tags]
            return all(a.status_code == 200 and a.json()["readiness"] is not None for a in answers)
        await eventually(assessed, "migration assessing the devices")
        planned = await migration.post("/migration/waves", json={
            "name": "Ops", "sites": [site], "start_date": str(datetime.now(UTC).date()), "daily_capacity": 10})
        assert planned.status_code == 201, planned.text
        wave_id = planned.json()["wave"]["wave_id"]

        async def migrated() -> bool:
            return bool((await migration.get(f"/migration/waves/{wave_id}")).json()["progress"]["migrated"] >= 1)
        await eventually(migrated, "the wave migrating a device")
    await produce(settings.kafka_bootstrap, "procurement.deliveries", f"poison-{uuid.uuid4().hex[:8]}",
                  b"{not an envelope")


async def eventually(probe: Any, what: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.25)


async def test_every_panel_and_alert_query_runs_against_prometheus_scraping_the_four_services(
        prometheus: Prometheus, services: tuple[Settings, dict[str, ServiceProcess]]) -> None:
    settings, running = services
    await work(settings, running)

    async def all_up() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in await prometheus.results('up{platform="estate"}')}
        return up == dict.fromkeys(registry.SERVICES, "1")
    await eventually(all_up, "prometheus scraping all four services", 30)

    queries = panel_queries()
    assert len(queries) > 30
    empty: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:  # scrapes every second; some figures (dead letters, gauges refreshed every second) lag
        empty = [where for where, expr in queries if not await prometheus.results(substitute(expr))]
        if not empty or loop.time() > deadline:
            break
        await asyncio.sleep(2)
    assert empty == [], f"panels without data: {empty}"

    for where, selector, label in variable_queries():
        answer = await prometheus.http.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
        assert answer.status_code == 200, answer.text
        assert set(registry.SERVICES) <= set(answer.json()["data"]), where

    for rule in alert_rules():
        await prometheus.query(rule["expr"])  # parses and evaluates
    loaded = (await prometheus.http.get("/api/v1/rules")).json()["data"]["groups"]
    rules = [r for group in loaded for r in group["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    await asyncio.sleep(3)  # a few evaluation rounds
    rules = [r for g in (await prometheus.http.get("/api/v1/rules")).json()["data"]["groups"] for r in g["rules"]]
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

    # The figures are the work's, not just present: the services' own series, by job.
    jobs = {r["metric"]["job"] for r in await prometheus.results("sum by (job) (http_requests_total)")}
    assert jobs == set(registry.SERVICES)
    [dead] = await prometheus.results('sum(dead_letters_total{topic="procurement.deliveries"})')
    assert float(dead["value"][1]) >= 1
    [blocked] = await prometheus.results("estate_devices_blocked")
    assert float(blocked["value"][1]) >= 1
    [sagas] = await prometheus.results('sum(migration_sagas_ended_total{state="migrated"})')
    assert float(sagas["value"][1]) >= 1
