"""The programme report in a real headless browser (Debian's chromium, driven over the DevTools
protocol by services/cli/browser.py): the embedded platform, served by uvicorn on 127.0.0.1 with
devices in two boroughs, a fortnight's burn-down, blocked devices and an order through a
framework; the page loads with no console error and no failed request, its charts have the
series the figures call for (read from the rendered DOM, with their drawn sizes), and a
screenshot PNG is written.

Chromium missing fails the test (as promtool's do): `bash deploy/local/chromium.sh install`,
which `make test` and `make unit` run."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.browser import Browser, BrowserError
from services.registry import units
from services.runtime.app import create_app as create_platform_app
from services.runtime.auth import Role, issue_token
from services.runtime.clock import FixedClock
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.conftest import AT, bearer, served_in_a_thread
from tests.samples import device_body

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOROUGHS = {"Camden": "Holborn Police Station", "Barnet": "Colindale Police Station"}
SETTINGS = Settings(outbox_scan_interval_s=0.1)


def chromium() -> Browser:
    try:
        return Browser(timeout_s=60)
    except BrowserError as error:
        pytest.fail(f"{error}", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = chromium()
    try:
        yield b
    finally:
        b.close()


def eventually(get: Callable[[], Any], check: Callable[[Any], bool], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = get()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"
        time.sleep(0.05)


def populate(http: httpx.Client, approver: httpx.Client, clock: FixedClock) -> dict[str, Any]:
    """30 desktops in two boroughs (4 blocked by applications), one a day leaving Windows XP for
    a fortnight, and two laptops ordered through Sprint ii: the summary once reporting has it."""
    for n in range(30):
        borough = "Camden" if n % 3 else "Barnet"
        apps = ["NSPIS Custody"] if n >= 26 else ["AWARE Command and Control"] if n == 25 else []
        body = device_body(f"MPS-D-{n:06d}", applications=apps, location={
            "site": BOROUGHS[borough], "borough": borough, "unit": "Territorial Policing"})
        assert http.post("/devices", json=body).status_code == 201
    for n in range(14):
        clock.advance(timedelta(days=1))
        changed = http.patch(f"/devices/MPS-D-{n:06d}", json={"os": {"family": "windows", "version": "8.1"}})
        assert changed.status_code == 200, changed.text
    assert http.post("/procurement/contracts", json={
        "contract_id": "CO-LAPTOPS", "title": "Laptops for officers", "framework_id": "SPRINT-II",
        "lot": "Lot 1: IT equipment", "supplier": "Dell", "category": "end_user_devices",
        "classification": "modern", "route": "further_competition", "value_pence": 100_000_000,
        "start": "2015-04-01", "initial_term_months": 24}).status_code == 201
    raised = http.post("/procurement/purchase-requests", json={
        "kind": "laptop", "quantity": 2, "framework_id": "SPRINT-II", "site": BOROUGHS["Camden"],
        "borough": "Camden"})
    assert raised.status_code == 201, raised.text
    rid = raised.json()["request_id"]
    assert http.post(f"/procurement/purchase-requests/{rid}/submit", json={
        "model": "Dell Latitude E7450", "unit_price_pence": 899_00, "contract_id": "CO-LAPTOPS"}).status_code == 200
    assert approver.post(f"/procurement/purchase-requests/{rid}/approve", json={}).status_code == 200
    assert http.post(f"/procurement/purchase-requests/{rid}/order").status_code == 200
    clock.advance(timedelta(hours=1))

    def summary() -> dict[str, Any]:
        return dict(http.get("/reporting/summary").json())
    return dict(eventually(summary, lambda s: s["legacy_remaining"] == 16 and s["spend_committed_gbp"] == 1798
                           and s["forecast"] is not None, "the figures in reporting"))


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """The embedded platform's URL, a reader's headers, and the summary it reports."""
    clock = FixedClock(AT)
    application = create_platform_app(SETTINGS, units(), runtime=Runtime.build(SETTINGS, clock=clock))
    with served_in_a_thread(application) as url:
        writer = httpx.Client(base_url=url, headers=bearer(SETTINGS, Role.WRITER), timeout=30)
        approver = httpx.Client(base_url=url, timeout=30, headers={"Authorization": "Bearer " + issue_token(
            SETTINGS, subject="approver-1", roles=[Role.WRITER], now=datetime.now(UTC))})
        with writer, approver:
            summary = populate(writer, approver, clock)
        yield url, bearer(SETTINGS, Role.READER), summary


def page_own(lines: list[str]) -> list[str]:
    return [line for line in lines if "/favicon.ico" not in line]


CHARTS_JS = """[...document.querySelectorAll('svg[data-chart]')].map(svg => {
  const box = svg.getBoundingClientRect();
  const series = {};
  for (const el of svg.querySelectorAll('[data-series]')) {
    const b = el.getBBox();
    series[el.dataset.series] = {tag: el.tagName, width: b.width, height: b.height,
                                 points: el.getAttribute('data-points')};
  }
  const bars = {};
  for (const el of svg.querySelectorAll('rect[data-bar]')) bars[el.dataset.bar] = el.getBBox().width;
  return {chart: svg.dataset.chart, width: box.width, height: box.height, series, bars};
})"""


def test_the_report_page_renders_in_headless_chromium_with_its_charts_and_a_screenshot(
        browser: Browser, platform: tuple[str, dict[str, str], dict[str, Any]], tmp_path: Path) -> None:
    url, headers, summary = platform
    record = browser.open(f"{url}/report", headers)
    assert record.status == 200
    # the browser asks for /favicon.ico of its own accord (the page links none); nothing else
    assert page_own(record.console_errors) == [] and page_own(record.failed_requests) == []
    assert page_own(record.requests) == [f"{url}/report"], "the page fetched something besides itself"
    assert browser.evaluate("document.title") == "Windows XP migration: programme report"
    shown = browser.evaluate("Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
                             ".map(e => [e.dataset.figure, e.dataset.value]))")
    assert shown["legacy_remaining"] == "16" and shown["forecast.p50"] == summary["forecast"]["p50"]

    charts = {c["chart"]: c for c in browser.evaluate(CHARTS_JS)}
    assert {"burn-down", "boroughs", "blockers", "budget", "frameworks", "classes"} <= charts.keys()
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 20, chart  # drawn, not collapsed
    burn = charts["burn-down"]["series"]
    assert set(burn) == {"legacy", "forecast-p50", "forecast-p85", "forecast-p95", "deadline"}
    assert burn["legacy"]["tag"] == "polyline" and burn["legacy"]["points"] == "15"  # 15 end-of-day counts
    assert burn["legacy"]["width"] > 0 and burn["legacy"]["height"] > 0
    assert all(burn[f"forecast-p{p}"]["tag"] == "polygon" and burn[f"forecast-p{p}"]["width"] > 0
               for p in (50, 85, 95))
    assert burn["deadline"]["tag"] == "line" and burn["deadline"]["height"] > 100
    # the 95% band reaches at least as far right as the 50% one
    assert burn["forecast-p95"]["width"] >= burn["forecast-p50"]["width"]

    boroughs = charts["boroughs"]["bars"]
    assert set(boroughs) == {"Camden", "Barnet"}
    assert set(charts["blockers"]["bars"]) == {"NSPIS Custody", "AWARE Command and Control"}
    assert charts["blockers"]["bars"]["NSPIS Custody"] > charts["blockers"]["bars"]["AWARE Command and Control"]
    assert set(charts["frameworks"]["bars"]) == {"Sprint ii"} and charts["frameworks"]["bars"]["Sprint ii"] > 0
    assert set(charts["budget"]["bars"]) == {"committed", "budget"}
    assert set(charts["classes"]["bars"]) == {"modern"}

    png = browser.screenshot()
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    if keep := os.environ.get("ESTATE_REPORT_SCREENSHOT"):  # to look at it
        Path(keep).write_bytes(png)
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width >= 900 and height > 1500, (width, height)  # the whole page, not the window
    assert shot.stat().st_size > 20_000


def test_the_page_record_catches_console_errors_and_failed_requests(browser: Browser) -> None:
    """The checks above can fail: a page with a script error and an unreachable image is caught."""
    record = browser.open("data:text/html,<p>x</p><script>console.error('broken')</script>"
                          "<img src='http://127.0.0.1:9/missing.png'>")
    assert "broken" in record.console_errors
    assert [r for r in record.failed_requests if "127.0.0.1:9/missing.png" in r]


def test_the_report_page_without_a_token_is_a_401_the_browser_sees(
        browser: Browser, platform: tuple[str, dict[str, str], dict[str, Any]]) -> None:
    url, _, _ = platform
    record = browser.open(f"{url}/report")
    assert record.status == 401 and record.failed_requests == [f"{url}/report: HTTP 401"]
