"""``estate report``: the programme report page from a running platform, saved as PDF, PNG or HTML.

The page is fetched over HTTP with the caller's reader token (so the platform's own errors come
back as they are: not reachable, 401, 422), then opened from a temporary file in headless
chromium and printed (A4 PDF) or photographed (a PNG of the whole page). The page has no
scripts and no external assets, so what chromium draws from the file is what the platform serves.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from services.cli.browser import Browser, BrowserError
from services.cli.problems import describe


class ReportFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    what: str
    size: int


def fetch(http: httpx.Client, as_of: date | None = None) -> str:
    """The report page's HTML."""
    params = {"as_of": as_of.isoformat()} if as_of else {}
    try:
        response = http.get("/report", params=params)
    except httpx.TransportError as error:
        raise ReportFailed(f"the platform isn't reachable at {http.base_url} ({error})") from error
    if response.status_code != 200:
        hint = " (a reader token: estate token --role reader, or ESTATE_TOKEN)" if response.status_code in (
            401, 403) else ""
        raise ReportFailed(f"GET /report: {describe(response)}{hint}")
    if not response.headers.get("content-type", "").startswith("text/html"):
        raise ReportFailed(f"GET /report answered {response.headers.get('content-type')}, not HTML")
    return response.text


def export(html: str, *, pdf: Path | None = None, png: Path | None = None, html_out: Path | None = None,
           chromium: str | None = None) -> list[Written]:
    """Write the page as each format asked for. ReportFailed: chromium missing or failing, or a
    file that cannot be written."""
    written: list[Written] = []
    if html_out is not None:
        written.append(_write(html_out, "HTML", html.encode()))
    if pdf is None and png is None:
        return written
    with tempfile.TemporaryDirectory(prefix="estate-report-") as folder:
        page = Path(folder) / "report.html"
        page.write_text(html, encoding="utf-8")
        try:
            browser = Browser(chromium)
        except BrowserError as error:
            raise ReportFailed(str(error)) from error
        try:
            record = browser.open(page.as_uri())
            if record.console_errors:
                raise ReportFailed("chromium reported errors on the page: " + "; ".join(record.console_errors))
            if pdf is not None:
                written.append(_write(pdf, "PDF", browser.pdf()))
            if png is not None:
                written.append(_write(png, "PNG", browser.screenshot()))
        except BrowserError as error:
            raise ReportFailed(f"chromium failed: {error}") from error
        finally:
            browser.close()
    return written


def _write(path: Path, what: str, data: bytes) -> Written:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise ReportFailed(f"cannot write {path}: {error.strerror or error}") from error
    return Written(path, what, len(data))
