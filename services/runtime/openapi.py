"""What every service's OpenAPI document says about errors, and the docs page that shows it.

Routes declare the failures they can answer with ``problem_responses(401, 404, ...)``; every
one of them is ``application/problem+json`` with the ``Problem`` schema (``errors.py``), and
so is the 422 the framework adds for invalid input. A route that reads its body itself
declares it with ``raw_body``. ``install_docs`` serves Swagger UI from the assets of the
``swagger-ui-bundle-v2`` package, so that ``/docs`` works without the internet.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from swagger_ui_bundle import swagger_ui_path

from services.runtime.http import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"
DOCS_URL, DOCS_ASSETS = "/docs", "/docs/assets"

DESCRIPTIONS = {
    400: "The request cannot be read",
    401: "No bearer token, or one that is not valid",
    403: "The token lacks the role this needs",
    404: "No such resource",
    405: "The path does not serve this method (Allow lists those it does)",
    409: "Conflict with the resource's current state",
    412: "If-Match does not match: the resource has changed, or the ETag is weak",
    413: "The request body is over the size limit",
    415: "The body is of a media type this does not read",
    422: "The input is not valid: errors says what and where",
    428: "If-Match is required",
    503: "The store does not answer; try again after Retry-After seconds",
}
PROTECTED = (401, 403, 503)
"""What any route behind a role and the store can answer."""


class FieldProblem(BaseModel):
    location: str = Field(description="Where: e.g. body.os.family, query.limit, header.if-match")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = Field(description="/problems/<code>")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path")
    errors: list[FieldProblem] | None = Field(default=None, description="Invalid input: what and where")
    error_id: str | None = Field(default=None, description="A 500's id in the log")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses`` for the problems it can answer with."""
    return {status: {"description": DESCRIPTIONS[status],
                     "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}
            for status in statuses}


def raw_body(description: str, schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself: its schema per media type."""
    content = {media_type: {"schema": schema} for media_type, schema in schemas.items()}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once), with every error answer a problem+json."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes, tags=app.openapi_tags, servers=app.servers)
        app.openapi_schema = _with_problems(document)
    return app.openapi_schema


def _with_problems(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref", "").endswith("/HTTPValidationError"):  # the framework's 422
                    response.update(problem_responses(int(status))[int(status)])
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI with its assets served from the installed package, not a CDN.
    (The app is made with ``docs_url=None, redoc_url=None``; there is no ReDoc page.)"""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    redirect = f"{DOCS_URL}/oauth2-redirect"

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get(redirect, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
