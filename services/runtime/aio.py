"""Small asyncio helpers the runtime's long-running loops share."""

from __future__ import annotations

import asyncio


def still_running() -> None:
    """Raise CancelledError if this task has been asked to stop.

    A cancellation that lands inside a library call is not always raised as CancelledError
    (PyMongo's async API can turn it into an error of its own); a loop that catches errors and
    goes on would then never stop. Long-running loops call this at the top of every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
