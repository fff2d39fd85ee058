"""``estate import``: a file into a running inventory, in batches, with one report for the file.

Each batch is a request of its own, so two things the API does per request are done here
for the whole file: line numbers are translated back to the file's, and an asset tag that
an earlier batch already stored is rejected as a repeat (as the API rejects a repeat within
one request) instead of silently overwriting the first row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TextIO

import httpx

from services.cli.source import Batch, ImportSource, SourceRow
from services.inventory.imports import ImportReport, RowError

IMPORT_PATH = "/devices/import"
TIMEOUT = httpx.Timeout(600.0, connect=10.0)
_REPEAT = re.compile(r"(repeats line )(\d+)")


class ImportSummary(ImportReport):
    """The inventory's import report, summed over the batches of one file."""

    def add(self, answer: dict[str, Any], batch: Batch) -> set[int]:
        """Add one batch's report; answer the file lines it rejected."""
        for name in ("received", "created", "updated", "unchanged", "rejected"):
            setattr(self, name, getattr(self, name) + int(answer.get(name, 0)))
        lines = set()
        for error in answer.get("errors", []):
            line = batch.file_line(int(error["line"]))
            reason = _REPEAT.sub(lambda m: m.group(1) + str(batch.file_line(int(m.group(2)))),
                                 str(error["reason"]))
            self.errors.append(RowError(line, error.get("asset_tag"), error.get("field"), reason))
            lines.add(line)
        return lines

    def repeat(self, row: SourceRow, first_line: int) -> None:
        self.received += 1
        self.rejected += 1
        reason = f"asset tag {row.asset_tag} repeats line {first_line} of this file"
        self.errors.append(RowError(row.line, row.asset_tag, "asset_tag", reason))

    def write_errors(self, out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["line", "asset_tag", "field", "reason"])
        for e in sorted(self.errors, key=lambda e: e.line):
            writer.writerow([e.line, e.asset_tag or "", e.field or "", e.reason])


class ImportFailed(Exception):
    def __init__(self, message: str, *, status: int | None = None, errors: Iterable[str] = (),
                 rows_done: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)
        self.rows_done = rows_done


class Unreachable(ImportFailed):
    """Nothing answers at the URL."""


def _chunks(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _problem(response: httpx.Response, rows_done: int) -> ImportFailed:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or response.text[:500] or response.reason_phrase
    errors = [f"{e.get('location', '?')}: {e.get('message', '')}" if isinstance(e, dict) else str(e)
              for e in body.get("errors", [])]
    return ImportFailed(f"HTTP {response.status_code}: {detail}", status=response.status_code,
                        errors=errors, rows_done=rows_done)


def client(url: str, token: str | None,
           transport: httpx.BaseTransport | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT, transport=transport)


def run_import(http: httpx.Client, source: ImportSource, batch_rows: int,
               advance: Callable[[int], None] = lambda n: None) -> ImportSummary:
    summary = ImportSummary()
    stored: dict[str, int] = {}  # asset tag -> line of the row that stored it
    rows_done = 0
    for chunk in _chunks(source.rows(), batch_rows):
        send: list[SourceRow] = []
        for row in chunk:
            if row.asset_tag is not None and row.asset_tag in stored:
                summary.repeat(row, stored[row.asset_tag])
            else:
                send.append(row)
        if send:
            batch = source.batch(send)
            rejected = summary.add(_post(http, batch, rows_done), batch)
            for row in send:
                if row.asset_tag is not None and row.line not in rejected:
                    stored.setdefault(row.asset_tag, row.line)
        rows_done += len(chunk)
        advance(len(chunk))
    summary.errors.sort(key=lambda e: e.line)
    return summary


def _post(http: httpx.Client, batch: Batch, rows_done: int) -> dict[str, Any]:
    try:
        response = http.post(IMPORT_PATH, content=batch.body,
                             headers={"Content-Type": f"{batch.media_type}; charset=utf-8"})
    except httpx.ConnectError as error:
        raise Unreachable(str(error), rows_done=rows_done) from None
    except httpx.TimeoutException:
        raise ImportFailed(f"no answer within {TIMEOUT.read:.0f} s", rows_done=rows_done) from None
    except httpx.HTTPError as error:
        raise ImportFailed(f"{type(error).__name__}: {error}", rows_done=rows_done) from None
    if response.is_error:
        raise _problem(response, rows_done)
    answer = response.json()
    if not isinstance(answer, dict):
        raise ImportFailed(f"unexpected answer: {response.text[:200]}", rows_done=rows_done)
    return answer
