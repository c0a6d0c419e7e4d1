"""Tests of mdgw.runtime.logging: what reaches the stream, line by line."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mdgw.runtime.logging import configure_logging, get_logger

REPO = Path(__file__).resolve().parents[2]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    websockets_level = logging.getLogger("websockets").level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(websockets_level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def assert_canonical(line: dict[str, Any], service: str) -> None:
    assert line["service"] == service
    assert isinstance(line["event"], str)
    assert line["level"] in ("debug", "info", "warning", "error", "critical")
    assert ISO_UTC.match(line["timestamp"]), line["timestamp"]


def test_structlog_lines_are_json_with_service_event_level_timestamp() -> None:
    out = io.StringIO()
    configure_logging("book_builder", "info", "json", stream=out)

    get_logger(category="linear").info("book_live", symbol="BTCUSDT", u=42)

    [line] = json_lines(out)
    assert_canonical(line, "book_builder")
    assert line["event"] == "book_live"
    assert line["level"] == "info"
    assert (line["category"], line["symbol"], line["u"]) == ("linear", "BTCUSDT", 42)


def test_contextvars_are_merged_into_every_line() -> None:
    out = io.StringIO()
    configure_logging("ingestor", "info", "json", stream=out)
    structlog.contextvars.bind_contextvars(conn_id=7)

    get_logger().info("connected")
    logging.getLogger("asyncio").warning("slow callback")

    assert [line["conn_id"] for line in json_lines(out)] == [7, 7]


def test_stdlib_loggers_come_through_as_json_too() -> None:
    out = io.StringIO()
    configure_logging("ingestor", "info", "json", stream=out)

    logging.getLogger("asyncio").error("Task was destroyed but it is pending: %s", "t-1")
    logging.getLogger().info("from the root logger")

    first, second = json_lines(out)
    assert_canonical(first, "ingestor")
    assert (first["event"], first["level"], first["logger"]) == (
        "Task was destroyed but it is pending: t-1",
        "error",
        "asyncio",
    )
    assert (second["event"], second["logger"]) == ("from the root logger", "root")


def test_level_filters_structlog_and_stdlib() -> None:
    out = io.StringIO()
    configure_logging("printer", "warning", "json", stream=out)

    log = get_logger()
    log.debug("no")
    log.info("no")
    log.warning("yes")
    logging.getLogger("other").info("no")
    logging.getLogger("other").error("yes too")

    assert [line["event"] for line in json_lines(out)] == ["yes", "yes too"]


def test_debug_level_lets_debug_through_but_not_websockets_chatter() -> None:
    out = io.StringIO()
    configure_logging("ingestor", "DEBUG", "json", stream=out)

    get_logger().debug("ours")
    logging.getLogger("websockets.client").debug('> TEXT \'{"op":"ping"}\' [14 bytes]')
    logging.getLogger("websockets.client").warning("connection closed abnormally")

    assert [line["event"] for line in json_lines(out)] == ["ours", "connection closed abnormally"]


def test_exceptions_are_one_json_field_on_one_line() -> None:
    out = io.StringIO()
    configure_logging("book_builder", "info", "json", stream=out)

    try:
        raise ValueError("bad frame")
    except ValueError:
        get_logger().exception("frame_rejected", topic="orderbook.50.BTCUSDT")
        logging.getLogger("asyncio").exception("callback failed")

    lines = json_lines(out)  # raises if any line is not a whole JSON object
    assert len(lines) == 2
    for line in lines:
        [exception] = line["exception"]
        assert (exception["exc_type"], exception["exc_value"]) == ("ValueError", "bad frame")
        assert exception["frames"]
        assert all("locals" not in frame for frame in exception["frames"])


def test_values_orjson_cannot_serialise_fall_back_to_repr() -> None:
    out = io.StringIO()
    configure_logging("printer", "info", "json", stream=out)

    get_logger().info("odd_values", path=Path("/x"), counts={1: 2})

    [line] = json_lines(out)
    assert line["path"] == "PosixPath('/x')"
    assert line["counts"] == {"1": 2}


def test_service_is_on_lines_logged_from_other_threads() -> None:
    out = io.StringIO()
    configure_logging("simulator", "info", "json", stream=out)

    def work() -> None:
        get_logger().info("from_thread")
        logging.getLogger("concurrent.futures").warning("from stdlib in a thread")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()

    assert [line["service"] for line in json_lines(out)] == ["simulator", "simulator"]


def test_auto_is_json_when_the_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("printer", "info", "auto", stream=out)

    get_logger().info("hello")

    assert json_lines(out)[0]["event"] == "hello"


@pytest.mark.parametrize(("fmt", "stream"), [("auto", TtyStringIO()), ("console", io.StringIO())])
def test_console_rendering_for_people(fmt: str, stream: io.StringIO) -> None:
    configure_logging("printer", "info", fmt, stream=stream)

    get_logger().info("hello_console", symbol="BTCUSDT")
    logging.getLogger("asyncio").warning("stdlib_console")

    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # colours on a terminal
    assert "hello_console" in text
    assert "symbol=BTCUSDT" in text
    assert "service=printer" in text
    assert "stdlib_console" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_configuring_again_replaces_the_previous_setup() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("printer", "info", "json", stream=first)
    configure_logging("printer", "info", "json", stream=second)

    logging.getLogger("asyncio").warning("once")
    get_logger().info("new logger")

    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once", "new logger"]


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "xml")])
def test_bad_level_or_format_is_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        configure_logging("printer", level, fmt, stream=io.StringIO())


def test_real_process_stdout_is_json_lines_in_order(tmp_path: Path) -> None:
    # A pipe has a binary buffer: structlog writes bytes there (BytesLoggerFactory) and the
    # stdlib handler must write to the same buffer, or lines could come out of order.
    script = tmp_path / "log_some.py"
    script.write_text(
        textwrap.dedent(
            """
            import logging
            from mdgw.runtime.logging import configure_logging, get_logger

            configure_logging("ingestor", "info")
            log = get_logger()
            for i in range(50):
                log.info("ours", i=i)
                logging.getLogger("asyncio").warning("theirs %d", i)
            try:
                1 / 0
            except ZeroDivisionError:
                log.exception("failed")
            """
        )
    )

    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )

    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(lines) == 101
    for line in lines:
        assert_canonical(line, "ingestor")
    events = [(line["event"], line.get("i")) for line in lines[:-1]]
    assert events == [e for i in range(50) for e in (("ours", i), (f"theirs {i}", None))]
    assert lines[-1]["exception"][0]["exc_type"] == "ZeroDivisionError"
    assert result.stderr == b""
