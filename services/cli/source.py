"""An import file read row by row, each row remembering where it sits in the file.

The inventory API numbers lines as it reads a request body, and a batch is a body of its
own; so for every row it sends, the CLI keeps the line the API would have reported had it
received the whole file. Numbering is the API's own (``services.inventory.imports``): a CSV
record through the same ``csv_records`` over universal newlines (a record may span lines;
its number is its first line; a value of any length is read, the API refuses the row), JSON
Lines split on ``\n`` only (blank lines count, and are skipped; a trailing ``\r`` is dropped).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.inventory.imports import CountedLines, csv_records

CSV = "text/csv"
JSON_LINES = "application/x-ndjson"
MEDIA_TYPES = {".csv": CSV, ".jsonl": JSON_LINES, ".ndjson": JSON_LINES}


class SourceError(Exception):
    """The file cannot be read as an import (a message says where and why)."""


@dataclass(frozen=True, slots=True)
class SourceRow:
    text: str
    """The row as written in the file (a CSV record's lines, with their line breaks)."""
    line: int
    """The line the API reports for this row: the first of its record."""
    last_line: int
    asset_tag: str | None


@dataclass(frozen=True, slots=True)
class Batch:
    rows: tuple[SourceRow, ...]
    body: bytes
    media_type: str
    lines: dict[int, int]
    """The body's line -> the file's line."""

    def file_line(self, line: int) -> int:
        return self.lines.get(line, line)


def _terminated(text: str) -> str:
    return text if text.endswith(("\n", "\r")) else text + "\n"


def _json_asset_tag(line: str) -> str | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    tag = raw.get("asset_tag") if isinstance(raw, dict) else None
    return tag.strip() or None if isinstance(tag, str) else None


class ImportSource:
    def __init__(self, path: Path) -> None:
        media_type = MEDIA_TYPES.get(path.suffix.lower())
        if media_type is None:
            raise SourceError(f"{path}: cannot tell the format from the name; "
                              f"use .csv, .jsonl or .ndjson")
        if not path.is_file():
            raise SourceError(f"{path}: no such file")
        self.path = path
        self.media_type = media_type
        self._header = ""
        self._header_lines = 0

    def _open(self) -> TextIO:
        # CSV: lines end at any of \n, \r\n, \r, kept as written; JSON Lines: at \n only
        return self.path.open(encoding="utf-8-sig", newline="" if self.media_type == CSV else "\n")

    def rows(self) -> Iterator[SourceRow]:
        try:
            with self._open() as file:
                yield from (self._csv_rows(file) if self.media_type == CSV
                            else self._json_rows(file))
        except UnicodeDecodeError as error:
            raise SourceError(f"{self.path}: not UTF-8 text ({error.reason})") from None

    def count(self) -> int:
        return sum(1 for _ in self.rows())

    def _csv_rows(self, file: TextIO) -> Iterator[SourceRow]:
        lines = CountedLines(file)
        records = csv_records(lines)
        try:
            header = next(records, None)
            if header is None:
                return
            self._header, self._header_lines = lines.last_taken
            tag_at = header[1].index("asset_tag") if "asset_tag" in header[1] else None
            for first, record in records:
                text, _ = lines.last_taken
                tag = (record[tag_at].strip() or None
                       if tag_at is not None and tag_at < len(record) else None)
                yield SourceRow(text, first, lines.number, tag)
        except csv.Error as error:
            raise SourceError(f"{self.path}: CSV line {lines.number}: {error}") from None

    @staticmethod
    def _json_rows(file: TextIO) -> Iterator[SourceRow]:
        for number, physical in enumerate(file, start=1):
            line = physical.removesuffix("\n").removesuffix("\r")
            if line.strip():
                yield SourceRow(line, number, number, _json_asset_tag(line))

    def batch(self, rows: Sequence[SourceRow]) -> Batch:
        """One request body holding ``rows`` (taken from ``rows()``, which read the CSV header)."""
        if self.media_type == JSON_LINES:
            lines = {n: row.line for n, row in enumerate(rows, start=1)}
            text = "".join(row.text + "\n" for row in rows)
        else:
            lines = {n: n for n in range(1, self._header_lines + 1)}
            at = self._header_lines
            for row in rows:
                for offset in range(row.last_line - row.line + 1):
                    lines[at + 1 + offset] = row.line + offset
                at += row.last_line - row.line + 1
            text = _terminated(self._header) + "".join(_terminated(row.text) for row in rows)
        return Batch(tuple(rows), text.encode(), self.media_type, lines)
