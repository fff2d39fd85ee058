"""Small asyncio helpers the runtime's long-running loops share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


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
