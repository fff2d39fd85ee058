"""Whether a changed event schema still accepts the events already published under the old one."""

from __future__ import annotations

import json
from typing import Any

from contracts.registry import EVENT_TYPES
from tools.contracts.schemas import Schema, event_schema

SCHEMAS, ENVELOPE = "schemas", "envelope"


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What ``new`` breaks for events valid under ``old``: a property removed or retyped,
    an optional property made required, a new required property (old events lack it)."""
    problems: list[str] = []
    _compare(old, new, "", (old, new), problems, ())
    return problems


def _resolve(schema: Schema, root: Schema) -> Schema:
    for _ in range(50):
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not ref.startswith("#/"):
            raise ValueError(f"cannot resolve {ref!r}: only local references are supported")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    raise ValueError("reference chain too long")


def _leaves(schema: Schema, root: Schema) -> list[Schema]:
    schema = _resolve(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return [leaf for branch in branches for leaf in _leaves(branch, root)]
    return [schema]


_PY_TO_JSON = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"), (type(None), "null"))


def _types(leaf: Schema) -> set[str]:
    if "type" in leaf:
        return {leaf["type"]} if isinstance(leaf["type"], str) else set(leaf["type"])
    values = [leaf["const"]] if "const" in leaf else leaf.get("enum", [])
    found = {next(name for py, name in _PY_TO_JSON if isinstance(v, py)) for v in values}
    return found or ({"object"} if "properties" in leaf else set())


def _types_of(leaves: list[Schema]) -> set[str]:
    per_leaf = [_types(leaf) for leaf in leaves]
    return set().union(*per_leaf) if all(per_leaf) else set()  # an untyped leaf allows anything


def _leaf_of(leaves: list[Schema], kind: str) -> Schema | None:
    return next((leaf for leaf in leaves if kind in _types(leaf)), None)


def _compare(old: Schema, new: Schema, path: str, roots: tuple[Schema, Schema],
             problems: list[str], stack: tuple[tuple[str, str], ...]) -> None:
    refs = (old.get("$ref", ""), new.get("$ref", ""))
    if refs[0] and refs in stack:
        return  # a recursive model: this pair is already being compared further up
    stack += (refs,)
    old_leaves, new_leaves = _leaves(old, roots[0]), _leaves(new, roots[1])
    old_types, new_types = _types_of(old_leaves), _types_of(new_leaves)
    if old_types and new_types and old_types != new_types:
        problems.append(f"{path or '(root)'}: type changed from "
                        f"{'|'.join(sorted(old_types))} to {'|'.join(sorted(new_types))}")
        return
    o, n = _leaf_of(old_leaves, "array"), _leaf_of(new_leaves, "array")
    if o is not None and n is not None and "items" in o and "items" in n:
        _compare(o["items"], n["items"], f"{path}[]", roots, problems, stack)
    o, n = _leaf_of(old_leaves, "object"), _leaf_of(new_leaves, "object")
    if o is None or n is None:
        return
    old_props, new_props = o.get("properties", {}), n.get("properties", {})
    old_req, new_req = set(o.get("required", ())), set(n.get("required", ()))
    for name in sorted(old_props.keys() | new_props.keys()):
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed")
        elif name not in old_props:
            if name in new_req:
                problems.append(f"{where}: added as required (events already published lack it)")
        else:
            if name in new_req and name not in old_req:
                problems.append(f"{where}: was optional, now required")
            _compare(old_props[name], new_props[name], where, roots, problems, stack)


def incompatibilities(current: dict[str, str]) -> list[str]:
    """Breaking changes of the code's event schemas against the committed (published) ones."""
    problems = []
    for path, text in sorted(current.items()):
        name = path.removeprefix(f"{SCHEMAS}/").removesuffix(".json")
        if not path.startswith(f"{SCHEMAS}/") or name == ENVELOPE:
            continue
        if name not in EVENT_TYPES:
            problems.append(f"{name}: published, but no longer in contracts/registry.py")
            continue
        problems += [f"{name}: {p}" for p in breaking_changes(json.loads(text),
                                                              event_schema(EVENT_TYPES[name]))]
    return problems
