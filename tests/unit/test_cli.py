"""The ``estate`` command line: sample estate, tokens, import over real HTTP, dead letters."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from aiokafka import TopicPartition
from typer.testing import CliRunner

from services.cli import app
from services.cli import dead_letters as dlq
from services.cli.source import ImportSource
from services.inventory.app import InventorySettings
from services.inventory.imports import CSV_COLUMNS, MAX_FIELD_CHARS, read_csv, read_json_lines
from services.inventory.sample_estate import EstateSize, csv_row, generate
from services.runtime.auth import Role, decode_token
from services.runtime.settings import Mode, Settings
from tests.conftest import served_in_a_thread

runner = CliRunner()


def good_row(tag: str) -> str:
    return (f"{tag},desktop,windows,XP,Dell OptiPlex 745,Core 2 Duo E6300,x64,2,2048,160,1.2,bios,"
            f"Camden Police Station,Camden,Territorial Policing,CRIS Crime Reporting,in_service\n")


def bad_row(tag: str) -> str:  # cpu_arch z is not an architecture
    return good_row(tag).replace(",x64,", ",z,")


HEADER = ",".join(CSV_COLUMNS) + "\n"


# ------------------------------------------------------------------ sample-estate, token


def test_sample_estate_writes_the_header_and_the_rows_of_the_seed() -> None:
    result = runner.invoke(app, ["sample-estate", "--seed", "7", "--size-scale", "0.001"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    size = EstateSize(xp_desktops=35, win7_desktops=3, laptops=4, tablets=2, cameras=1)
    expected = [[str(v) for v in csv_row(spec).values()] for spec in generate(7, size)]
    assert rows[1:] == expected
    assert "wrote 45 devices" in result.stderr


def test_sample_estate_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "estate.csv"
    result = runner.invoke(app, ["sample-estate", "--size-scale", "0.0002", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert result.stdout == ""


def test_token_decodes_and_carries_the_role() -> None:
    result = runner.invoke(app, ["token", "--role", "writer", "--subject", "alice", "--hours", "1"])
    assert result.exit_code == 0, result.output
    principal = decode_token(Settings(), result.stdout.strip())
    assert principal.subject == "alice"
    assert principal.roles == {Role.WRITER}


def test_run_loads_the_sample_estate_only_for_the_embedded_platform(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda a, host, port, **_: started.append((a, host, port)))
    for name in ("ESTATE_LOAD_SAMPLE_ESTATE", "ESTATE_MODE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["run", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/docs" in result.stderr
    assert "estate token --role writer" in result.stderr
    result = runner.invoke(app, ["run", "--service", "inventory"], env={"PORT": "8124"})
    assert result.exit_code == 0, result.output
    (platform, _, _), (inventory, _, port) = started
    assert platform.state.runtime.settings_of(InventorySettings).load_sample_estate is True
    assert inventory.state.runtime.settings_of(InventorySettings).load_sample_estate is False
    assert port == 8124


# ------------------------------------------------------------------ import: line numbers


def test_batches_report_the_lines_the_whole_file_would(tmp_path: Path) -> None:
    text = (HEADER + good_row("L-1") + "\n" + bad_row("L-2")
            + good_row("L-3").replace("Dell OptiPlex 745", '"Dell\nOptiPlex"') + "\r\n"
            + bad_row("L-4").replace("CRIS Crime Reporting", '"CRIS\r\nCrime"'))
    whole = [row.line for row in read_csv(text)]
    assert whole == [2, 4, 5, 8]  # each record's first line
    assert _lines_through_batches(tmp_path / "f.csv", text, read_csv) == whole


def test_json_lines_batches_report_the_lines_the_whole_file_would(tmp_path: Path) -> None:
    device = {"asset_tag": "J-1", "kind": "tablet"}
    odd = json.dumps({**device, "model": "a\u2028b\u2029c\x85d"}, ensure_ascii=False)
    text = "\n".join([json.dumps(device), "", "{not json", "  ", json.dumps(device) + "\x0c[1]", odd + "\r",
                      json.dumps(device) + "\x1c"])
    whole = [row.line for row in read_json_lines(text)]
    assert whole == [1, 3, 5, 6, 7]  # split on \n only: \x0c, U+2028, U+2029, \x85, \x1c are no line ends
    assert _lines_through_batches(tmp_path / "f.jsonl", text, read_json_lines) == whole


def test_the_cli_numbers_long_values_and_multi_line_records_as_the_api_does(tmp_path: Path) -> None:
    long_value = "x" * (MAX_FIELD_CHARS + 10)
    text = (HEADER + good_row("L-1") + good_row("L-2").replace("Dell OptiPlex 745", f'"{long_value}\n"')
            + "\r\n" + good_row("L-3").replace("Core 2 Duo E6300", '"Core\r2\n\nDuo"') + bad_row("L-4"))
    parsed = list(read_csv(text))
    assert [row.line for row in parsed] == [2, 3, 6, 10]
    assert parsed[1].errors[0].field == "model" and parsed[1].errors[0].line == 3
    assert [row.line for row in ImportSource(_written(tmp_path / "f.csv", text)).rows()] == [2, 3, 6, 10]
    assert _lines_through_batches(tmp_path / "f.csv", text, read_csv) == [2, 3, 6, 10]


def test_the_cli_splits_json_lines_on_newline_only_as_the_api_does(tmp_path: Path) -> None:
    device = {"asset_tag": "J-1", "kind": "tablet", "model": "a\u2028b\u2029c\x85d"}
    text = json.dumps(device, ensure_ascii=False) + "\r\n" + json.dumps(device).replace(",", ",\r") + "\n"
    whole = [row.line for row in read_json_lines(text)]
    assert whole == [1, 2]
    assert _lines_through_batches(tmp_path / "f.jsonl", text, read_json_lines) == whole


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _lines_through_batches(path: Path, text: str, read: Any) -> list[int]:
    path.write_text(text, encoding="utf-8", newline="")
    source, lines = ImportSource(path), []
    for row in source.rows():  # one row per batch: every line number must be translated
        batch = source.batch([row])
        lines += [batch.file_line(parsed.line) for parsed in read(batch.body.decode())]
    return lines


# ------------------------------------------------------------------ import over real HTTP


@pytest.fixture(scope="module")
def platform_url() -> Iterator[str]:
    from services.registry import create_app
    with served_in_a_thread(create_app(Settings(mode=Mode.EMBEDDED))) as url:
        yield url


@pytest.fixture(scope="module")
def writer_env() -> dict[str, str]:
    token = runner.invoke(app, ["token", "--role", "writer"]).stdout.strip()
    return {"ESTATE_TOKEN": token}


def _import(url: str, env: dict[str, str], path: Path, *args: str) -> Any:
    return runner.invoke(app, ["import", str(path), "--url", url, *args], env=env)


def test_import_splits_into_batches_and_reports_the_bad_row_by_its_file_line(
        platform_url: str, writer_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + good_row("CLI-A-1") + good_row("CLI-A-2") + bad_row("CLI-A-3"))
    errors = tmp_path / "errors.csv"
    result = _import(platform_url, writer_env, path, "--batch-rows", "2",
                     "--errors-out", str(errors))
    assert result.exit_code == 2, result.output
    assert "received 3, created 2, updated 0, unchanged 0, rejected 1" in result.stdout
    rejected = list(csv.DictReader(errors.open()))
    assert [(r["line"], r["asset_tag"], r["field"]) for r in rejected] == [
        ("4", "CLI-A-3", "cpu_arch")]  # line 2 of its batch
    assert "CLI-A-3" in result.stdout

    again = _import(platform_url, writer_env, path, "--batch-rows", "2")
    assert again.exit_code == 2
    assert "received 3, created 0, updated 0, unchanged 2, rejected 1" in again.stdout


def test_a_tag_repeated_in_a_later_batch_is_rejected_as_in_one_request(
        platform_url: str, writer_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "repeat.csv"
    path.write_text(HEADER + good_row("CLI-B-1") + good_row("CLI-B-2") + "\n" + good_row("CLI-B-1"))
    errors = tmp_path / "errors.csv"
    result = _import(platform_url, writer_env, path, "--batch-rows", "1",
                     "--errors-out", str(errors))
    assert result.exit_code == 2, result.output
    assert "received 3, created 2, updated 0, unchanged 0, rejected 1" in result.stdout
    [rejected] = list(csv.DictReader(errors.open()))
    assert rejected["line"] == "5" and "repeats line 2" in rejected["reason"]


def test_a_clean_import_exits_0(platform_url: str, writer_env: dict[str, str],
                                tmp_path: Path) -> None:
    path = tmp_path / "clean.csv"
    path.write_text(HEADER + good_row("CLI-C-1"))
    result = _import(platform_url, writer_env, path)
    assert result.exit_code == 0, result.output
    assert "created 1" in result.stdout


def test_an_http_error_prints_the_problem_and_exits_1(platform_url: str, tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(HEADER + good_row("CLI-D-1"))
    result = _import(platform_url, {"ESTATE_TOKEN": ""}, path)
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr and "estate token --role writer" in result.stderr


def test_an_unreachable_platform_says_how_to_start_it(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        path = tmp_path / "devices.csv"
        path.write_text(HEADER + good_row("CLI-E-1"))
        result = _import(url, {"ESTATE_TOKEN": "x"}, path)
    assert result.exit_code == 1
    assert f"isn't reachable at {url}" in result.stderr and "make run" in result.stderr


# ------------------------------------------------------------------ dead letters (fake Kafka)


class FakeBroker:
    """One dead-letter topic; every replayed message fails again and comes back to it."""

    def __init__(self, topic: str, letters: dict[int, int]) -> None:
        self.topic = dlq.dead_letter_topic(topic, "reporting")
        self.log: dict[TopicPartition, list[Any]] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []
        for partition, count in letters.items():
            for n in range(count):
                self.append(partition, f"MPS-D-{partition}{n:05d}".encode(), topic)

    def append(self, partition: int, key: bytes | None, original: str) -> None:
        records = self.log.setdefault(TopicPartition(self.topic, partition), [])
        headers = [("traceparent", b"00-1"), ("dlq-error", b"ValueError: no"),
                   ("dlq-original-topic", original.encode()), ("dlq-consumer-group", b"reporting")]
        records.append(SimpleNamespace(partition=partition, offset=len(records), key=key,
                                       value=b"{}", headers=headers))


class FakeKafka(dlq.Kafka):
    def __init__(self, broker: FakeBroker) -> None:
        super().__init__("fake:9092")
        self.broker = broker

    def admin(self) -> Any:
        broker = self.broker

        class Admin:
            async def start(self) -> None: ...
            async def close(self) -> None: ...
            async def describe_topics(self, _: Any) -> list[dict[str, Any]]:
                partitions = [{"partition": tp.partition} for tp in broker.log]
                return [{"topic": broker.topic, "partitions": partitions}] if partitions else []

        return Admin()

    def consumer(self) -> Any:
        broker, positions = self.broker, {}

        class Consumer:
            async def start(self) -> None: ...
            async def stop(self) -> None: ...
            def assign(self, tps: list[TopicPartition]) -> None: ...
            async def committed(self, tp: TopicPartition) -> int | None:
                return broker.committed.get(tp)
            async def seek_to_beginning(self, *tps: TopicPartition) -> None:
                positions.update(dict.fromkeys(tps, 0))
            async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
                return {tp: len(broker.log[tp]) for tp in tps}
            async def position(self, tp: TopicPartition) -> int:
                return positions.setdefault(tp, broker.committed.get(tp, 0))
            async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[Any, list[Any]]:
                batch = {tp: broker.log[tp][positions[tp]:positions[tp] + 2] for tp in tps}
                for tp, records in batch.items():
                    positions[tp] += len(records)
                return batch
            async def commit(self, offsets: dict[TopicPartition, int]) -> None:
                broker.committed.update(offsets)

        return Consumer()

    def producer(self) -> Any:
        broker = self.broker

        class Producer:
            async def start(self) -> None: ...
            async def stop(self) -> None: ...
            async def send_and_wait(self, topic: str, *, value: bytes, key: bytes | None,
                                    headers: list[tuple[str, bytes]]) -> None:
                broker.sent.append((topic, key, headers))
                broker.append(0, key, topic)  # it fails again: back on the dead-letter topic

        return Producer()


async def test_replay_republishes_without_dlq_headers_commits_each_and_stops_at_the_end() -> None:
    broker = FakeBroker("inventory.devices", {0: 3, 1: 2})
    letters = await dlq.dead_letters(FakeKafka(broker), "inventory.devices", "reporting", replay=True, limit=4)
    assert letters is not None and len(letters) == 4 and all(d.replayed for d in letters)
    assert {topic for topic, _, _ in broker.sent} == {"inventory.devices"}
    assert all(headers == [("traceparent", b"00-1"), ("dlq-replay-group", b"reporting")]
               for _, _, headers in broker.sent)  # replayed to the group that failed, and only to it
    assert sum(broker.committed.values()) == 4

    rest = await dlq.dead_letters(FakeKafka(broker), "inventory.devices", "reporting", replay=True)
    assert rest is not None and len(rest) == 5  # the one left, and the four that came back
    listed = await dlq.dead_letters(FakeKafka(broker), "inventory.devices", "reporting", idle_s=0.5)
    assert listed is not None and len(listed) == 14 and sum(d.replayed for d in listed) == 9


async def test_no_dead_letter_topic_means_none() -> None:
    assert await dlq.dead_letters(FakeKafka(FakeBroker("t", {})), "t", "reporting") is None


def test_dead_letters_command_lists_them(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker("inventory.devices", {0: 1, 2: 1})
    monkeypatch.setattr(dlq, "Kafka", lambda bootstrap: FakeKafka(broker))
    result = runner.invoke(app, ["dead-letters", "--topic", "inventory.devices", "--group", "reporting"])
    assert result.exit_code == 0, result.output
    assert "MPS-D-000000" in result.stdout and "reporting" in result.stdout
    assert "found 2 dead letter(s) on inventory.devices.reporting.dead-letter" in result.stdout


# ------------------------------------------------------------------ dead letters (real Kafka)


@pytest.mark.integration
def test_dead_letters_against_a_real_broker(kafka_bootstrap: str) -> None:
    bootstrap = kafka_bootstrap
    topic = f"cli-test-{uuid.uuid4().hex[:8]}"
    asyncio.run(_dead_letter_one(bootstrap, topic))
    listed = runner.invoke(app, ["dead-letters", "--topic", topic, "--group", "g", "--bootstrap", bootstrap])
    assert listed.exit_code == 0, listed.output
    assert "found 1 dead letter(s)" in listed.stdout
    replayed = runner.invoke(app, ["dead-letters", "--topic", topic, "--group", "g", "--bootstrap", bootstrap,
                                   "--replay"])
    assert "replayed 1 dead letter(s)" in replayed.stdout, replayed.output
    again = runner.invoke(app, ["dead-letters", "--topic", topic, "--group", "g", "--bootstrap", bootstrap,
                                "--replay"])
    assert "replayed 0 dead letter(s)" in again.stdout, again.output
    assert asyncio.run(_read_one(bootstrap, topic)) == (b"K-1", [("traceparent", b"00-1"),
                                                                  ("dlq-replay-group", b"g")])


async def _dead_letter_one(bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(dlq.dead_letter_topic(topic, "g"), b"{}", key=b"K-1", headers=[
            ("traceparent", b"00-1"), ("dlq-error", b"ValueError: no"),
            ("dlq-original-topic", topic.encode()), ("dlq-consumer-group", b"g")])
    finally:
        await producer.stop()


async def _read_one(bootstrap: str, topic: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    from aiokafka import AIOKafkaConsumer
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        return record.key, list(record.headers)
    finally:
        await consumer.stop()
