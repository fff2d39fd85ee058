"""HTTP plumbing every service shares: error shape, body limit, metrics and tracing, ops routes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.runtime.errors import (
    Conflict,
    FieldError,
    InternalError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProblemError,
    ServiceUnavailable,
)
from services.runtime.repository import AlreadyStored, KeptChanging, NotStored, RepositoryError, VersionMismatch
from services.runtime.store import StoreUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBE_GRACE_S = 0.25
"""Readiness gives each probe ``store_timeout_s``; a probe that keeps to it itself (the store's
ping does) answers first, with its reason; this much later the probe is abandoned."""


def problem_response(error: ProblemError, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(request.url.path), status_code=error.status,
                        media_type=PROBLEM_JSON, headers=headers)


def _location(error: Any) -> str:
    """Where a validation error is. A rule on a whole object that raised an error carrying a
    ``field`` (like inventory's ``DomainError``) is placed at that field."""
    loc = tuple(error["loc"])
    field = getattr((error.get("ctx") or {}).get("error"), "field", None)
    if isinstance(field, str) and field:
        loc += tuple(field.split("."))
    return ".".join(str(part) for part in loc)


_PROBLEM_OF: dict[type[RepositoryError], type[ProblemError]] = {
    NotStored: NotFound, AlreadyStored: Conflict, VersionMismatch: PreconditionFailed, KeptChanging: Conflict,
}
"""How the answer names what a repository refused."""


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return problem_response(error, request, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [FieldError(_location(e), e["msg"]) for e in error.errors()]
        detail = "; ".join(f"{e.location}: {e.message}" for e in errors[:5])
        return problem_response(InvalidInput(detail, errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error.__cause__, UnicodeDecodeError):  # the framework could not read the body
            where = error.__cause__.start
            return problem_response(InvalidInput(f"the body is not UTF-8 text (byte {where})",
                                                 [FieldError("body", f"not UTF-8 at byte {where}")]), request)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request, headers.get("Allow")))
        return problem_response(_HttpProblem(error.status_code, str(error.detail)), request, headers or None)

    @app.exception_handler(RepositoryError)
    async def _repository(request: Request, error: RepositoryError) -> JSONResponse:
        return problem_response(_PROBLEM_OF[type(error)](str(error)), request)

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, error: StoreUnavailable) -> JSONResponse:
        return unavailable_response(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Last resort for errors outside the observe middleware (which answers the rest):
        # Starlette's ServerErrorMiddleware sends this, then re-raises for the server to log.
        return unexpected_error_response(request, error)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request, declared: str | None = None) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``): the
    router names only the first route that matched the path, not its siblings."""
    methods = {m.strip() for m in (declared or "").split(",") if m.strip()}
    for route in request.app.router.routes:
        if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            if route.matches(request.scope)[0] is not Match.NONE:
                methods |= {"GET", "HEAD"}
            continue
        methods |= {m for m in _METHODS if route.matches({**request.scope, "method": m})[0] is Match.FULL}
    return sorted(methods)


def unavailable_response(request: Request, error: StoreUnavailable) -> JSONResponse:
    """503: the store does not answer. The reason (with the store's address) goes to the log
    and to /health/ready, not to the caller."""
    retry_after = request.app.state.runtime.settings.retry_after_s
    log.warning("%s %s: store unavailable: %s", request.method, request.url.path, error)
    problem = ServiceUnavailable(f"The document store does not answer at the moment; try again in {retry_after} s.")
    return problem_response(problem, request, {"Retry-After": str(retry_after)})


def unexpected_error_response(request: Request, error: BaseException) -> JSONResponse:
    """500 that leaks nothing: a generic detail and an error id, logged with the traceback."""
    error_id = uuid.uuid4().hex
    log.error("unhandled error %s in %s %s", error_id, request.method, request.url.path,
              exc_info=(type(error), error, error.__traceback__))
    return problem_response(InternalError(error_id), request)


class _HttpProblem(ProblemError):
    """A plain HTTP error from the framework (unknown route, wrong method), in our shape."""

    code = "http-error"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status  # type: ignore[misc]
        self.title = detail  # type: ignore[misc]


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before a handler reads them, whether
    the body declares its length or comes in chunks (then the read that crosses the limit fails
    with ``RequestTooLarge``, which the error handlers answer as the 413)."""

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
        responded = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise RequestTooLarge(self.max_bytes)
            return message

        async def sending(message: Message) -> None:
            nonlocal responded
            responded = True
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except RequestTooLarge:
            if responded:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = RequestTooLarge(self.max_bytes)
        response = JSONResponse(error.body(scope["path"]), status_code=413, media_type=PROBLEM_JSON)
        await response(scope, _no_receive, send)


class RequestTooLarge(PayloadTooLarge, StarletteHTTPException):
    """A body read crossed the limit. Also an ``HTTPException`` so that the framework's own body
    parsing lets it through (it turns any other error into a 400) to the problem handler."""

    def __init__(self, max_bytes: int) -> None:
        PayloadTooLarge.__init__(self, f"the request body is over the limit of {max_bytes} bytes")
        StarletteHTTPException.__init__(self, 413, self.detail)


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
            try:
                response: Response = await call_next(request)
            except Exception as error:  # noqa: BLE001 - answered as a problem, counted, traced, logged
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                response = unexpected_error_response(request, error)
            route = getattr(request.scope.get("route"), "path", "unmatched")
            span.update_name(f"{request.method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500 and span.status.status_code is not StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR))
        runtime.metrics.http_requests.labels(service, request.method, route, str(response.status_code)).inc()
        runtime.metrics.http_latency.labels(service, request.method, route).observe(time.perf_counter() - started)
        return response


async def _probe(probe: Callable[[], Awaitable[None]], timeout_s: float) -> str:
    """``ok``, or why not in words: ``unreachable: <why>`` or ``error: <type>: <message>``."""
    deadline = asyncio.timeout(timeout_s + PROBE_GRACE_S)
    try:
        async with deadline:
            await probe()
        return "ok"
    except StoreUnavailable as error:
        return f"unreachable: {error}"
    except TimeoutError as error:
        if deadline.expired():
            return f"unreachable: no answer within {timeout_s} s"
        return _described(error)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return _described(error)


def _described(error: Exception) -> str:
    text = str(error).strip()
    return f"error: {type(error).__name__}: {text}" if text else f"error: {type(error).__name__}"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Per dependency: ok, or why not")


def ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/health/ready", summary="The store and the bus answer", response_model=Readiness,
                responses={503: {"model": Readiness, "description": "A dependency does not answer"}})
    async def ready(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        timeout_s = runtime.settings.store_timeout_s
        store, bus = await asyncio.gather(_probe(runtime.store.ping, timeout_s), _probe(runtime.bus.ping, timeout_s))
        checks: dict[str, str] = {"store": store, "bus": bus}
        if runtime.seeding != "off":
            checks["sample_estate"] = "ok" if runtime.seeding == "done" else runtime.seeding
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.runtime.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return router


def handlers_of(service: str) -> Callable[[Request], Any]:
    """A route dependency: the named service's handlers on this app's runtime (what its
    ServiceUnit.setup put in ``runtime.services``). Use as
    ``Annotated[MyHandlers, Depends(handlers_of("my-service"))]``."""
    def handlers(request: Request) -> Any:
        return request.app.state.runtime.services[service]
    return handlers
