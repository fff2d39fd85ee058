"""Integration fixtures: the inventory service running for real (uvicorn on 127.0.0.1) on
the real Kafka broker and MongoDB-wire server that `make test` started."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from services import registry
from services.inventory.app import create_app
from services.runtime.auth import Role, issue_token
from services.runtime.settings import Settings
from tests.conftest import bearer, distributed_settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningService:
    url: str
    settings: Settings
    app: FastAPI

    def client(self, role: Role | None = Role.WRITER) -> httpx.AsyncClient:
        headers = bearer(self.settings, role) if role else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@asynccontextmanager
async def uvicorn_serving(app: FastAPI, what: str) -> AsyncIterator[str]:
    """``app`` in a uvicorn server of its own on 127.0.0.1 (in this process); yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        task.cancel()
        pytest.fail(f"the {what} did not start; see the log above", pytrace=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[RunningService]:
    app = create_app(settings)
    async with uvicorn_serving(app, "inventory service") as url:
        yield RunningService(url, settings, app)


@asynccontextmanager
async def running(settings: Settings, name: str, **overrides: Any) -> AsyncIterator[str]:
    """One service of the registry in a uvicorn server of its own on 127.0.0.1 (in this
    process); ``overrides`` set the service's own settings. Yields its URL."""
    async with uvicorn_serving(registry.create_app(settings, [name], setting_overrides=overrides),
                               f"{name} service") as url:
        yield url


def client(url: str, settings: Settings, subject: str | None = None, role: Role = Role.WRITER) -> httpx.AsyncClient:
    """An HTTP client for ``url`` with a bearer token for ``role`` (as ``subject``, if named)."""
    headers = bearer(settings, role)
    if subject is not None:
        token = issue_token(settings, subject=subject, roles=[role], now=datetime.now(UTC))
        headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=30)


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 90.0) -> None:
    """Poll ``probe`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.2)


@pytest.fixture
def settings(kafka_bootstrap: str, mongo_url: str) -> Settings:
    return distributed_settings(kafka_bootstrap, mongo_url)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[RunningService]:
    async with serve(settings) as running:
        yield running


async def read_topic(bootstrap: str, topic: str, want: Callable[[list[ConsumerRecord]], bool],
                     timeout: float = 30.0) -> list[ConsumerRecord]:
    """Everything on ``topic`` from the beginning, read by a plain aiokafka consumer (no
    group) until ``want`` is satisfied; then a short while more, to catch extra copies."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        satisfied_at: float | None = None
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            if satisfied_at is None and want(records):
                satisfied_at = loop.time()
            if satisfied_at is not None and loop.time() - satisfied_at > 1.0:
                return records
        raise AssertionError(f"{topic}: wanted records did not arrive in {timeout}s; got {len(records)}")
    finally:
        await consumer.stop()


async def read_whole_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> list[ConsumerRecord]:
    """Every record on ``topic`` up to its end offsets as of the call (however many earlier
    tests left there), read by a plain aiokafka consumer (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic may be new
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return records
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while ends:
            assert loop.time() < deadline, f"{topic}: not read to its end in {timeout}s; got {len(records)}"
            for tp, batch in (await consumer.getmany(*ends, timeout_ms=200)).items():
                records.extend(r for r in batch if r.offset < ends[tp])
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    del ends[tp]
        return records
    finally:
        await consumer.stop()


def events_for(records: list[ConsumerRecord], key: str) -> list[dict[str, object]]:
    return [json.loads(r.value) for r in records if r.key == key.encode()]


async def produce(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
