"""Headless chromium (Debian's ``chromium`` package), driven over the Chrome DevTools Protocol.

The browser is started with ``--remote-debugging-pipe``: it reads protocol messages (JSON, each
ended by a NUL byte) on its file descriptor 3 and writes answers and events on 4, so no port is
opened and no websocket client is needed. A temporary profile, no sandbox (it may run as root
in a container), and every background service that would reach the network switched off: the
browser only loads what it is told to.

Used by ``estate report --pdf/--png`` and by the report page's browser test, which also reads
the console messages, the failed requests and the page's own DOM through it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-pings",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
         "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe")
INSTALL_HINT = "install Debian's chromium package: `bash deploy/local/chromium.sh install` (make test does)"


class BrowserError(Exception):
    """Chromium is missing, would not start, or a protocol command failed."""


def find_chromium() -> str:
    found = shutil.which(os.environ.get("ESTATE_CHROMIUM", "chromium"))
    if found is None:
        raise BrowserError(f"chromium is not installed: {INSTALL_HINT}")
    return found


@dataclass
class PageRecord:
    """What happened while a page loaded: console errors, exceptions, failed or 4xx/5xx requests."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    status: int | None = None


def _high(fd: int) -> int:
    """The descriptor moved to 10 or above (close-on-exec), so that dup2 onto 3 and 4 never
    meets it there."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless chromium process and one page (tab) in it."""

    def __init__(self, executable: str | None = None, timeout_s: float = 60.0,
                 window: tuple[int, int] = (1000, 800)) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="estate-chromium-")
        to_chrome_r, to_chrome_w = (_high(fd) for fd in os.pipe())
        from_chrome_r, from_chrome_w = (_high(fd) for fd in os.pipe())
        argv = [executable or find_chromium(), *FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={window[0]},{window[1]}", "about:blank"]
        self._log = open(Path(self._profile) / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            self.pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, self._log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, self._log.fileno(), 2), (os.POSIX_SPAWN_DUP2, to_chrome_r, 3),
                (os.POSIX_SPAWN_DUP2, from_chrome_w, 4)], setsid=True)
        except OSError as error:
            self._cleanup_files()
            raise BrowserError(f"chromium could not be started ({error}): {INSTALL_HINT}") from error
        finally:
            for fd in (devnull, to_chrome_r, from_chrome_w):
                os.close(fd)
        self._out, self._in = to_chrome_w, from_chrome_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        try:
            version = self.call("Browser.getVersion")
            self.version = str(version.get("product", ""))
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Network", "Log"):
                self.call(f"{domain}.enable", session=self.session)
        except BaseException:
            self.close()
            raise

    # -- the protocol ------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited: {self.log_tail()}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer (events that come first are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data):]
        except BrokenPipeError as error:
            raise BrowserError(f"chromium exited: {self.log_tail()}") from error
        deadline = time.monotonic() + self.timeout_s
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self.events.append(answer)

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def wait_for(self, method: str, since: int = 0) -> dict[str, Any]:
        """The first event ``method`` of the page among those from index ``since`` on, waiting for it."""
        deadline = time.monotonic() + self.timeout_s
        seen = since
        while True:
            for event in self.events[seen:]:
                if event["method"] == method and event.get("sessionId") == self.session:
                    return event
            seen = len(self.events)
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)

    # -- what the callers use ----------------------------------------------------------------

    def open(self, url: str, headers: dict[str, str] | None = None) -> PageRecord:
        """Load ``url`` (with extra request headers) until its load event; what went wrong on the way."""
        self.page("Network.setExtraHTTPHeaders", {"headers": headers or {}})
        since = len(self.events)
        navigated = self.page("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise BrowserError(f"{url} did not load: {navigated['errorText']}")
        self.wait_for("Page.loadEventFired", since)
        self.evaluate("1")  # a round trip: the events sent before it are in
        return self.record(since)

    def record(self, since: int = 0) -> PageRecord:
        out = PageRecord()
        urls: dict[str, str] = {}
        for event in self.events[since:]:
            method, params = event["method"], event.get("params", {})
            if method == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
                out.requests.append(params["request"]["url"])
            elif method == "Network.responseReceived":
                status = int(params["response"]["status"])
                if params.get("type") == "Document" and out.status is None:
                    out.status = status
                if status >= 400:
                    out.failed_requests.append(f"{params['response']['url']}: HTTP {status}")
            elif method == "Network.loadingFailed":
                out.failed_requests.append(f"{urls.get(params['requestId'], '?')}: {params.get('errorText')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                   for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.console_errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                at = f" ({entry['url']})" if entry.get("url") else ""
                out.console_errors.append(f"{entry.get('source')}: {entry.get('text')}{at}")
        return out

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable results)."""
        answer = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:60]}: {answer['exceptionDetails'].get('text')}")
        return answer.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, not only the window."""
        size = self.page("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.page("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        return base64.b64decode(data["data"])

    def pdf(self) -> bytes:
        """The page printed to PDF (A4, with its colours)."""
        data = self.page("Page.printToPDF", {"printBackground": True, "paperWidth": 8.27, "paperHeight": 11.69,
                                             "marginTop": 0.4, "marginBottom": 0.4, "marginLeft": 0.4,
                                             "marginRight": 0.4})
        return base64.b64decode(data["data"])

    def log_tail(self) -> str:
        try:
            return (Path(self._profile) / "chromium.log").read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""

    def close(self) -> None:
        if getattr(self, "_out", None) is not None:
            try:
                self.call("Browser.close")
            except (BrowserError, OSError):
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (getattr(self, "_out", None), getattr(self, "_in", None)):
            if fd is not None:
                os.close(fd)
        self._out = self._in = None  # type: ignore[assignment]
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)


@contextmanager
def browser(executable: str | None = None, timeout_s: float = 60.0) -> Iterator[Browser]:
    b = Browser(executable, timeout_s)
    try:
        yield b
    finally:
        b.close()
