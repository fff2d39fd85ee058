"""Benchmark: the whole programme scenario (issue 10), April 2014 to completion.

Runs ``estate scenario``'s driver (all four services on one runtime, a simulated clock) and
prints the wall time (and this process's CPU time), the events per second through the whole
platform (every event published on the bus, divided by the wall time), the peak RSS of this
process (the only one: every service runs in it), and the calibration checks against the
published figures.

    PYTHONPATH=. .venv/bin/python benchmarks/scenario.py                     # full size, embedded
    PYTHONPATH=. .venv/bin/python benchmarks/scenario.py --scale 0.05 --until 2016-01-02
    PYTHONPATH=. .venv/bin/python benchmarks/scenario.py --distributed       # the real stack

``--distributed``: on the Kafka and MongoDB-wire store that ESTATE_KAFKA_BOOTSTRAP and
ESTATE_MONGO_URL name, in a new database (``estate_scenario_<run>``) with new consumer groups.
Targets (issue 10): full size under 3 minutes embedded, under 10 minutes on the real stack.
Exit 1 if a calibration check fails.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from dataclasses import astuple, replace
from datetime import date

from services.scenario.driver import Progress, run_scenario
from services.scenario.plan import ScenarioPlan
from services.scenario.real_stack import real_stack_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of the estate (1.0: 45,500 devices)")
    parser.add_argument("--seed", type=int, default=2014)
    parser.add_argument("--until", type=date.fromisoformat, default=None, help="last simulated day")
    parser.add_argument("--distributed", action="store_true", help="on the real Kafka and FerretDB")
    parser.add_argument("--every", type=int, default=30, help="print progress every this many simulated days")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    plan = ScenarioPlan(seed=args.seed, scale=args.scale)
    if args.until is not None:
        plan = replace(plan, end=args.until)
    settings = real_stack_settings() if args.distributed else None
    where = (f"real stack (Kafka {settings.kafka_bootstrap}, {settings.mongo_url} database "
             f"{settings.mongo_database})" if settings else "embedded")
    print(f"scenario: scale {plan.scale:g} ({sum(astuple(plan.estate())):,} devices in the estate at the "
          f"start), seed {plan.seed}, {plan.start} to {plan.end}, {where}", flush=True)
    started = time.perf_counter()

    def progress(p: Progress) -> None:
        if p.done % args.every == 0 or p.done == p.total:
            print(f"  {p.day}  day {p.done}/{p.total}  XP {p.legacy:>6} (plan {p.target:>6})  "
                  f"{time.perf_counter() - started:7.1f} s", flush=True)

    cpu_before = time.process_time()
    result = run_scenario(plan, progress, settings)
    cpu_s = time.process_time() - cpu_before
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wall time: {result.wall_s:.1f} s for {len(plan.days())} simulated days "
          f"({result.wall_s / len(plan.days()) * 1000:.0f} ms a day)")
    print(f"CPU time of this process: {cpu_s:.1f} s (on a loaded machine the wall time also counts others' work; "
          f"on the real stack Kafka's and FerretDB's work is not in it)")
    print(f"events through the platform: {result.events:,} ({result.events / result.wall_s:,.0f} events/s)")
    print(f"peak RSS: {peak_mb:,.0f} MB (one process: all four services)")
    print(f"waves: {result.waves}, orders: {result.orders}, devices at the end: {result.summary['devices']:,}, "
          f"legacy remaining: {result.summary['legacy_remaining']:,}")
    for c in result.checks:
        print(f"  {c.what} on {c.on}: published {c.expected:,.0f}, reporting {c.actual:,.0f}, "
              f"error {c.error:+.2%} (tolerance {c.tolerance:.0%}): {'ok' if c.ok else 'MISSED'}")
    if not result.checks:
        print("  no published figure falls within the run")
    return 0 if result.calibrated else 1


if __name__ == "__main__":
    sys.exit(main())
