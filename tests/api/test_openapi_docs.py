"""The API describes itself: every error answer a problem+json, the import body in both media
types, and /docs served from the app's own assets (no CDN)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.asyncio

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


async def test_every_error_answer_is_a_documented_problem(app: FastAPI) -> None:
    document = app.openapi()
    assert set(document["components"]["schemas"]["Problem"]["required"]) >= {
        "type", "title", "status", "detail", "instance"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) >= 400 and not path.startswith("/health"):
                assert response["content"] == PROBLEM, (method, path, status)


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("POST", "/devices", {401, 403, 409, 413, 422, 503}),
    ("GET", "/devices", {401, 403, 422, 503}),
    ("POST", "/devices/import", {401, 403, 413, 415, 422, 503}),
    ("GET", "/devices/{asset_tag}", {401, 403, 404, 503}),
    ("PATCH", "/devices/{asset_tag}", {401, 403, 404, 409, 412, 413, 422, 503}),
    ("POST", "/devices/{asset_tag}/state", {401, 403, 404, 409, 412, 413, 422, 503}),
    ("POST", "/devices/{asset_tag}/retire", {401, 403, 404, 409, 412, 413, 422, 503}),
    ("POST", "/devices/{asset_tag}/dispose", {401, 403, 404, 409, 412, 413, 422, 503}),
])
async def test_each_operation_documents_the_failures_it_can_answer(
        app: FastAPI, method: str, path: str, statuses: set[int]) -> None:
    responses = app.openapi()["paths"][path][method.lower()]["responses"]
    assert {int(s) for s in responses if int(s) >= 400} >= statuses


async def test_the_import_declares_its_body_in_both_media_types(app: FastAPI) -> None:
    body = app.openapi()["paths"]["/devices/import"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"] == {"text/csv": {"schema": {"type": "string"}},
                               "application/x-ndjson": {"schema": {"type": "string"}}}


async def test_docs_load_only_local_assets_and_they_are_served(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and not [u for u in urls if "//" in u], urls  # no absolute (CDN) URL
    assert "http://" not in page.text and "https://" not in page.text
    assert "/docs/assets/swagger-ui-bundle.js" in urls and "/docs/assets/swagger-ui.css" in urls
    for url in urls:
        asset = await anonymous.get(url)
        assert asset.status_code == 200, url
    assert "SwaggerUIBundle" in (await anonymous.get("/docs/assets/swagger-ui-bundle.js")).text
    assert (await anonymous.get("/redoc")).status_code == 404  # no page that would need a CDN
