"""Wait until a Kafka broker really answers metadata requests.

Used by deploy/local/kafka.sh (start/status). Exit 0 once an AIOKafkaAdminClient can
connect, describe the cluster (a live controller and at least one broker) and list the
topics; exit 1 when the deadline passes or the watched broker process dies.

    python deploy/local/kafka_ready.py 127.0.0.1:39092 --timeout 120 --pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _probe(bootstrap: str, attempt_timeout: float) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    timeout_ms = max(1000, int(attempt_timeout * 1000))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=timeout_ms,
        client_id="estate-kafka-ready",
    )
    try:
        await asyncio.wait_for(admin.start(), attempt_timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), attempt_timeout)
        brokers = cluster.get("brokers") or []
        controller = cluster.get("controller_id", -1)
        if not brokers or controller is None or controller < 0:
            raise RuntimeError(f"cluster not formed yet: {cluster!r}")
        topics = await asyncio.wait_for(admin.list_topics(), attempt_timeout)
        return f"brokers={len(brokers)} controller={controller} topics={len(topics)}"
    finally:
        try:
            await asyncio.wait_for(admin.close(), 5)
        except Exception:  # noqa: BLE001 - best effort while probing
            pass


async def wait_ready(bootstrap: str, timeout: float, pid: int | None, quiet: bool) -> bool:
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if not _alive(pid):
            print(f"kafka_ready: broker process {pid} exited", file=sys.stderr)
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            info = await _probe(bootstrap, min(10.0, max(1.0, remaining)))
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if not quiet:
                print(f"kafka_ready: {bootstrap} answers ({info})")
            return True
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    print(
        f"kafka_ready: {bootstrap} did not answer within {timeout:.0f}s "
        f"(last error: {last_error})",
        file=sys.stderr,
    )
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", help="host:port, e.g. 127.0.0.1:39092")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--pid", type=int, default=None, help="give up if this pid exits")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    # aiokafka logs every refused connection at ERROR while the broker boots.
    logging.basicConfig(level=logging.CRITICAL)
    try:
        import aiokafka  # noqa: F401
    except ImportError as exc:
        print(f"kafka_ready: aiokafka is not importable by {sys.executable}: {exc}", file=sys.stderr)
        return 2
    ok = asyncio.run(wait_ready(args.bootstrap, args.timeout, args.pid, args.quiet))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
