"""Reading bulk-import files, row by row."""

from __future__ import annotations

import pytest

from services.inventory.imports import ImportFormatError, UnsupportedFormat, read
from tests.samples import CSV_HEADER, csv_line


def test_csv_rows_carry_their_file_line_even_across_quoted_newlines() -> None:
    quoted = csv_line("MPS-D-000002").replace("Territorial Policing", '"Territorial\nPolicing"')
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001"), quoted, csv_line("MPS-D-000003", ram_mb="x")])
    rows = list(read(text, "text/csv"))
    assert [r.line for r in rows] == [2, 4, 5]
    assert rows[0].spec is not None and rows[0].spec.applications == ["CRIS Crime Reporting", "Microsoft Office 2003"]
    assert rows[2].errors[0].field == "ram_mb"


def test_blank_optional_columns_mean_none_and_missing_required_ones_are_named() -> None:
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001", apps=""), "MPS-D-000002,desktop,windows,XP" + "," * 13])
    first, second = read(text, "text/csv")
    assert first.spec is not None and first.spec.applications == []
    assert {e.field for e in second.errors} >= {"model", "cpu_model", "ram_mb", "site", "unit"}


def test_whole_file_problems_raise() -> None:
    with pytest.raises(ImportFormatError, match="lacks column"):
        list(read("asset_tag,kind\nA,desktop\n", "text/csv"))
    with pytest.raises(ImportFormatError, match="unknown column"):
        list(read(CSV_HEADER + ",colour\n", "text/csv"))
    with pytest.raises(UnsupportedFormat):
        list(read("", "application/xml"))
