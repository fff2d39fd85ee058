"""Shared fixtures. Real infrastructure comes from `make test` (deploy/local/test.sh), which
starts Kafka and FerretDB and exports where they are; a test that needs them and finds
them missing FAILS, it never skips."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from services.runtime.auth import Role, issue_token
from services.runtime.settings import Settings
from services.runtime.store.mongo import MongoStore

AT = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)


def _infra(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: this test needs the real {what}; run it through "
                    "`make test`, which installs and starts it on 127.0.0.1", pytrace=False)
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _infra("ESTATE_TEST_KAFKA", "Kafka broker")


@pytest.fixture(scope="session")
def mongo_url() -> str:
    return _infra("ESTATE_TEST_MONGO", "MongoDB-wire server (FerretDB)")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def fresh_mongo_store(mongo_url: str) -> AsyncIterator[MongoStore]:
    """A database of its own on the real server, dropped afterwards."""
    store = MongoStore(mongo_url, unique("test").replace("-", "_"))
    try:
        await asyncio.wait_for(store.ping(), 10)
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"the MongoDB-wire server at {mongo_url} does not answer: {error}", pytrace=False)
    try:
        yield store
    finally:
        await store.drop()
        await store.close()


def bearer(settings: Settings, role: Role) -> dict[str, str]:
    token = issue_token(settings, subject=f"test-{role.name.lower()}", roles=[role], now=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def distributed_settings(kafka_bootstrap: str, mongo_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mode": "distributed", "kafka_bootstrap": kafka_bootstrap, "mongo_url": mongo_url,
        "mongo_database": unique("it").replace("-", "_"), "jwt_secret": "integration-test-secret-" + "x" * 20,
        "kafka_client_id": unique("it"), "consumer_backoff_initial_s": 0.05, "consumer_max_attempts": 3,
        "outbox_scan_interval_s": 0.5, "consumer_group_prefix": unique("it") + ".",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def served_in_a_thread(app: Any) -> Iterator[str]:
    """``app`` under a real uvicorn server on 127.0.0.1 (a free port), in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test platform did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
