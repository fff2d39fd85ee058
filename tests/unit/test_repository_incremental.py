"""A repository with ``incremental`` writes: a change stores what it adds or replaces, and the
stored document is the one a whole write would give; reads parse again only when the stored
version moved (another writer's change is seen)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from services.runtime.changes import Change
from services.runtime.clock import FixedClock
from services.runtime.outbox import OUTBOX
from services.runtime.repository import Repository
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.conftest import AT

pytestmark = pytest.mark.asyncio


class Ledger(BaseModel):
    model_config = ConfigDict(frozen=True)
    ledger_id: str
    name: str
    spent: dict[str, int] = {}
    lines: list[dict[str, Any]] = []
    version: int = 1


class Ledgers(Repository[Ledger]):
    collection_name = "ledgers"
    topic = "test.ledgers"
    source = "/test"
    model = Ledger
    incremental = True

    def key(self, value: Ledger) -> str:
        return value.ledger_id


def _next(ledger: Ledger, **changes: Any) -> Change[Ledger]:
    return Change(ledger.model_copy(update={**changes, "version": ledger.version + 1}),
                  [("test.ledger.changed.v1", ledger)])


async def test_incremental_writes_store_what_a_whole_write_would() -> None:
    runtime = Runtime.build(Settings(), clock=FixedClock(AT))
    ledgers, other = (Ledgers(runtime.store, runtime.relay, runtime.clock) for _ in range(2))
    await ledgers.insert(Change(Ledger(ledger_id="L1", name="first", spent={"a": 1}, lines=[{"n": 1}])))

    def stored_fields(doc: dict[str, Any] | None) -> dict[str, Any]:
        assert doc is not None
        return {k: v for k, v in doc.items() if k not in ("_id", OUTBOX)}

    steps = [
        lambda x: _next(x, spent={**x.spent, "b": 2}),  # a dict entry added
        lambda x: _next(x, lines=[*x.lines, {"n": 2}, {"n": 3}]),  # list items appended
        lambda x: _next(x, spent={"b": 5}),  # an entry gone and one changed: the whole field
        lambda x: _next(x, name="renamed", lines=[{"n": 0}]),  # replaced fields
        lambda x: _next(x, spent={**x.spent, "odd.key": 1}),  # a key a dotted path cannot name
    ]
    for decide in steps:
        after = await ledgers.mutate("L1", None, decide)
        doc = await runtime.store.collection("ledgers").find_one({"_id": "L1"})
        whole = {k: v for k, v in ledgers.to_document(after).items() if k != "_id"}
        assert stored_fields(doc) == whole and list(stored_fields(doc)) == list(whole)
        assert await other.get("L1") == after  # another instance reads it whole

    # another writer moves the version: the first instance's kept copy is not used
    await other.mutate("L1", None, lambda x: _next(x, name="by the other"))
    assert (await ledgers.get("L1")).name == "by the other"
    events = (await runtime.store.collection("ledgers").find_one({"_id": "L1"}) or {})[OUTBOX]
    assert len(events) == 6  # each change's event beside it, none lost to the partial updates
