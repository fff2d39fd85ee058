"""The ``estate`` commands: thin wrappers that parse options, call one module, show the result.

Exit codes: 0 done; 1 failed (nothing or only part of the work was done; the message says
which); 2 an import stored the good rows and rejected some (or, click's convention, the
command line itself was wrong).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from services.registry import SERVICES

OK, FAILED, REJECTED = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:8000"

app = typer.Typer(name="estate", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False,
                  help="The estate modernisation platform, from the command line: run it, "
                       "load devices into it, get a token, look after dead letters.")


class RoleName(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


PLATFORM = "platform"
ServiceName = StrEnum("ServiceName", {n.upper(): n for n in (PLATFORM, *SERVICES)})  # type: ignore[misc]
"""What `estate run --service` can run: every service together, or one of them alone."""


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str, code: int = FAILED) -> NoReturn:
    _say(f"error: {message}")
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from services.runtime.settings import Settings
    try:
        return Settings(**overrides)
    except ValidationError as error:
        _fail("the settings (ESTATE_* environment variables) are not valid: "
              + "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors()))


@app.command("sample-estate")
def sample_estate(
    seed: Annotated[int, typer.Option(help="The same seed always gives the same estate")] = 2014,
    out: Annotated[str, typer.Option(help="CSV file to write, or - for standard output")] = "-",
    size_scale: Annotated[float, typer.Option(hidden=True, min=0)] = 1.0,
) -> None:
    """Write the sample estate (the Met in April 2014) as an import CSV."""
    from dataclasses import fields

    from services.inventory.sample_estate import EstateSize, generate, write_csv
    full = EstateSize()
    size = EstateSize(**{f.name: round(getattr(full, f.name) * size_scale) for f in fields(full)})
    if out == "-":
        count = write_csv(generate(seed, size), sys.stdout)  # type: ignore[arg-type]
        sys.stdout.flush()
    else:
        try:
            with Path(out).open("w", encoding="utf-8", newline="") as file:
                count = write_csv(generate(seed, size), file)  # type: ignore[arg-type]
        except OSError as error:
            _fail(f"cannot write {out}: {error.strerror or error}")
    _say(f"wrote {count} devices (seed {seed}) to {'standard output' if out == '-' else out}")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A .csv file (with a header row) or .jsonl/.ndjson")],
    url: Annotated[str, typer.Option(envvar="ESTATE_URL",
                                     help="The inventory's base URL")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(
        envvar="ESTATE_TOKEN", show_default=False,
        help="A writer token (estate token --role writer)")] = None,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per request")] = 5000,
    errors_out: Annotated[Path | None, typer.Option(
        help="Write every rejected row here (CSV)")] = None,
) -> None:
    """Import devices into a running inventory, in batches, and report each rejected row.

    Exit code 0: every row stored; 2: some rows rejected (the rest stored); 1: failed.
    Importing the same file again is safe: rows are keyed by asset tag.
    """
    from services.cli import importer, render
    from services.cli.source import ImportSource, SourceError
    try:
        source = ImportSource(file)
        total = source.count()
        if total == 0:
            _say(f"{file} has no rows to import")
        with importer.client(url, token) as http, render.row_progress(total) as progress:
            task = progress.add_task("import", total=total)
            summary = importer.run_import(http, source, batch_rows,
                                          lambda n: progress.advance(task, n))
    except SourceError as error:
        _fail(str(error))
    except importer.Unreachable as error:
        _fail(f"the platform isn't reachable at {url} ({error}).\nStart it with `make run` "
              f"(or `estate run`), or point --url / ESTATE_URL at it.")
    except importer.ImportFailed as error:
        _report_failure(error)
    if errors_out is not None:
        try:
            with errors_out.open("w", encoding="utf-8", newline="") as out:
                summary.write_errors(out)
        except OSError as error:
            _fail(f"cannot write {errors_out}: {error.strerror or error}")
    render.import_summary(render.stdout(), summary, str(errors_out) if errors_out else None)
    raise typer.Exit(REJECTED if summary.rejected else OK)


def _report_failure(error: Any) -> NoReturn:
    _say(f"error: the import failed: {error}")
    for line in error.errors[:20]:
        _say(f"  {line}")
    if error.status == 401:
        _say("Get a token with `estate token --role writer`; pass it as --token or ESTATE_TOKEN.")
    if error.rows_done:
        _say(f"The first {error.rows_done} rows were sent before this; importing the file again "
             f"is safe (rows are keyed by asset tag).")
    raise typer.Exit(FAILED)


@app.command()
def token(
    role: Annotated[RoleName, typer.Option(help="What the token may do")] = RoleName.READER,
    subject: Annotated[str | None, typer.Option(help="Who it is for [default: your user name]",
                                                show_default=False)] = None,
    hours: Annotated[float, typer.Option(min=0.01, help="How long it is valid")] = 8.0,
) -> None:
    """Print a bearer token signed with this machine's ESTATE_JWT_SECRET (embedded mode)."""
    from datetime import timedelta

    from services.runtime.auth import Role, issue_token
    from services.runtime.clock import SystemClock
    settings = _settings()
    name = subject or _user()
    typer.echo(issue_token(settings, subject=name, roles=[Role.parse(role.value)],
                           now=SystemClock().now(), ttl=timedelta(hours=hours)))
    _say(f"{role.value} token for {name}, valid {hours:g} h")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "estate-cli"


@app.command()
def run(
    service: Annotated[ServiceName, typer.Option(
        help="platform: every service in one process; or one service alone",
    )] = ServiceName.PLATFORM,  # type: ignore[attr-defined]  # built from the service list
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
    sample_estate: Annotated[bool | None, typer.Option(
        "--sample-estate/--no-sample-estate", show_default=False,
        help="Load the sample estate [default: yes for the embedded platform]")] = None,
    log_level: Annotated[str | None, typer.Option(
        hidden=True, help="Overrides ESTATE_LOG_LEVEL")] = None,
) -> None:
    """Run the platform (embedded by default; ESTATE_MODE=distributed uses Kafka and MongoDB).

    Logs go to standard error: readable lines on a terminal, JSON otherwise (ESTATE_LOG_FORMAT,
    ESTATE_LOG_LEVEL)."""
    import uvicorn

    from services.registry import create_app
    from services.runtime.logs import log_config
    from services.runtime.settings import Mode
    settings = _settings()
    alone = service.value != PLATFORM
    overrides: dict[str, Any] = {}
    if sample_estate is not None:
        overrides["load_sample_estate"] = sample_estate
    elif "ESTATE_LOAD_SAMPLE_ESTATE" not in os.environ:
        overrides["load_sample_estate"] = not alone and settings.mode is Mode.EMBEDDED
    if alone and "ESTATE_SERVICE_NAME" not in os.environ:
        settings = _settings(service_name=service.value)
    app_ = create_app(settings, [service.value] if alone else None, setting_overrides=overrides)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}"
    loading = overrides.get("load_sample_estate",
                            os.environ.get("ESTATE_LOAD_SAMPLE_ESTATE", "").lower() in ("1", "true", "yes", "on"))
    sample = ", sample estate loading" if loading else ""
    _say(f"estate {service.value} ({settings.mode.value}{sample}) at {base}\n"
         f"  API docs: {base}/docs\n"
         f"  tokens:   estate token --role reader   |   estate token --role writer")
    level = (log_level or settings.log_level).upper()
    try:
        logging_config = log_config(level, settings.log_format)
    except ValueError as error:
        _fail(str(error))
    uvicorn.run(app_, host=host, port=port, log_config=logging_config,
                log_level=level.lower())


@app.command("dead-letters")
def dead_letters(
    topic: Annotated[str, typer.Option(
        help="The topic whose dead letters to show")] = "procurement.deliveries",
    group: Annotated[str, typer.Option(
        help="The consumer group that dead-lettered them (a replay reaches only this group)")] = "inventory",
    bootstrap: Annotated[str, typer.Option(envvar="ESTATE_KAFKA_BOOTSTRAP")] = "127.0.0.1:39092",
    replay: Annotated[bool, typer.Option(help="Republish each to its original topic")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many")] = None,
) -> None:
    """List the messages a consumer group dead-lettered from a topic (Kafka), or replay them to it."""
    from services.cli import render
    from services.cli.dead_letters import Kafka, KafkaUnreachable
    from services.cli.dead_letters import dead_letters as read
    from services.runtime.bus import dead_letter_topic
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries are not news here
    console = render.stdout()
    try:
        letters = asyncio.run(read(Kafka(bootstrap), topic, group, replay=replay, limit=limit))
    except KafkaUnreachable as error:
        _fail(f"{error}\nStart the local broker with `make infra-up`, or pass --bootstrap.")
    if letters is None:
        console.print(f"no topic {dead_letter_topic(topic, group)} on {bootstrap}: "
                      f"{group} never dead-lettered anything from {topic}", markup=False)
        return
    if letters:
        console.print(render.dead_letters_table(letters))
    verb = "replayed" if replay else "found"
    console.print(f"{verb} {len(letters)} dead letter(s) on {dead_letter_topic(topic, group)}", markup=False)


@app.command("what-if")
def what_if(
    fix: Annotated[list[str] | None, typer.Option(
        help="APPLICATION=YYYY-MM-DD: its devices unblocked and migrated by then (repeatable)")] = None,
    capacity_factor: Annotated[float | None, typer.Option(help="Multiply the burn-down (2 = twice)")] = None,
    daily_capacity: Annotated[float | None, typer.Option(help="Devices a day on average instead")] = None,
    budget_cut: Annotated[float, typer.Option(min=0, help="GBP taken off the budget")] = 0.0,
    target_os: Annotated[str | None, typer.Option(
        help="Another target OS from the policy's lifecycle table: VERSION or FAMILY:VERSION (10, windows:10)")]
    = None,
    target_minimum: Annotated[str | None, typer.Option(
        help="RAM_MB,DISK_GB,CPU_CORES: the force's minimum for --target-os (default: the one in force, "
             "raised to what that OS needs)")] = None,
    replacement_lead_days: Annotated[int | None, typer.Option(
        min=0, help="Days a new device takes to arrive (with --target-os; default 56)")] = None,
    device_price: Annotated[float | None, typer.Option(
        min=0.01, help="GBP per new device (with --target-os; default: the mean delivered so far)")] = None,
    url: Annotated[str, typer.Option(envvar="ESTATE_URL", help="The platform's base URL")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(envvar="ESTATE_TOKEN", show_default=False,
                                              help="A reader token (estate token --role reader)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the answer as JSON")] = False,
) -> None:
    """Evaluate a change to the plan against the baseline, from the current figures (nothing
    stored changes): forecast dates, P(deadline), extended-support cost, budget; with
    --target-os, the devices needing a new device and the target's end of support too."""
    import json

    from services.cli import importer, render
    from services.cli import whatif as cli_whatif
    try:
        body = cli_whatif.request(fix or [], capacity_factor, daily_capacity, budget_cut, target_os=target_os,
                                  target_minimum=target_minimum, replacement_lead_days=replacement_lead_days,
                                  device_price_gbp=device_price)
        with importer.client(url, token) as http:
            answer = cli_whatif.ask(http, body)
    except (ValueError, cli_whatif.WhatIfFailed) as error:
        _fail(str(error))
    if json_out:
        typer.echo(json.dumps(answer["result"], indent=2))
    else:
        render.stdout().print(cli_whatif.table(answer["result"]))


@app.command()
def report(
    pdf: Annotated[Path | None, typer.Option(help="Write the page as an A4 PDF here")] = None,
    png: Annotated[Path | None, typer.Option(help="Write a PNG of the whole page here")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the page's HTML here (self-contained)")] = None,
    as_of: Annotated[str | None, typer.Option(help="Figures at the end of this day (YYYY-MM-DD); default now")]
    = None,
    url: Annotated[str, typer.Option(envvar="ESTATE_URL", help="The platform's base URL")] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(envvar="ESTATE_TOKEN", show_default=False,
                                              help="A reader token (estate token --role reader)")] = None,
) -> None:
    """Save the programme report (GET /report) from a running platform as PDF, PNG or HTML.
    PDF and PNG are drawn by headless chromium (Debian's chromium package)."""
    from datetime import date

    from services.cli import importer
    from services.cli import report as cli_report
    if pdf is None and png is None and html is None:
        _fail("say what to write: --pdf FILE, --png FILE and/or --html FILE", REJECTED)
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        _fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)", REJECTED)
    try:
        with importer.client(url, token) as http:
            page = cli_report.fetch(http, day)
        written = cli_report.export(page, pdf=pdf, png=png, html_out=html)
    except cli_report.ReportFailed as error:
        _fail(str(error))
    for w in written:
        typer.echo(f"wrote the report as {w.what} to {w.path} ({w.size:,} bytes)")


@app.command()
def scenario(
    scale: Annotated[float, typer.Option(min=0.001, max=1.0, help="Share of the estate simulated (0.05 = 1/20th)")]
    = 1.0,
    seed: Annotated[int, typer.Option(help="The same seed gives the same run")] = 2014,
    until: Annotated[str | None, typer.Option(help="Last simulated day (YYYY-MM-DD); default 2017-04-08")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file")]
    = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar")] = True,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="On the real stack: the Kafka and MongoDB-wire store that ESTATE_KAFKA_BOOTSTRAP "
                              "and ESTATE_MONGO_URL name (a new database and consumer groups for the run)")] = False,
) -> None:
    """Run the programme from April 2014 on the embedded platform (all four services, a
    simulated clock), or with --distributed on Kafka and FerretDB: waves, fixes, buying,
    deliveries, disposals, mobile rollouts. Exit 1 if the figures miss the published ones (2%
    on counts, 5% on cost)."""
    from dataclasses import replace
    from datetime import date

    from rich.console import Console

    from services.cli import scenario as scenario_cli
    from services.scenario.plan import ScenarioPlan
    logging.disable(logging.WARNING)
    try:
        plan = ScenarioPlan(seed=seed, scale=scale)
        if until:
            plan = replace(plan, end=date.fromisoformat(until))
            ScenarioPlan.__post_init__(plan)
    except ValueError as error:
        _fail(str(error))
    console = Console(stderr=True)
    settings = None
    if distributed:
        from services.scenario.real_stack import real_stack_settings
        settings = real_stack_settings()
        console.print(f"real stack: Kafka {settings.kafka_bootstrap}, database {settings.mongo_database} "
                      f"at {settings.mongo_url}")
    result = scenario_cli.run(plan, console, progress, settings)
    out = Console()
    out.print(scenario_cli.summary_table(result))
    if result.checks:
        out.print(scenario_cli.calibration_table(result))
    else:
        out.print("No published figure falls within the run (the first is on 2015-08-01).")
    if json_out is not None:
        scenario_cli.write_json(result, json_out)
    if not result.calibrated:
        raise typer.Exit(FAILED)
