"""The subset of MongoDB's query and update language the embedded store understands.

Only what the services use, with MongoDB's meaning: dotted paths, equality that also
matches an element of an array, comparison operators, ``$in``/``$nin``/``$exists``,
``$and``/``$or``; updates ``$set``/``$unset``/``$inc``/``$push`` (with ``$each``)/
``$pullAll``/``$setOnInsert``. Anything else raises, so a service cannot come to depend on
behaviour only one adapter has. (``$pull`` is left out on purpose: FerretDB 1.x ignores a
``$pull`` condition such as ``{"id": {"$in": [...]}}``; ``$pullAll`` of exact values works.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.runtime.store.base import Document, Filter, Sort

_MISSING = object()


def copy_document(value: Any) -> Any:
    """Deep copy for JSON-like values (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: copy_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_document(v) for v in value]
    return value


def get_path(doc: Any, path: str) -> Any:
    current = doc
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else _MISSING
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _candidates(value: Any) -> list[Any]:
    """A field matches if it, or (for arrays) any element of it, matches."""
    if isinstance(value, list):
        return [value, *value]
    return [value]


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or type(a) is type(b)


def _compare(op: str, value: Any, operand: Any) -> bool:
    for candidate in _candidates(value):
        if candidate is _MISSING or not _comparable(candidate, operand):
            continue
        if (
            (op == "$gt" and candidate > operand)
            or (op == "$gte" and candidate >= operand)
            or (op == "$lt" and candidate < operand)
            or (op == "$lte" and candidate <= operand)
        ):
            return True
    return False


def _equals(value: Any, operand: Any) -> bool:
    if value is _MISSING:
        return operand is None
    return any(c == operand for c in _candidates(value))


def _match_operators(value: Any, ops: Mapping[str, Any]) -> bool:
    for op, operand in ops.items():
        if op == "$eq":
            ok = _equals(value, operand)
        elif op == "$ne":
            ok = not _equals(value, operand)
        elif op == "$in":
            ok = any(_equals(value, o) for o in operand)
        elif op == "$nin":
            ok = not any(_equals(value, o) for o in operand)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _compare(op, value, operand)
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(operand)
        else:
            raise ValueError(f"query operator {op} is not supported by the embedded store")
        if not ok:
            return False
    return True


def _is_operator_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(k.startswith("$") for k in value)


def matches(doc: Document, filter: Filter) -> bool:
    for key, condition in filter.items():
        if key == "$and":
            if not all(matches(doc, sub) for sub in condition):
                return False
        elif key == "$or":
            if not any(matches(doc, sub) for sub in condition):
                return False
        elif key.startswith("$"):
            raise ValueError(f"query operator {key} is not supported by the embedded store")
        elif _is_operator_dict(condition):
            if not _match_operators(get_path(doc, key), condition):
                return False
        elif not _equals(get_path(doc, key), condition):
            return False
    return True


def _parent(doc: Document, path: str, create: bool) -> tuple[Any, str]:
    """The dict holding ``path``'s last part. Dicts on the way are copied (copy-on-write),
    so an update never reaches into a document a reader may still hold."""
    parts = path.split(".")
    current: Any = doc
    for part in parts[:-1]:
        nxt = current.get(part) if isinstance(current, dict) else None
        if not isinstance(nxt, dict):
            if not create:
                return None, parts[-1]
            nxt = {}
        else:
            nxt = dict(nxt)
        current[part] = nxt
        current = nxt
    return current, parts[-1]


def apply_update(doc: Document, update: Mapping[str, Any], *, inserting: bool = False) -> None:
    """Apply a MongoDB update document to ``doc``: its top level changes in place, anything
    below is replaced rather than mutated, so a shallow copy of ``doc`` may be passed."""
    for op, fields in update.items():
        if op == "$setOnInsert" and not inserting:
            continue
        for path, operand in fields.items():
            if path == "_id" and op in ("$set", "$unset") and not inserting:
                raise ValueError("_id cannot be changed")
            parent, leaf = _parent(doc, path, create=op != "$unset")
            if op in ("$set", "$setOnInsert"):
                parent[leaf] = copy_document(operand)
            elif op == "$unset":
                if isinstance(parent, dict):
                    parent.pop(leaf, None)
            elif op == "$inc":
                parent[leaf] = parent.get(leaf, 0) + operand
            elif op == "$push":
                items = operand["$each"] if _is_operator_dict(operand) else [operand]
                parent[leaf] = [*parent.get(leaf, []), *copy_document(items)]
            elif op == "$pullAll":
                current = parent.get(leaf)
                if isinstance(current, list):
                    parent[leaf] = [e for e in current if e not in operand]
            else:
                raise ValueError(f"update operator {op} is not supported by the embedded store")


def sort_key(sort: Sort):  # type: ignore[no-untyped-def]
    """A key function for list.sort over several fields with mixed directions."""

    class _Key:
        __slots__ = ("doc",)

        def __init__(self, doc: Document) -> None:
            self.doc = doc

        def __lt__(self, other: _Key) -> bool:
            for field, direction in sort:
                a, b = get_path(self.doc, field), get_path(other.doc, field)
                if a == b:
                    continue
                if a is _MISSING or a is None:
                    return direction > 0
                if b is _MISSING or b is None:
                    return direction < 0
                return (a < b) if direction > 0 else (a > b)
            return False

    return _Key


def project(doc: Document, projection: list[str] | tuple[str, ...] | None) -> Document:
    if projection is None:
        return copy_document(doc)
    out: Document = {"_id": doc["_id"]}
    for field in projection:
        value = get_path(doc, field)
        if value is not _MISSING:
            parent, leaf = _parent(out, field, create=True)
            parent[leaf] = copy_document(value)
    return out


def equality_seed(filter: Filter) -> dict[str, Any]:
    """Fields a filter pins to one value; used to build the document an upsert inserts."""
    return {
        k: v for k, v in filter.items() if not k.startswith("$") and not _is_operator_dict(v)
    }
