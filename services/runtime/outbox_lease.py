"""The outbox lease: which replica publishes a collection's events (one document per
collection in ``outbox_leases``: owner and expiry, wall-clock seconds)."""

from __future__ import annotations

import time

from services.runtime.outbox_entries import LEASES
from services.runtime.store import DuplicateKeyError, Store


async def claim(store: Store, collection: str, replica: str, lease_s: float) -> bool:
    """Take or renew the lease for ``replica``; True if it holds it for ``lease_s`` from now.
    A compare-and-set on the values read, so two replicas never both win."""
    now = time.time()
    leases = store.collection(LEASES)
    wanted = {"owner": replica, "expires": now + lease_s}
    current = await leases.find_one({"_id": collection})
    if current is None:
        try:
            await leases.insert_one({"_id": collection, **wanted})
        except DuplicateKeyError:
            return False
        return True
    if current.get("owner") != replica and float(current.get("expires", 0)) >= now:
        return False
    return await leases.find_one_and_update(
        {"_id": collection, "owner": current.get("owner"), "expires": current.get("expires")},
        {"$set": wanted}) is not None


async def release(store: Store, collection: str, replica: str) -> None:
    """Give the lease up at once (a successor need not wait for it to run out)."""
    await store.collection(LEASES).update_one({"_id": collection, "owner": replica}, {"$set": {"expires": 0.0}})
