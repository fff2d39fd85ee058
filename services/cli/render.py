"""What the CLI shows people: summaries and tables (rich), kept apart from what it does."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from services.cli.dead_letters import DeadLetter
from services.cli.importer import ImportSummary

SHOWN_REJECTIONS = 20
ERROR_WIDTH = 100


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def row_progress(total: int) -> Progress:
    return Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=stderr(), transient=False)


def import_summary(console: Console, summary: ImportSummary, errors_out: str | None) -> None:
    console.print(f"received {summary.received}, created {summary.created}, "
                  f"updated {summary.updated}, unchanged {summary.unchanged}, "
                  f"rejected {summary.rejected}", markup=False)
    if not summary.errors:
        return
    table = Table("line", "asset tag", "field", "reason", title="Rejected rows",
                  title_justify="left")
    for error in summary.errors[:SHOWN_REJECTIONS]:
        table.add_row(str(error.line), Text(error.asset_tag or ""), Text(error.field or ""),
                      Text(error.reason))
    console.print(table)
    more = len(summary.errors) - SHOWN_REJECTIONS
    if more > 0:
        where = (f"all of them are in {errors_out}" if errors_out
                 else "--errors-out FILE writes all of them")
        console.print(f"... and {more} more ({where})", markup=False)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 3] + "..."


def dead_letters_table(letters: list[DeadLetter]) -> Table:
    """at: partition/offset on the dead-letter topic; offset: on the original topic;
    replayed: by this run (--replay), or by an earlier one (listing)."""
    table = Table(title="Dead letters", title_justify="left")
    for name in ("at", "key", "group", "offset"):
        table.add_column(name, overflow="fold")
    table.add_column("error", overflow="fold", min_width=16, ratio=1)
    table.add_column("replayed", overflow="fold")
    for d in sorted(letters, key=lambda d: (d.partition, d.offset)):
        table.add_row(f"{d.partition}/{d.offset}", Text(d.key or ""), Text(d.consumer_group or ""),
                      Text(d.original_offset or ""), Text(_first_line(d.error)),
                      "yes" if d.replayed else "no")
    return table
