"""The store port: what services may ask of a document store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Document = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]


class DuplicateKeyError(Exception):
    """A write would break a unique index (``_id`` or a unique secondary index)."""


@dataclass(frozen=True, slots=True)
class UpdateOp:
    filter: Filter
    update: Mapping[str, Any]
    upsert: bool = False


@dataclass(slots=True)
class BulkResult:
    inserted: int = 0
    matched: int = 0
    modified: int = 0
    upserted: int = 0
    duplicate_indexes: list[int] = field(default_factory=list)


class Collection(Protocol):
    name: str

    async def create_index(self, keys: Sort, *, unique: bool = False) -> None: ...

    async def insert_one(self, doc: Document) -> None: ...

    async def insert_many(self, docs: Sequence[Document]) -> BulkResult:
        """Unordered: inserts what it can; duplicates are reported by index, not raised."""
        ...

    async def find_one(self, filter: Filter, projection: Sequence[str] | None = None) -> Document | None: ...

    async def find(
        self,
        filter: Filter,
        *,
        sort: Sort | None = None,
        limit: int = 0,
        projection: Sequence[str] | None = None,
    ) -> list[Document]: ...

    async def count(self, filter: Filter) -> int: ...

    async def find_one_and_update(
        self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False
    ) -> Document | None:
        """Atomically update one document and return it as it is after the update."""
        ...

    async def update_one(self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False) -> BulkResult: ...

    async def update_many(self, filter: Filter, update: Mapping[str, Any]) -> BulkResult: ...

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        """Unordered batch of single-document updates, one round trip."""
        ...

    async def delete_many(self, filter: Filter) -> int: ...


class Store(Protocol):
    def collection(self, name: str) -> Collection: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    async def close(self) -> None: ...
