"""Benchmark: the embedded platform (`estate run`, what `make run` starts) from a cold start to
the whole sample estate loaded by inventory, assessed by migration and shown by reporting.

Starts `estate run` on a free port (one process, in-process bus, embedded store, sample estate
on), then polls: the estate's events published (`events_published_total` on inventory.devices),
migration's assessments (its `migration_assessments_total` counters, summed), reporting's
summary (`devices`) and readiness. Prints the time each was reached after the start and after
the last import event (the catch-up), and the process's peak RSS.

    .venv/bin/python benchmarks/embedded.py [--devices 45500] [--assessed 45500]
Targets: reporting shows the estate within 5 s of inventory storing it (issue 9's catch-up);
service RSS under 250 MB per service (the embedded process holds all four).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
from import_35k import RssSampler, free_port

from services.runtime.auth import Role, issue_token
from services.runtime.settings import Settings

ASSESSED = re.compile(r'^migration_assessments_total\{outcome="(\w+)"\} (\S+)$', re.M)
PUBLISHED = re.compile(r'^events_published_total\{topic="inventory.devices",type="([\w.]+)"\} (\S+)$', re.M)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=45_500, help="devices in the sample estate")
    parser.add_argument("--assessed", type=int, default=None,
                        help="assessments to wait for (default: every device of the sample estate)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    wanted_assessed = args.devices if args.assessed is None else args.assessed
    port = free_port()
    settings = Settings()
    env = {**os.environ, "ESTATE_MODE": "embedded", "ESTATE_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    estate = os.path.join(os.path.dirname(sys.executable), "estate")
    process = subprocess.Popen([estate, "run", "--port", str(port)], env=env)
    sampler = RssSampler(process.pid)
    sampler.start()
    url = f"http://127.0.0.1:{port}"
    token = issue_token(settings, subject="bench", roles=[Role.READER], now=datetime.now(UTC))
    reached: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            while len(reached) < 4:
                if process.poll() is not None:
                    raise SystemExit(f"estate run exited with {process.returncode}")
                if time.perf_counter() - started > args.timeout:
                    raise SystemExit(f"not there after {args.timeout:.0f} s: reached {reached}")
                now = time.perf_counter() - started
                try:
                    if "stored" not in reached and (await http.get(f"{url}/health/ready")).status_code == 200:
                        reached["stored"] = now
                    metrics = (await http.get(f"{url}/metrics")).text
                    if "published" not in reached and sum(
                            float(v) for _, v in PUBLISHED.findall(metrics)) >= args.devices:
                        reached["published"] = now
                    if "assessed" not in reached:
                        if sum(float(v) for _, v in ASSESSED.findall(metrics)) >= wanted_assessed:
                            reached["assessed"] = now
                    if "reported" not in reached:
                        summary = await http.get(f"{url}/reporting/summary")
                        if summary.status_code == 200 and summary.json()["devices"] >= args.devices:
                            reached["reported"] = now
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        sampler.stop.set()
        sampler.join()
    published = reached["published"]
    print(f"estate's events published {published:7.1f} s after the start ({args.devices} on inventory.devices)")
    print(f"migration assessed all    {reached['assessed']:7.1f} s after the start, "
          f"{reached['assessed'] - published:+.1f} s after the last import event ({wanted_assessed} assessments)")
    print(f"reporting shows all       {reached['reported']:7.1f} s after the start, "
          f"{reached['reported'] - published:+.1f} s after the last import event (target: within 5 s)")
    print(f"ready (estate loaded)     {reached['stored']:7.1f} s after the start (readiness answers 200)")
    print(f"process peak RSS          {sampler.peak / 2**20:7.0f} MB (all four services in one process)")


if __name__ == "__main__":
    asyncio.run(main())
