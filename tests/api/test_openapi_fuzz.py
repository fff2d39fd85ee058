"""Schemathesis over the embedded platform, served by uvicorn on 127.0.0.1: generated requests
(valid and not) for every operation of the OpenAPI document, as an admin. No answer may be a
server error, nor have a status, content type or body the document does not describe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.registry import create_app
from services.runtime.auth import Role
from services.runtime.settings import Mode, Settings
from tests.conftest import bearer, served_in_a_thread

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 30
"""Per operation; the whole run stays well under a minute on two cores."""

# The import body is text either way; schemathesis sends text/csv as text/plain does.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

SETTINGS = Settings(mode=Mode.EMBEDDED, max_request_bytes=256 * 1024)


@pytest.fixture(scope="module")
def platform_url() -> Iterator[str]:
    with served_in_a_thread(create_app(SETTINGS)) as url:
        yield url


schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi())
"""The document the platform serves at /openapi.json (built from the same app factory)."""


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_answer_is_documented_and_none_is_a_server_error(case: schemathesis.Case, platform_url: str) -> None:
    case.call_and_validate(base_url=platform_url, headers=bearer(SETTINGS, Role.ADMIN), checks=CHECKS)
