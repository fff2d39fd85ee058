"""The subset of MongoDB's query and update language the embedded store understands.

Only what the services use, with MongoDB's meaning: dotted paths, equality that also
matches an element of an array, comparison operators, ``$in``/``$nin``/``$exists``,
``$and``/``$or``; updates ``$set``/``$unset``/``$inc``/``$push`` (with ``$each`` and
``$slice``)/``$pullAll``/``$setOnInsert``. Anything else raises, so a service cannot come to
depend on behaviour only one adapter has. (``$pull`` is left out on purpose: FerretDB 1.x
ignores a ``$pull`` condition such as ``{"id": {"$in": [...]}}``; ``$pullAll`` of exact values
works. ``$elemMatch`` too: FerretDB 1.24 rejects or mis-evaluates it.)

Values compare as BSON values do (:func:`compare`): by type first, in MongoDB's type order,
so ``True`` is not ``1``; documents compare field by field *in order*, so ``{"a": 1, "b": 2}``
is not ``{"b": 2, "a": 1}`` (Python's ``==`` would say both are equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Any

from services.runtime.store.base import Document, Filter, Sort

_MISSING = object()
_EMPTY_ARRAY = object()  # how an empty array sorts: below null (see _sort_value)

# MongoDB's order of BSON types (comparison/sort order), for the types the services store.
_NULL, _NUMBER, _STRING, _OBJECT, _ARRAY, _BOOL, _DATE, _OTHER = 1, 2, 3, 4, 5, 8, 9, 99


def _type_rank(value: Any) -> int:
    if value is None or value is _MISSING:
        return _NULL
    if isinstance(value, bool):  # before int: bool is an int subclass in Python, not in BSON
        return _BOOL
    if isinstance(value, int | float):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    if isinstance(value, dict):
        return _OBJECT
    if isinstance(value, list):
        return _ARRAY
    if isinstance(value, datetime):
        return _DATE
    if value is _EMPTY_ARRAY:
        return 0
    return _OTHER


def _sign(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as MongoDB orders two values: by BSON type, then by value; documents field
    by field in their order (type, name, value), arrays element by element, shorter first."""
    if a is b:
        return 0
    rank_a, rank_b = _type_rank(a), _type_rank(b)
    if rank_a != rank_b:
        return _sign(rank_a, rank_b)
    if rank_a == _OBJECT:
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
            result = _sign(_type_rank(va), _type_rank(vb)) or _sign(ka, kb) or compare(va, vb)
            if result:
                return result
        return _sign(len(a), len(b))
    if rank_a == _ARRAY:
        for x, y in zip(a, b, strict=False):
            result = compare(x, y)
            if result:
                return result
        return _sign(len(a), len(b))
    if rank_a in (_NULL, 0):
        return 0
    if rank_a == _DATE:  # a naive datetime is UTC, as PyMongo stores it
        a, b = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (a, b))
    elif rank_a == _OTHER and type(a) is not type(b):
        return _sign(type(a).__name__, type(b).__name__)
    return _sign(a, b)


def same(a: Any, b: Any) -> bool:
    """MongoDB equality: same BSON type (numbers are one type) and value, field order included.
    Documents and arrays are walked without ordering them (shared parts, as a copy-on-write
    update leaves them, compare by identity), which is all equality needs."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b) or kind not in _CONTAINERS:
        return compare(a, b) == 0
    if len(a) != len(b):
        return False
    if kind is dict:
        return all(ka == kb and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
    return all(same(x, y) for x, y in zip(a, b, strict=True))


_CONTAINERS = (dict, list)


def copy_document(value: Any) -> Any:
    """Deep copy for JSON-like values (much faster than copy.deepcopy): scalars are shared,
    only dicts and lists are rebuilt (checked by exact type, without a call per scalar)."""
    kind = type(value)
    if kind is dict:
        return {k: copy_document(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if kind is list:
        return [copy_document(v) if type(v) in _CONTAINERS else v for v in value]
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


def _compare(op: str, value: Any, operand: Any) -> bool:
    """``$gt`` and friends only match values of the operand's BSON type (type bracketing)."""
    for candidate in _candidates(value):
        if _type_rank(candidate) != _type_rank(operand):
            continue
        result = compare(candidate, operand)
        if (
            (op == "$gt" and result > 0)
            or (op == "$gte" and result >= 0)
            or (op == "$lt" and result < 0)
            or (op == "$lte" and result <= 0)
        ):
            return True
    return False


def _equals(value: Any, operand: Any) -> bool:
    if value is _MISSING:
        return operand is None
    return any(same(c, operand) for c in _candidates(value))


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
                parent[leaf] = _pushed(parent.get(leaf, []), operand)
            elif op == "$pullAll":
                current = parent.get(leaf)
                if isinstance(current, list):
                    pulled = operand if isinstance(operand, PullAll) else PullAll(operand)
                    parent[leaf] = [e for e in current if not pulled.holds(e)]
            else:
                raise ValueError(f"update operator {op} is not supported by the embedded store")


def _pull_key(value: Any) -> Any:
    """A key any two values MongoDB holds equal share (necessary, not sufficient): a document
    by its field names in order and its first field's value when that is a string, a string by
    itself; every other value shares one key."""
    if isinstance(value, Mapping):
        first = next(iter(value.values()), None)
        return ("d", tuple(value), first if isinstance(first, str) else None)
    if isinstance(value, str):
        return ("s", value)
    return ("?",)


class PullAll:
    """A ``$pullAll`` operand indexed once by :func:`_pull_key`, for an update applied to many
    documents: each element finds its few candidates by key, and ``same`` decides. (The outbox
    relay clears up to 90 documents' entries in one statement: compared with every listed entry,
    each document cost hundreds of comparisons.)"""

    __slots__ = ("_by_key",)

    def __init__(self, values: Any) -> None:
        self._by_key: dict[Any, list[Any]] = {}
        for value in values:
            self._by_key.setdefault(_pull_key(value), []).append(value)

    def holds(self, value: Any) -> bool:
        return any(same(value, o) for o in self._by_key.get(_pull_key(value), ()))


def indexed_update(update: Mapping[str, Any]) -> Mapping[str, Any]:
    """``update`` with its ``$pullAll`` operands indexed (:class:`PullAll`), to apply to many documents."""
    pulls = update.get("$pullAll")
    if not isinstance(pulls, Mapping):
        return update
    return {**update, "$pullAll": {path: PullAll(values) for path, values in pulls.items()}}


def _pushed(current: list[Any], operand: Any) -> list[Any]:
    """``$push`` of one value, or of ``{"$each": [...]}`` optionally with ``"$slice": n``."""
    if not isinstance(current, list):
        raise ValueError("$push to a field that is not an array")
    if not _is_operator_dict(operand):
        return [*current, copy_document(operand)]
    if set(operand) - {"$each", "$slice"} or "$each" not in operand:
        raise ValueError(f"$push {sorted(operand)} is not supported by the embedded store (only $each, $slice)")
    items = [*current, *copy_document(operand["$each"])]
    if "$slice" in operand:
        n = operand["$slice"]
        items = items[:n] if n >= 0 else items[n:]
    return items


def _sort_value(value: Any, direction: int) -> Any:
    """An array sorts by its smallest element ascending, its largest descending; an empty one
    below null (MongoDB's rule)."""
    if not isinstance(value, list):
        return value
    if not value:
        return _EMPTY_ARRAY
    pick = min if direction > 0 else max
    return pick(value, key=cmp_to_key(compare))


def sort_key(sort: Sort):  # type: ignore[no-untyped-def]
    """A key function for list.sort over several fields with mixed directions, any types."""

    def compare_docs(a: Document, b: Document) -> int:
        for field, direction in sort:
            result = compare(_sort_value(get_path(a, field), direction), _sort_value(get_path(b, field), direction))
            if result:
                return result if direction > 0 else -result
        return 0

    return cmp_to_key(compare_docs)


def _projected(value: Any, tree: dict[str, Any]) -> Any:
    """The parts of ``value`` that ``tree`` names, in the value's own field order; through an
    array, the projection applies to each sub-document in it."""
    if isinstance(value, list):
        return [_projected(v, tree) for v in value if isinstance(v, dict)]
    out: Document = {}
    for key, item in value.items():
        sub = tree.get(key)
        if sub is True:
            out[key] = copy_document(item)
        elif sub is not None and isinstance(item, dict | list):
            out[key] = _projected(item, sub)
    return out


def project(doc: Document, projection: list[str] | tuple[str, ...] | None) -> Document:
    """Only ``_id`` and the (dotted) fields named; no projection, or an empty one, is the whole
    document (see ``Collection.find`` in base.py)."""
    if not projection:
        whole: Document = copy_document(doc)
        return whole
    tree: dict[str, Any] = {"_id": True}
    for field in projection:
        node = tree
        *parents, leaf = field.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if node is True:
                break
        else:
            node[leaf] = True
    projected: Document = _projected(doc, tree)
    return projected


def equality_seed(filter: Filter) -> dict[str, Any]:
    """Fields a filter pins to one value; used to build the document an upsert inserts."""
    return {
        k: v for k, v in filter.items() if not k.startswith("$") and not _is_operator_dict(v)
    }
