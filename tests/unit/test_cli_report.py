"""``estate report``: the report page from a platform served on 127.0.0.1, saved as PDF and PNG by
real headless chromium (chromium missing fails the test: `bash deploy/local/chromium.sh install`),
and the errors an operator can meet, each said plainly."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.registry import create_app
from services.runtime.settings import Mode, Settings
from tests.conftest import served_in_a_thread

runner = CliRunner()


@pytest.fixture(scope="module")
def platform_url() -> Iterator[str]:
    with served_in_a_thread(create_app(Settings(mode=Mode.EMBEDDED))) as url:
        yield url


@pytest.fixture(scope="module")
def reader_env() -> dict[str, str]:
    return {"ESTATE_TOKEN": runner.invoke(app, ["token", "--role", "reader"]).stdout.strip()}


def test_the_report_is_written_as_pdf_png_and_html(platform_url: str, reader_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    pdf, png, html = tmp_path / "report.pdf", tmp_path / "report.png", tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--url", platform_url, "--pdf", str(pdf), "--png", str(png),
                                 "--html", str(html)], env=reader_env)
    assert result.exit_code == 0, result.output
    assert f"wrote the report as PDF to {pdf}" in result.stdout

    document = pdf.read_bytes()
    assert document.startswith(b"%PDF-") and document.rstrip().endswith(b"%%EOF")
    assert document.count(b"/Type /Page") >= 2 and len(document) > 10_000  # /Pages and at least one /Page

    image = png.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", image[16:24])
    assert width >= 900 and height > 800, (width, height)

    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'data-chart="burn-down"' in page


def test_a_past_day_is_asked_for_and_a_bad_one_refused(platform_url: str, reader_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "past.html"
    result = runner.invoke(app, ["report", "--url", platform_url, "--html", str(out), "--as-of", "2015-01-01"],
                           env=reader_env)
    assert result.exit_code == 0, result.output
    assert 'data-figure="as_of" data-value="2015-01-01"' in out.read_text()
    bad = runner.invoke(app, ["report", "--url", platform_url, "--html", str(out), "--as-of", "soon"],
                        env=reader_env)
    assert bad.exit_code == 2 and "--as-of 'soon' is not a date" in bad.output


def test_without_chromium_the_error_says_how_to_install_it(platform_url: str, reader_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--url", platform_url, "--pdf", str(tmp_path / "r.pdf")],
                           env={**reader_env, "ESTATE_CHROMIUM": "no-such-chromium"})
    assert result.exit_code == 1
    assert "chromium is not installed" in result.output and "deploy/local/chromium.sh install" in result.output
    assert not (tmp_path / "r.pdf").exists()


def test_platform_errors_are_said_plainly(platform_url: str, tmp_path: Path) -> None:
    out = ["--pdf", str(tmp_path / "r.pdf")]
    no_token = runner.invoke(app, ["report", "--url", platform_url, *out], env={"ESTATE_TOKEN": ""})
    assert no_token.exit_code == 1 and "HTTP 401" in no_token.output and "reader token" in no_token.output
    closed = runner.invoke(app, ["report", "--url", "http://127.0.0.1:9", *out], env={"ESTATE_TOKEN": "x"})
    assert closed.exit_code == 1 and "isn't reachable at http://127.0.0.1:9" in closed.output
    nothing = runner.invoke(app, ["report", "--url", platform_url])
    assert nothing.exit_code == 2 and "--pdf FILE" in nothing.output
