"""HTTP edges every service shares: chunked bodies over the limit, odd JWT claims, weak ETags,
405 with Allow; each answered as RFC 9457 problem+json."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from services.runtime.settings import Settings
from tests.samples import CSV_HEADER, csv_line, device_body

pytestmark = pytest.mark.asyncio

PROBLEM = "application/problem+json"
LIMIT = 2 * 1024 * 1024  # max_request_bytes in tests/api/conftest.py


def is_problem(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    problem: dict[str, object] = answer.json()
    assert problem["status"] == status
    return problem


async def chunks(first: bytes, filler: bytes, total: int) -> AsyncIterator[bytes]:
    """A body sent without Content-Length: ``first``, then ``filler`` until ``total`` bytes."""
    yield first
    sent = len(first)
    while sent < total:
        yield filler
        sent += len(filler)


# -- a chunked body over the limit is a 413, whichever route reads it -----------------------------------


async def test_a_chunked_import_over_the_limit_is_a_413_problem(writer: httpx.AsyncClient) -> None:
    line = (csv_line("MPS-D-700001") + "\n").encode()
    body = chunks((CSV_HEADER + "\n").encode(), line * 1000, LIMIT + len(line) * 2000)
    answer = await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})
    problem = is_problem(answer, 413)
    assert problem["type"] == "/problems/payload-too-large" and str(LIMIT) in str(problem["detail"])
    assert (await writer.get("/devices/MPS-D-700001")).status_code == 404


async def test_a_chunked_json_body_over_the_limit_is_a_413_problem(writer: httpx.AsyncClient) -> None:
    start = json.dumps(device_body("MPS-D-700002"))[:-1] + ', "padding": "'
    body = chunks(start.encode(), b"x" * 65536, LIMIT + 65536)
    answer = await writer.post("/devices", content=body, headers={"Content-Type": "application/json"})
    assert is_problem(answer, 413)["type"] == "/problems/payload-too-large"


async def test_a_chunked_body_under_the_limit_still_works(writer: httpx.AsyncClient) -> None:
    raw = json.dumps(device_body("MPS-D-700003")).encode()
    answer = await writer.post("/devices", content=chunks(raw[:10], raw[10:], len(raw)),
                               headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text


# -- a token whose roles claim is not a list of names is not valid ------------------------------------


@pytest.mark.parametrize("roles", [None, 5, "writer", {"writer": True}, [["writer"]], [1]])
async def test_a_signed_token_with_a_malformed_roles_claim_is_a_401(
        anonymous: httpx.AsyncClient, settings: Settings, roles: object) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "odd", "roles": roles, "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
              "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=1)).timestamp())}
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    answer = await anonymous.get("/devices", headers={"Authorization": f"Bearer {token}"})
    problem = is_problem(answer, 401)
    assert "roles claim must be a list of role names" in str(problem["detail"])
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_token_without_a_roles_claim_authenticates_with_no_role(
        anonymous: httpx.AsyncClient, settings: Settings) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "nobody", "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
              "exp": int((now + timedelta(hours=1)).timestamp())}
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    answer = await anonymous.get("/devices", headers={"Authorization": f"Bearer {token}"})
    assert "none" in str(is_problem(answer, 403)["detail"])


# -- If-Match compares strongly: a weak tag never matches ---------------------------------------------


@pytest.mark.parametrize("tag", ['W/"1"', 'W/"2"'])
async def test_a_weak_etag_in_if_match_never_matches(writer: httpx.AsyncClient, tag: str) -> None:
    await writer.post("/devices", json=device_body("MPS-D-700010"))
    answer = await writer.post("/devices/MPS-D-700010/state", json={"state": "migrating"},
                               headers={"If-Match": tag})
    assert "weak" in str(is_problem(answer, 412)["detail"])
    device = (await writer.get("/devices/MPS-D-700010")).json()
    assert device["state"] == "in_service" and device["version"] == 1
    strong = await writer.post("/devices/MPS-D-700010/state", json={"state": "migrating"},
                               headers={"If-Match": '"1"'})
    assert strong.status_code == 200 and strong.headers["etag"] == '"2"'


# -- 405 says what is allowed -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/devices", {"GET", "POST"}),
    ("PUT", "/devices/MPS-D-700020", {"GET", "PATCH"}),
    ("GET", "/devices/import", None),  # GET /devices/{tag} matches: a 404 for a tag "import"
    ("GET", "/devices/MPS-D-700020/retire", {"POST"}),
    ("POST", "/health/live", {"GET"}),
])
async def test_a_405_lists_the_allowed_methods(
        writer: httpx.AsyncClient, method: str, path: str, allowed: set[str] | None) -> None:
    answer = await writer.request(method, path)
    if allowed is None:
        is_problem(answer, 404)
        return
    is_problem(answer, 405)
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


# -- found by schemathesis ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/devices", "/devices/MPS-D-700030/state"])
async def test_a_json_body_that_is_not_utf8_is_a_422_saying_where(writer: httpx.AsyncClient, path: str) -> None:
    answer = await writer.post(path, content=b'{"state": "u\xff"}', headers={"Content-Type": "application/json"})
    problem = is_problem(answer, 422)
    assert problem["detail"] == "the body is not UTF-8 text (byte 12)"
    assert problem["errors"] == [{"location": "body", "message": "not UTF-8 at byte 12"}]
