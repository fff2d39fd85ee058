"""What a simulated clock relies on: the in-process bus says when it is idle, and the runtime runs
its periodic jobs on demand."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.bus import Message, OutgoingMessage
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.memory import MemoryBus
from services.runtime.clock import FixedClock
from services.runtime.metrics import Metrics
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from services.runtime.telemetry import Telemetry
from tests.conftest import AT

pytestmark = pytest.mark.asyncio


async def test_idle_returns_only_once_every_group_handled_every_message() -> None:
    bus = MemoryBus(partitions=3, policy=RetryPolicy(3, 0.01, 0.05), telemetry=Telemetry("test"), metrics=Metrics())
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def handler(group: str):  # type: ignore[no-untyped-def]
        async def handle(message: Message) -> None:
            await asyncio.sleep(0.002)
            seen[group].append(message.key)
            if group == "a" and message.topic == "first":  # a reaction the bus must also see through
                await bus.publish([OutgoingMessage("second", message.key, b"again")])
        return handle

    bus.subscribe("a", ["first"], handler("a"))
    bus.subscribe("b", ["first", "second"], handler("b"))
    await bus.start()
    try:
        await bus.publish([OutgoingMessage("first", f"k{i}", b"x") for i in range(20)])
        assert bus.backlog() > 0
        await bus.idle()  # the reactions "a" published on the way count too
        assert bus.backlog() == 0 and bus.published() == 40
        assert sorted(seen["a"]) == sorted(f"k{i}" for i in range(20))
        assert len(seen["b"]) == 40
    finally:
        await bus.stop()


async def test_periodic_jobs_run_on_demand_by_name() -> None:
    runtime = Runtime.build(Settings(), clock=FixedClock(AT))
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    runtime.run_periodically("one", 3600, lambda: job("one"))
    runtime.run_periodically("two", 3600, lambda: job("two"))
    await runtime.run_periodic_jobs(["two"])
    assert ran == ["two"]
    await runtime.run_periodic_jobs()
    assert ran == ["two", "one", "two"]
