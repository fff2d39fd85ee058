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


class StoreUnavailable(Exception):
    """The store cannot be reached or does not answer in time (refused, reset, hung).

    Transient: the same request may succeed once the store is back. The message says why in
    words a person can act on, and names the store without credentials.
    """


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
    """Filters and updates use MongoDB's language and meaning (the embedded store's subset is
    listed in matching.py). Values compare as BSON values: ``True`` is not ``1``, and
    sub-documents are equal only with the same fields in the same order (this holds for
    equality filters, ``$in`` and ``$pullAll``). ``modified`` counts only documents an update
    actually changed; an update that changes nothing (``$pullAll`` that removes nothing,
    ``$set`` of the current value) reports ``matched`` 1, ``modified`` 0."""

    name: str

    async def create_index(self, keys: Sort, *, unique: bool = False) -> None: ...

    async def insert_one(self, doc: Document) -> None: ...

    async def insert_many(self, docs: Sequence[Document]) -> BulkResult:
        """Unordered: inserts what it can; duplicates are reported by index, not raised."""
        ...

    async def find_one(self, filter: Filter, projection: Sequence[str] | None = None) -> Document | None:
        """The first matching document, projected as :meth:`find` does."""
        ...

    async def find(
        self,
        filter: Filter,
        *,
        sort: Sort | None = None,
        limit: int = 0,
        projection: Sequence[str] | None = None,
    ) -> list[Document]:
        """Matching documents. ``projection`` names the (dotted) fields to return besides
        ``_id``, which always comes back; ``None`` *or an empty sequence* means no projection,
        the whole document (as MongoDB treats ``{}``; the adapters pass ``[]`` on as no
        projection). Fields come back in the stored document's order. ``sort`` orders values
        of different types as MongoDB does (null/missing < numbers < strings < documents <
        arrays < booleans < dates; an array field by its smallest element ascending, its
        largest descending)."""
        ...

    async def count(self, filter: Filter) -> int: ...

    async def find_one_and_update(
        self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False
    ) -> Document | None:
        """Atomically update one document and return it as it is after the update."""
        ...

    async def update_one(self, filter: Filter, update: Mapping[str, Any], *, upsert: bool = False) -> BulkResult: ...

    async def bulk_update(self, ops: Sequence[UpdateOp]) -> BulkResult:
        """Unordered batch of single-document updates, one round trip."""
        ...

    async def update_many(self, filter: Filter, update: Mapping[str, Any]) -> BulkResult:
        """Apply ``update`` to every document matching ``filter``, one statement (with a lone
        ``_id $in`` filter: one indexed statement for many documents, where a bulk write of
        single-document updates costs FerretDB a statement each)."""
        ...

    async def delete_many(self, filter: Filter) -> int: ...


class Store(Protocol):
    def collection(self, name: str) -> Collection: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    async def close(self) -> None: ...
