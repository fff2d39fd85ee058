"""Updates of a collection's documents and the relay's clears of their outboxes, kept apart
within a process.

FerretDB 1.24 (SQLite) applies an update as read, change, write back, without isolation
between concurrent statements: a clear (``$pullAll`` of published entries) and a versioned
write of the same document at the same moment can lose one of them, and a lost write loses
its events with it (``benchmarks/ferretdb_lost_update.py`` shows it; MongoDB is atomic per
document). So within a process a clear waits until no update of that collection is in flight,
and updates wait while a clear runs (a clear statement is one document: milliseconds).
Replicas of a service are not kept apart by this: see the README."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from services.runtime.store import Store


class Gate:
    """Many updates at once, or one clear."""

    def __init__(self) -> None:
        self._updates = 0
        self._clearing = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def updating(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._clearing)
            self._updates += 1
        try:
            yield
        finally:
            async with self._changed:
                self._updates -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def clearing(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._clearing and not self._updates)
            self._clearing = True
        try:
            yield
        finally:
            async with self._changed:
                self._clearing = False
                self._changed.notify_all()


_GATES: weakref.WeakKeyDictionary[Store, dict[str, Gate]] = weakref.WeakKeyDictionary()


def gate(store: Store, collection: str) -> Gate:
    """The gate of ``collection`` in ``store`` (one per store object and collection)."""
    gates = _GATES.setdefault(store, {})
    return gates.setdefault(collection, Gate())
