"""A real Prometheus (Debian's package, started here on 127.0.0.1 with its own storage) scrapes
the four services, each a process of its own started by ``estate run --service <name>`` on the
real Kafka and FerretDB, while they do some work. Then every dashboard panel's query and every
alert rule's expression runs against it through the HTTP API: each parses; each panel returns
data, not only NaN; a panel with an ``or ... * 0`` fallback answers without it too (or, where
nothing matched its filter in a healthy run, the series it filters exist with the label it
filters on); the per-service panels have a series for every service that consumes or relays an
outbox; every rule loaded from deploy/prometheus/alerts.yml evaluates without error."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from contracts.envelope import new_envelope
from contracts.inventory import DEVICES_TOPIC, DeviceRegisteredV1, DeviceSnapshot, DeviceUpdatedV1
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
CONSUMING = frozenset(registry.SERVICES)
"""The services with consumers (each one's consumers.py subscribes to topics)."""
RELAYING = frozenset(name for name in registry.SERVICES if registry.unit(name).publishes)
"""The services that publish through an outbox (all but reporting, which publishes nothing)."""
PER_SERVICE = {"platform-health/Consumer lag/A": CONSUMING, "platform-health/Outbox backlog/A": RELAYING,
               "platform-health/Clear misses/A": RELAYING, "platform-health/Lease holder/A": RELAYING}
"""Panels with a series per service (job): the services each must show."""
HISTORY_DAYS = 14
"""Days of earlier history the test publishes, back-dated (see ``history``)."""
FALLBACK = re.compile(r"\s*\bor\b(?:(?!\bor\b).)*?\*\s*0(?=\s*(?:\)|$))", re.S)
"""A panel query's ``or <expression> * 0`` fallback, which answers 0 wherever the expression has series."""
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHED_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def substitute(expr: str) -> str:
    """A panel's query as Grafana sends it with every service selected."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", ".*")


def panel_queries() -> list[tuple[str, str]]:
    return [(f"{path.stem}/{panel['title']}/{target['refId']}", target["expr"])
            for path, dashboard in dashboards() for panel in panels(dashboard) if panel["type"] != "row"
            for target in panel["targets"]]


def primary(expr: str) -> str | None:
    """The query without its ``or ... * 0`` fallback; None if it has none."""
    own = FALLBACK.sub("", expr)
    return own if own != expr else None


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


async def history(bootstrap: str) -> None:
    """An earlier estate's last two weeks on inventory.devices, back-dated as a replayed log
    would hold them: Windows XP desktops registered ``HISTORY_DAYS`` days ago, one upgraded to
    Windows 8.1 each day since. Reporting's forecast needs at least 8 days of daily legacy counts
    (services/reporting/forecast.py); until then it has none and its gauges say NaN (unknown,
    not 0: a 0% chance or 0 days left would be false). Processes started a minute ago have one
    day, so without this history the forecast panels could only show NaN."""
    start = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    location = {"site": f"History {uuid.uuid4().hex[:6]} Police Station", "borough": "Camden",
                "unit": "Territorial Policing"}
    devices = [DeviceSnapshot.model_validate({
        **device_body(f"MPS-D-H{uuid.uuid4().hex[:6].upper()}", location=location),
        "state": "in_service", "version": 1, "registered_at": start, "updated_at": start})
        for _ in range(HISTORY_DAYS + 6)]
    events = [new_envelope(type="inventory.device.registered.v1", source="/estate/inventory", subject=d.asset_tag,
                           time=start, data=DeviceRegisteredV1(device=d)) for d in devices]
    for day, device in enumerate(devices[:HISTORY_DAYS - 1], start=1):
        at = start + timedelta(days=day)
        upgraded = DeviceSnapshot.model_validate({**device.model_dump(), "version": 2, "updated_at": at,
                                                  "os": {"family": "windows", "version": "8.1"}})
        events.append(new_envelope(type="inventory.device.updated.v1", source="/estate/inventory",
                                   subject=device.asset_tag, time=at, data=DeviceUpdatedV1(
                                       asset_tag=device.asset_tag, version=2, changed_fields=["os"],
                                       device=upgraded)))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(DEVICES_TOPIC, event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


async def work(settings: Settings, running: dict[str, ServiceProcess]) -> None:
    """A little of everything: two weeks of history, devices registered one by one and imported,
    assessed (one blocked, one below the hardware minimum), a wave that migrates some, a 404, a
    poison message."""
    await history(settings.kafka_bootstrap)
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


def numbers(answer: list[dict[str, Any]]) -> list[float]:
    """The answer's values that are numbers (not NaN)."""
    return [v for r in answer if not math.isnan(v := float(r["value"][1]))]


async def panel_problems(prometheus: Prometheus, where: str, expr: str) -> list[str]:
    """What is wrong with one panel query's answer: none, or NaN only; a service missing from a
    per-service panel; a fallback that hides its own query's missing series."""
    answer = await prometheus.results(substitute(expr))
    if not answer:
        return [f"{where}: no data"]
    problems = []
    if not numbers(answer):
        problems.append(f"{where}: NaN only")
    if where in PER_SERVICE and (jobs := {r["metric"].get("job") for r in answer}) != PER_SERVICE[where]:
        problems.append(f"{where}: series for {sorted(map(str, jobs))}, not {sorted(PER_SERVICE[where])}")
    own = primary(expr)
    if own is not None and not numbers(await prometheus.results(substitute(own))):
        # Nothing matched its filter (a healthy run serves no 5xx, say), or only routes idle for
        # the rate interval did (0/0): the series it filters must exist, in every service,
        # carrying the label it filters on.
        for name, matchers in SELECTOR.findall(substitute(own)):
            for label in set(MATCHED_LABEL.findall(matchers)) - {"job"}:
                carrying = await prometheus.results(f"count by (job, {label}) ({name})")
                jobs = {r["metric"].get("job") for r in carrying if r["metric"].get(label)}
                if jobs != set(registry.SERVICES):
                    problems.append(f"{where}: without its fallback, no {name} series with {label!r} in "
                                    f"{sorted(set(registry.SERVICES) - jobs)}")
    return problems


async def test_every_panel_and_alert_query_runs_against_prometheus_scraping_the_four_services(
        prometheus: Prometheus, services: tuple[Settings, dict[str, ServiceProcess]]) -> None:
    settings, running = services

    async def all_up() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in await prometheus.results('up{platform="estate"}')}
        return up == dict.fromkeys(registry.SERVICES, "1")
    # Scraped before the work: a rate() sees only increases after a series' first scrape.
    await eventually(all_up, "prometheus scraping all four services", 30)
    await work(settings, running)

    queries = panel_queries()
    assert len(queries) > 30
    assert "platform-health/5xx error ratio by route/A" in {where for where, expr in queries if primary(expr)}
    assert PER_SERVICE.keys() <= {where for where, _ in queries}
    problems: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:  # scrapes every second; some figures (dead letters, gauges refreshed every second) lag
        problems = [problem for where, expr in queries for problem in await panel_problems(prometheus, where, expr)]
        if not problems or loop.time() > deadline:
            break
        await asyncio.sleep(2)
    assert not problems, "\n".join(problems)

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
    # Two weeks of a falling legacy count: a forecast, not NaN.
    [days_left] = await prometheus.results("estate_forecast_days_left")
    [by_deadline] = await prometheus.results("estate_forecast_probability_by_deadline")
    assert float(days_left["value"][1]) >= 0 and 0 <= float(by_deadline["value"][1]) <= 1
