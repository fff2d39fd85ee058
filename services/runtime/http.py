"""HTTP plumbing every service shares: error shape, body limit, metrics and tracing, ops routes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.runtime.errors import FieldError, InvalidInput, PayloadTooLarge, ProblemError

PROBLEM_JSON = "application/problem+json"


def problem_response(error: ProblemError, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(request.url.path), status_code=error.status,
                        media_type=PROBLEM_JSON, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return problem_response(error, request, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [FieldError(_location(e["loc"]), e["msg"]) for e in error.errors()]
        detail = "; ".join(f"{e.location}: {e.message}" for e in errors[:5])
        return problem_response(InvalidInput(detail, errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(_HttpProblem(error.status_code, str(error.detail)), request)


class _HttpProblem(ProblemError):
    """A plain HTTP error from the framework (unknown route, wrong method), in our shape."""

    code = "http-error"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status  # type: ignore[misc]
        self.title = detail  # type: ignore[misc]


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before a handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes} bytes")
        response = JSONResponse(error.body(scope["path"]), status_code=413, media_type=PROBLEM_JSON)
        await response(scope, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def install_observability(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        runtime = request.app.state.runtime
        started = time.perf_counter()
        context = propagate.extract(dict(request.headers))
        with runtime.telemetry.tracer.start_as_current_span(
            f"{request.method} {request.url.path}", context=context, kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.url.path},
        ) as span:
            response: Response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", "unmatched")
            span.update_name(f"{request.method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
        runtime.metrics.http_requests.labels(service, request.method, route, str(response.status_code)).inc()
        runtime.metrics.http_latency.labels(service, request.method, route).observe(time.perf_counter() - started)
        return response


def ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/health/ready", summary="The store and the bus answer",
                responses={503: {"description": "A dependency does not answer"}})
    async def ready(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        for name, probe in (("store", runtime.store.ping), ("bus", runtime.bus.ping)):
            try:
                await asyncio.wait_for(probe(), timeout=5)
                checks[name] = "ok"
            except Exception as error:  # noqa: BLE001 - reported, not raised
                checks[name] = f"error: {type(error).__name__}: {error}"
        if runtime.seeding != "off":
            checks["sample_estate"] = "ok" if runtime.seeding == "done" else runtime.seeding
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.runtime.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return router
