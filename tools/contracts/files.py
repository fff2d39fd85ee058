"""The artefacts as files: render them all, compare with the committed ones, write (``main``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import contracts
from contracts.registry import EVENT_TYPES
from tools.contracts import __doc__ as USAGE
from tools.contracts.asyncapi import asyncapi
from tools.contracts.compatibility import ENVELOPE, SCHEMAS, incompatibilities
from tools.contracts.openapi import openapi_documents
from tools.contracts.schemas import dumps, envelope_schema, event_schema

HERE = Path(contracts.__file__).resolve().parent
OPENAPI, ASYNCAPI = "openapi", "asyncapi.json"


def render() -> dict[str, str]:
    """Every artefact's text, by path relative to ``contracts/``."""
    files = {f"{SCHEMAS}/{ENVELOPE}.json": dumps(envelope_schema())}
    files |= {f"{SCHEMAS}/{e.name}.json": dumps(event_schema(e)) for e in EVENT_TYPES.values()}
    files[ASYNCAPI] = dumps(asyncapi())
    files |= {f"{OPENAPI}/{name}.json": dumps(doc) for name, doc in openapi_documents().items()}
    return files


def committed(root: Path = HERE) -> dict[str, str]:
    paths = [*root.glob(f"{SCHEMAS}/*.json"), *root.glob(f"{OPENAPI}/*.json"), root / ASYNCAPI]
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in paths if p.exists()}


def drift(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    return ([f"contracts/{p}: differs" for p in sorted(expected.keys() & actual.keys())
             if expected[p] != actual[p]]
            + [f"contracts/{p}: missing" for p in sorted(expected.keys() - actual.keys())]
            + [f"contracts/{p}: extra (no longer generated)"
               for p in sorted(actual.keys() - expected.keys())])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.contracts", description=USAGE)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    expected, actual = render(), committed()
    if args.check:
        stale = drift(expected, actual)
        print("\n".join(stale) if stale else "contracts are up to date")
        if stale:
            print("run `python -m tools.contracts` (or `make contracts`) to regenerate them", file=sys.stderr)
        return 1 if stale else 0
    breaking = incompatibilities(actual)
    if breaking:
        print("refusing to overwrite published event schemas with incompatible ones:\n  "
              + "\n  ".join(breaking) + "\nadd a new version (…v2) instead; to retract a schema "
              "on purpose, delete its file by hand first", file=sys.stderr)
        return 1
    for path in actual.keys() - expected.keys():
        (HERE / path).unlink()
    for path, text in expected.items():
        if actual.get(path) != text:
            (HERE / path).parent.mkdir(parents=True, exist_ok=True)
            (HERE / path).write_text(text, encoding="utf-8")
            print(f"wrote contracts/{path}")
    return 0

