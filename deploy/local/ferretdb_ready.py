"""Wait until a MongoDB-wire server answers `ping` and `hello`.

Used by deploy/local/ferretdb.sh. Exit codes: 0 ready, 1 deadline passed,
2 the watched server process (--pid) died while waiting.

    python deploy/local/ferretdb_ready.py mongodb://127.0.0.1:37017/ --deadline 60 --pid 1234
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists" for kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds to wait")
    parser.add_argument("--pid", type=int, default=0, help="give up early if this process dies")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    end = time.monotonic() + args.deadline
    last_error: object = "no attempt"
    while True:
        if args.pid and not _alive(args.pid):
            print(f"ferretdb_ready: server process {args.pid} exited", file=sys.stderr)
            return 2
        client: MongoClient[dict[str, Any]] = MongoClient(
            args.uri,
            serverSelectionTimeoutMS=1000,
            connectTimeoutMS=1000,
            socketTimeoutMS=5000,
            directConnection=True,
        )
        try:
            client.admin.command("ping")
            hello = client.admin.command("hello")
            if not args.quiet:
                print(f"ferretdb_ready: {args.uri} answers (maxWireVersion={hello.get('maxWireVersion')})")
            return 0
        except PyMongoError as exc:
            last_error = exc
        finally:
            client.close()
        if time.monotonic() >= end:
            print(
                f"ferretdb_ready: {args.uri} not answering after {args.deadline:g}s: {last_error}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main())
