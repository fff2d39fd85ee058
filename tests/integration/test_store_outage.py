"""The inventory service when its real MongoDB-wire store (FerretDB) goes away or hangs: callers
get a quick 503 problem+json with Retry-After, readiness says why, and the service recovers by
itself once the store is back (no restart)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from services.runtime.settings import Settings
from tests.conftest import distributed_settings
from tests.integration.conftest import RunningService, serve
from tests.integration.faults import TcpProxy, tcp_proxy
from tests.samples import device_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

STORE_TIMEOUT_S = 1.0
WITHIN_S = 3.0
"""A caller must have its answer this soon, whether the store refuses or hangs."""


def new_tag() -> str:
    return f"OUT-{uuid.uuid4().hex[:12].upper()}"


async def timed(request: httpx.Request, http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await http.send(request)
    return answer, time.perf_counter() - started


def assert_unavailable(answer: httpx.Response, took: float, settings: Settings) -> None:
    what = f"{answer.request.method} {answer.request.url.path}"
    assert answer.status_code == 503, f"{what}: {answer.status_code} {answer.text}"
    assert answer.headers["content-type"].startswith("application/problem+json"), what
    assert answer.headers["retry-after"] == str(settings.retry_after_s), what
    problem = answer.json()
    assert problem["status"] == 503 and problem["type"] == "/problems/unavailable", what
    assert took < WITHIN_S, f"{what} took {took:.2f} s to answer 503"


async def eventually_ok(http: httpx.AsyncClient, tag: str, within_s: float = 15.0) -> float:
    started = time.perf_counter()
    last = None
    while time.perf_counter() - started < within_s:
        last = await http.get(f"/devices/{tag}")
        if last.status_code == 200:
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"the service did not recover within {within_s} s: {last and last.text}")


@pytest.fixture
async def proxy(mongo_url: str) -> TcpProxy:  # type: ignore[misc]
    async with tcp_proxy(mongo_url) as running:
        yield running


@pytest.fixture
async def service(kafka_bootstrap: str, proxy: TcpProxy) -> RunningService:  # type: ignore[misc]
    settings = distributed_settings(kafka_bootstrap, proxy.url(), store_timeout_s=STORE_TIMEOUT_S)
    async with serve(settings) as running:
        yield running


@pytest.mark.parametrize("fault", ["cut", "hang"])
async def test_a_store_outage_is_a_quick_503_with_a_reason_and_recovers_without_restart(
        service: RunningService, proxy: TcpProxy, fault: str) -> None:
    settings = service.settings
    async with service.client() as http:
        tag = new_tag()
        created = await http.post("/devices", json=device_body(tag))
        assert created.status_code == 201, created.text

        getattr(proxy, fault)()  # proxy.cut() or proxy.hang()
        try:
            for request in (http.build_request("GET", f"/devices/{tag}"),
                            http.build_request("POST", "/devices", json=device_body(new_tag())),
                            http.build_request("GET", f"/devices/{tag}")):
                answer, took = await timed(request, http)
                print(f"{fault}: {request.method} {request.url.path} -> {answer.status_code} in {took:.2f} s")
                assert_unavailable(answer, took, settings)

            started = time.perf_counter()
            ready = await http.get("/health/ready")
            took = time.perf_counter() - started
            assert ready.status_code == 503, ready.text
            assert took < WITHIN_S, f"readiness took {took:.2f} s"
            reason = ready.json()["checks"]["store"]
            print(f"{fault}: /health/ready store: {reason}")
            assert reason.startswith(f"unreachable: no answer from {proxy.url()} within {STORE_TIMEOUT_S} s ("), reason
            assert ("connection" if fault == "cut" else "timed out") in reason, reason
            assert ready.json()["checks"]["bus"] == "ok"
        finally:
            proxy.restore()

        recovered_in = await eventually_ok(http, tag)
        print(f"{fault}: recovered {recovered_in:.2f} s after restore")
        again = await http.post("/devices", json=device_body(new_tag()))
        assert again.status_code == 201, again.text
        assert (await http.get("/health/ready")).status_code == 200
