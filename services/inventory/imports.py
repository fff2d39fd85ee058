"""Reading a bulk import: CSV with a header row, or JSON Lines; every row checked on its own.

A CSV row is flat (columns below); a JSON line is the same object ``POST /devices`` takes.
A row that fails is reported with its line number, the column or field at fault and why;
the good rows go on to be stored. Reading is pure: no I/O beyond the text it is given.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.inventory.domain import DeviceSpec

CSV_COLUMNS: tuple[str, ...] = (
    "asset_tag", "kind", "os_family", "os_version", "model", "cpu_model", "cpu_arch", "cpu_cores",
    "ram_mb", "disk_gb", "tpm", "firmware", "site", "borough", "unit", "applications", "state",
)
REQUIRED_COLUMNS = frozenset(CSV_COLUMNS) - {"applications", "state", "borough"}
APPLICATION_SEPARATOR = ";"

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


def _validate(line: int, raw: dict[str, Any], csv_mode: bool) -> ParsedRow:
    tag = raw.get("asset_tag") if isinstance(raw.get("asset_tag"), str) else None
    try:
        return ParsedRow(line, spec=DeviceSpec.model_validate(raw))
    except ValidationError as error:
        errors = [
            RowError(line, tag, _field_name(tuple(e["loc"]), csv_mode),
                     e["msg"].removeprefix("Value error, "))
            for e in error.errors()
        ]
        return ParsedRow(line, errors=errors)


def read_csv(text: str) -> Iterator[ParsedRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = reader.fieldnames or []
    missing = sorted(REQUIRED_COLUMNS - set(header))
    if missing:
        raise ImportFormatError(f"the CSV header lacks column(s) {', '.join(missing)}; "
                                f"expected {','.join(CSV_COLUMNS)}")
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown:
        raise ImportFormatError(f"the CSV header has unknown column(s) {', '.join(unknown)}")
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                yield ParsedRow(line, errors=[RowError(line, row.get("asset_tag"), None,
                                                       f"{len(header) + len(row[None])} values for "  # type: ignore[index]
                                                       f"{len(header)} columns")])
                continue
            if any(v is None for v in row.values()):
                yield ParsedRow(line, errors=[RowError(line, row.get("asset_tag"), None,
                                                       f"fewer values than the {len(header)} columns")])
                continue
            yield _validate(line, csv_row_to_spec(row), csv_mode=True)
    except csv.Error as error:
        raise ImportFormatError(f"CSV line {reader.line_num}: {error}") from None


def read_json_lines(text: str) -> Iterator[ParsedRow]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            yield ParsedRow(number, errors=[RowError(number, None, None, f"not JSON: {error.msg} "
                                                                         f"at column {error.colno}")])
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
