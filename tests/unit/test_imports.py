"""Reading bulk-import files, row by row."""

from __future__ import annotations

import json

import pytest

from services.inventory.imports import MAX_FIELD_CHARS, ImportFormatError, UnsupportedFormat, read
from tests.samples import CSV_HEADER, csv_line, device_body


def test_csv_rows_carry_their_file_line_even_across_quoted_newlines() -> None:
    quoted = csv_line("MPS-D-000002").replace("Territorial Policing", '"Territorial\nPolicing"')
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001"), quoted, csv_line("MPS-D-000003", ram_mb="x")])
    rows = list(read(text, "text/csv"))
    assert [r.line for r in rows] == [2, 3, 5]  # a record is numbered by its first line
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


def test_an_over_long_csv_value_fails_its_own_row_on_its_own_line() -> None:
    long_unit = "x" * (MAX_FIELD_CHARS + 1)
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001"), csv_line("MPS-D-000002").replace(
        "Territorial Policing", f'"{long_unit}\nstill the unit"'), csv_line("MPS-D-000003")])
    rows = list(read(text, "text/csv"))
    assert [r.line for r in rows] == [2, 3, 5]
    assert rows[0].spec is not None and rows[2].spec is not None
    [error] = rows[1].errors
    assert (error.line, error.asset_tag, error.field) == (3, "MPS-D-000002", "unit")
    assert f"{MAX_FIELD_CHARS + 16} characters" in error.reason and str(MAX_FIELD_CHARS) in error.reason


def test_a_value_at_the_limit_is_read() -> None:
    apps = ";".join(["A" * 99] * (MAX_FIELD_CHARS // 100))
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001", apps=apps)])
    [row] = read(text, "text/csv")
    assert len(apps) <= MAX_FIELD_CHARS and row.errors and row.errors[0].field == "applications"
    assert "characters" not in row.errors[0].reason  # too many applications, not too long a value


def test_a_quoted_record_is_numbered_by_the_line_it_starts_on() -> None:
    spanning = csv_line("MPS-D-000004").replace("Territorial Policing", '"Territorial\r\nPolicing\rUnit"')
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001"), "", csv_line("MPS-D-000002"),
                      spanning, csv_line("MPS-D-000005", ram_mb="x")])
    rows = list(read(text, "text/csv"))
    assert [r.line for r in rows] == [2, 4, 5, 8]  # the record on lines 5-7 is line 5
    assert rows[3].errors[0].line == 8 and rows[3].errors[0].field == "ram_mb"


def test_a_row_with_too_many_or_too_few_values_says_how_many() -> None:
    text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001") + ",extra", "MPS-D-000002,desktop"])
    more, fewer = read(text, "text/csv")
    assert more.errors[0].reason == "18 values for the 17 columns" and more.errors[0].line == 2
    assert fewer.errors[0].reason == "2 values for the 17 columns" and fewer.errors[0].asset_tag == "MPS-D-000002"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"])
def test_json_lines_split_on_newline_only(separator: str) -> None:
    inside = json.dumps(device_body("MPS-D-000001", applications=["CRIS@Crime"])).replace("@", separator)
    assert separator in inside  # raw, not escaped
    text = "\r\n".join([inside, json.dumps(device_body("MPS-D-000002")), ""])
    first, second = read(text, "application/x-ndjson")
    assert (first.line, second.line) == (1, 2)
    assert second.spec is not None
    if first.spec is not None:  # U+2028 and friends are allowed in a JSON string
        assert first.spec.applications == [f"CRIS{separator}Crime"]
    else:  # control characters are not: one error for the one line
        assert "Invalid control character" in first.errors[0].reason


def test_a_truncated_json_line_says_where_once() -> None:
    text = json.dumps(device_body("MPS-D-000001"))[:40] + "\n" + json.dumps(device_body("MPS-D-000002"))
    truncated, good = read(text, "application/x-ndjson")
    assert truncated.errors[0].reason == "not JSON: Unterminated string starting at column 39"  # the "d of "desktop"
    assert good.spec is not None


@pytest.mark.parametrize(("csv_mode", "kind_field"), [(True, "os_family"), (False, "os.family")])
def test_rules_on_the_whole_device_name_the_field_at_fault(csv_mode: bool, kind_field: str) -> None:
    if csv_mode:
        disposed = csv_line("MPS-D-000002").replace(",in_service", ",disposed")
        text = "\n".join([CSV_HEADER, csv_line("MPS-D-000001", kind="body_worn_camera"), disposed])
        camera, gone = read(text, "text/csv")
    else:
        text = "\n".join([json.dumps(device_body("MPS-D-000001", kind="body_worn_camera")),
                          json.dumps(device_body("MPS-D-000002", state="disposed"))])
        camera, gone = read(text, "application/x-ndjson")
    assert [(e.field, e.reason) for e in camera.errors] == [
        (kind_field, "a body_worn_camera cannot run windows; expected one of camera_firmware")]
    assert [e.field for e in gone.errors] == ["state"]
    assert "cannot join the inventory as disposed" in gone.errors[0].reason
