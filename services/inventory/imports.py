"""Reading a bulk import: CSV with a header row, or JSON Lines; every row checked on its own.

A CSV row is flat (columns below); a JSON line is the same object ``POST /devices`` takes.
A row that fails is reported with its line number, the column or field at fault and why;
the good rows go on to be stored. Reading is pure: no I/O beyond the text it is given.

Line numbers: a CSV record is numbered by the line it starts on (a quoted value may span
lines; lines end at ``\n``, ``\r\n`` or ``\r``, as ``csv`` reads them); JSON Lines are split on
``\n`` only (a trailing ``\r`` is dropped), so a separator inside a string, like U+2028, does not
break a line. ``services/cli/source.py`` numbers a file the same way, with ``CountedLines``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.inventory.domain import DeviceSpec, DomainError

CSV_COLUMNS: tuple[str, ...] = (
    "asset_tag", "kind", "os_family", "os_version", "model", "cpu_model", "cpu_arch", "cpu_cores",
    "ram_mb", "disk_gb", "tpm", "firmware", "site", "borough", "unit", "applications", "state",
)
REQUIRED_COLUMNS = frozenset(CSV_COLUMNS) - {"applications", "state", "borough"}
APPLICATION_SEPARATOR = ";"
MAX_FIELD_CHARS = 131_072
"""The longest CSV value a row may hold (``csv``'s own default limit); a longer one fails its row."""
_CSV_READ_LIMIT = 2**31 - 1

# nested field path (as pydantic reports it) -> CSV column
_COLUMN_OF = {
    ("os", "family"): "os_family", ("os", "version"): "os_version",
    ("hardware", "model"): "model", ("hardware", "cpu_model"): "cpu_model",
    ("hardware", "cpu_arch"): "cpu_arch", ("hardware", "cpu_cores"): "cpu_cores",
    ("hardware", "ram_mb"): "ram_mb", ("hardware", "disk_gb"): "disk_gb",
    ("hardware", "tpm"): "tpm", ("hardware", "firmware"): "firmware",
    ("os",): "os_version",  # the only whole-object rule on os is about its version
    ("location",): "borough",  # likewise on location: the borough must be a London one
    ("location", "site"): "site", ("location", "borough"): "borough", ("location", "unit"): "unit",
}


class ImportFormatError(ValueError):
    """The file as a whole cannot be read (not a single row can be)."""


class UnsupportedFormat(ImportFormatError):
    """The body is of a media type the import does not read."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    asset_tag: str | None
    field: str | None
    reason: str


class ImportReport(BaseModel):
    """What an import did with each row: the answer of ``POST /devices/import``, and (summed
    over batches) of ``estate import``."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = Field(default_factory=list)

    def reject(self, *errors: RowError) -> None:
        self.rejected += 1
        self.errors.extend(errors)


@dataclass(slots=True)
class ParsedRow:
    line: int
    spec: DeviceSpec | None = None
    errors: list[RowError] = field(default_factory=list)


def csv_row_to_spec(row: dict[str, str]) -> dict[str, Any]:
    def text(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    apps = [a.strip() for a in (row.get("applications") or "").split(APPLICATION_SEPARATOR) if a.strip()]
    spec: dict[str, Any] = {
        "asset_tag": text("asset_tag"), "kind": text("kind"),
        "os": {"family": text("os_family"), "version": text("os_version")},
        "hardware": {k: text(k) for k in ("model", "cpu_model", "cpu_arch", "cpu_cores",
                                          "ram_mb", "disk_gb", "tpm", "firmware")},
        "location": {"site": text("site"), "borough": text("borough"), "unit": text("unit")},
        "applications": apps,
    }
    if text("state"):
        spec["state"] = text("state")
    return spec


def _field_name(loc: tuple[Any, ...], csv_mode: bool) -> str | None:
    if not loc:
        return None
    if csv_mode:
        for size in (2, 1):
            if loc[:size] in _COLUMN_OF and (size == 2 or len(loc) == 1):
                return _COLUMN_OF[loc[:size]]  # type: ignore[index]
        if loc[0] in CSV_COLUMNS:
            return str(loc[0])
    return ".".join(str(p) for p in loc)


def _location(error: Any) -> tuple[Any, ...]:
    """Where a validation error is; a rule on the whole device says which field it is about."""
    cause = (error.get("ctx") or {}).get("error")
    if not error["loc"] and isinstance(cause, DomainError) and cause.field:
        return tuple(cause.field.split("."))
    return tuple(error["loc"])


def _validate(line: int, raw: dict[str, Any], csv_mode: bool) -> ParsedRow:
    tag = raw.get("asset_tag") if isinstance(raw.get("asset_tag"), str) else None
    try:
        return ParsedRow(line, spec=DeviceSpec.model_validate(raw))
    except ValidationError as error:
        errors = [
            RowError(line, tag, _field_name(_location(e), csv_mode), e["msg"].removeprefix("Value error, "))
            for e in error.errors()
        ]
        return ParsedRow(line, errors=errors)


class CountedLines:
    """Physical lines fed to a ``csv`` reader, counted, with the ones taken since the last
    ``take``: after the reader returns a record, ``take`` gives its text and line count (kept
    as ``last_taken``), and ``number`` is its last line."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._taken: list[str] = []
        self.number = 0
        self.last_taken: tuple[str, int] = ("", 0)

    def __iter__(self) -> CountedLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        self.number += 1
        return line

    def take(self) -> tuple[str, int]:
        self.last_taken = "".join(self._taken), len(self._taken)
        self._taken.clear()
        return self.last_taken


def csv_records(lines: CountedLines) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on. Fields of any length are read (a too
    long one is its row's fault, not the file's); ``csv.Error`` is left to the caller."""
    if csv.field_size_limit() < _CSV_READ_LIMIT:
        csv.field_size_limit(_CSV_READ_LIMIT)
    for record in csv.reader(lines, strict=True):
        _, count = lines.take()
        if record:  # a blank line
            yield lines.number - count + 1, record


def _csv_row(line: int, header: list[str], record: list[str]) -> ParsedRow:
    row = dict(zip(header, record, strict=False))
    tag = row.get("asset_tag")
    if len(record) != len(header):
        return ParsedRow(line, errors=[RowError(line, tag, None, f"{len(record)} values for the "
                                                                 f"{len(header)} columns")])
    too_long = [(name, len(value)) for name, value in row.items() if len(value) > MAX_FIELD_CHARS]
    if too_long:
        tag = tag if tag is not None and len(tag) <= MAX_FIELD_CHARS else None
        return ParsedRow(line, errors=[RowError(line, tag, name, f"{length} characters; a value may have "
                                                                 f"at most {MAX_FIELD_CHARS}")
                                       for name, length in too_long])
    return _validate(line, csv_row_to_spec(row), csv_mode=True)


def read_csv(text: str) -> Iterator[ParsedRow]:
    lines = CountedLines(io.StringIO(text, newline=""))
    records = csv_records(lines)
    try:
        header = next(records, (0, []))[1]
        missing = sorted(REQUIRED_COLUMNS - set(header))
        if missing:
            raise ImportFormatError(f"the CSV header lacks column(s) {', '.join(missing)}; "
                                    f"expected {','.join(CSV_COLUMNS)}")
        unknown = sorted(set(header) - set(CSV_COLUMNS))
        if unknown:
            raise ImportFormatError(f"the CSV header has unknown column(s) {', '.join(unknown)}")
        for line, record in records:
            yield _csv_row(line, header, record)
    except csv.Error as error:
        raise ImportFormatError(f"CSV line {lines.number}: {error}") from None


def json_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line with its number: split on ``\n`` only, a trailing ``\r`` dropped."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def read_json_lines(text: str) -> Iterator[ParsedRow]:
    for number, line in json_lines(text):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            # json's messages may end in "at" ("Unterminated string starting at"): say it once
            reason = f"not JSON: {error.msg.removesuffix(' at')} at column {error.colno}"
            yield ParsedRow(number, errors=[RowError(number, None, None, reason)])
            continue
        if not isinstance(raw, dict):
            yield ParsedRow(number, errors=[RowError(number, None, None, "expected a JSON object")])
            continue
        yield _validate(number, raw, csv_mode=False)


def read(text: str, media_type: str) -> Iterator[ParsedRow]:
    if media_type in ("text/csv", "application/csv"):
        return read_csv(text)
    if media_type in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return read_json_lines(text)
    raise UnsupportedFormat(f"cannot import {media_type!r}; send text/csv or application/x-ndjson")
