"""Small asyncio helpers the runtime's long-running loops share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


def still_running() -> None:
    """Raise CancelledError if this task has been asked to stop.

    A cancellation that lands inside a library call is not always raised as CancelledError
    (PyMongo's async API can turn it into an error of its own); a loop that catches errors and
    goes on would then never stop. Long-running loops call this at the top of every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel the tasks and wait until each has finished; what they raise on the way out is
    theirs to log (a stopping task's error must not stop the others from being awaited)."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def every(every_s: float, job: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``job`` now and then every ``every_s`` seconds until cancelled. A failed run is
    logged and the next one tries again: housekeeping never stops the process."""
    if every_s <= 0:
        raise ValueError("every_s must be positive")
    while True:
        still_running()
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("%s failed; trying again in %.0f s", what, every_s)
        await asyncio.sleep(every_s)
