"""The outbox lease: which replica publishes a collection's events (one document per
collection in ``outbox_leases``: owner and expiry, wall-clock seconds)."""

from __future__ import annotations

import time
from enum import Enum

from services.runtime.outbox_entries import LEASES
from services.runtime.store import DuplicateKeyError, Store


class Claim(Enum):
    REFUSED = "refused"
    """Another replica holds the lease."""
    TAKEN = "taken"
    """This replica holds it now, after nobody or another replica."""
    KEPT = "kept"
    """This replica holds it still: nobody held it since this replica last did (even if it
    ran out meanwhile), so nobody else published in between."""

    def __bool__(self) -> bool:
        return self is not Claim.REFUSED


async def claim(store: Store, collection: str, replica: str, lease_s: float) -> Claim:
    """Take or renew the lease for ``replica`` for ``lease_s`` from now. A compare-and-set on
    the values read, so two replicas never both win."""
    now = time.time()
    leases = store.collection(LEASES)
    wanted = {"owner": replica, "expires": now + lease_s}
    current = await leases.find_one({"_id": collection})
    if current is None:
        try:
            await leases.insert_one({"_id": collection, **wanted})
        except DuplicateKeyError:
            return Claim.REFUSED
        return Claim.TAKEN
    owner = current.get("owner")
    if owner != replica and float(current.get("expires", 0)) >= now:
        return Claim.REFUSED
    won = await leases.find_one_and_update(
        {"_id": collection, "owner": owner, "expires": current.get("expires")}, {"$set": wanted}) is not None
    if not won:
        return Claim.REFUSED
    return Claim.KEPT if owner == replica else Claim.TAKEN


async def release(store: Store, collection: str, replica: str) -> None:
    """Give the lease up at once (a successor need not wait for it to run out)."""
    await store.collection(LEASES).update_one({"_id": collection, "owner": replica}, {"$set": {"expires": 0.0}})
