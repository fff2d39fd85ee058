"""Ways to break the real infrastructure on purpose, and mend it again.

* ``TcpProxy``: a TCP forwarder on 127.0.0.1 between a client and a server. ``cut()`` drops
  every connection and refuses new ones (the server is unreachable); ``hang()`` accepts and
  keeps connections open but forwards nothing (the server hangs); ``restore()`` mends it.
  Used for the store: point a service's ``mongo_url`` at the proxy.
* ``paused_broker()``: stops the Kafka broker process with SIGSTOP and resumes it with SIGCONT
  (clients see requests time out: the broker is down, with its data intact). Kafka cannot sit
  behind a plain proxy because its metadata names the broker's own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.mode = "open"
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str = "mongodb") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/"

    async def stop(self) -> None:
        self._drop_all()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def cut(self) -> None:
        """Unreachable: every open connection is reset, new ones are closed at once."""
        self.mode = "cut"
        self._drop_all()

    def hang(self) -> None:
        """Hung: connections stay open but nothing goes through."""
        self.mode = "hang"

    def restore(self) -> None:
        self.mode = "open"

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                while self.mode == "hang":
                    await asyncio.sleep(0.05)
                if self.mode == "cut":
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
            self._writers.discard(dst)


@contextlib.asynccontextmanager
async def tcp_proxy(url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of ``mongodb://host:port/``."""
    host, port = url.split("://", 1)[1].rstrip("/").split(":")
    proxy = await TcpProxy(host, int(port)).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def broker_pid() -> int:
    state = Path(os.environ.get("ESTATE_STATE_DIR", REPO / ".local"))
    return int((state / "kafka" / "kafka.pid").read_text().strip())


@contextlib.contextmanager
def paused_broker() -> Iterator[None]:
    """The Kafka broker frozen (SIGSTOP) for the duration; always resumed afterwards."""
    pid = broker_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
