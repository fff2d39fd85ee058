"""Document store port with two adapters: MongoDB (PyMongo async) and an embedded in-memory one.

Both adapters pass the same contract suite (tests/contract/test_store_contract.py). The
port is deliberately small: single-document atomic operations only, because that is what
both MongoDB and FerretDB 1.x guarantee (no multi-document transactions).
"""

from services.runtime.store.base import (
    BulkResult,
    Collection,
    Document,
    DuplicateKeyError,
    Filter,
    Store,
    StoreUnavailable,
    UpdateOp,
)

__all__ = [
    "BulkResult", "Collection", "Document", "DuplicateKeyError", "Filter", "Store", "StoreUnavailable", "UpdateOp",
]
