"""Tests of mdgw.runtime.settings: the config contract of docs/configuration.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mdgw.runtime.settings import (
    EX_CONFIG,
    ConfigError,
    Settings,
    StreamConfig,
    check_zmq_endpoint,
    env_var_for,
    load_settings,
    settings_or_exit,
)

REPO = Path(__file__).resolve().parents[2]
GATEWAY_TOML = REPO / "config" / "gateway.toml"
DEMO_TOML = REPO / "config" / "demo.toml"
DOCS = REPO / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def no_mdgw_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that read os.environ must not see the MDGW_* variables of whoever runs them."""
    for name in list(os.environ):
        if name.upper().startswith("MDGW_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env or {})
    return caught.value


# --- defaults, file, environment -------------------------------------------------------


def test_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})

    for name, field in Settings.model_fields.items():
        assert getattr(settings, name) == field.default
    assert settings.bybit.ws_url == "wss://stream.bybit.com/v5/public"
    assert settings.bybit.ping_interval == 20
    assert settings.bybit.silence_timeout == 30
    assert [(s.category, s.symbols, s.depth, s.trades) for s in settings.bybit.streams] == [
        ("linear", ["BTCUSDT", "ETHUSDT"], 50, True),
        ("inverse", ["BTCUSD"], 50, True),
    ]
    assert settings.zmq.raw == "ipc://var/run/raw.sock"
    assert settings.zmq.control == "ipc://var/run/control.sock"
    assert settings.zmq.pub == "tcp://127.0.0.1:7100"
    assert settings.zmq.snapshot == "tcp://127.0.0.1:7101"
    assert settings.books.publish_depth == 25
    assert (settings.log.level, settings.log.format, settings.log.stats_interval) == (
        "info",
        "auto",
        10,
    )
    assert (settings.simulator.host, settings.simulator.port) == ("127.0.0.1", 7200)
    assert (settings.simulator.seed, settings.simulator.rate) == (1, 20)


def test_file_overrides_default(tmp_path: Path) -> None:
    path = write(tmp_path, "[bybit]\nping_interval = 5\n[books]\npublish_depth = 10\n")

    settings = load_settings(path, {})

    assert settings.bybit.ping_interval == 5
    assert settings.books.publish_depth == 10
    assert settings.bybit.silence_timeout == 30  # untouched keys keep their default


def test_env_overrides_file_which_overrides_default(tmp_path: Path) -> None:
    path = write(tmp_path, "[bybit]\nping_interval = 5\nconnect_timeout = 4\n")

    settings = load_settings(path, {"MDGW_BYBIT__PING_INTERVAL": "7"})

    assert settings.bybit.ping_interval == 7  # env > file
    assert settings.bybit.connect_timeout == 4  # file > default
    assert settings.bybit.backoff_max == 60  # default


def test_env_sets_lists_as_json_and_replaces_the_file_list(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[bybit.streams]]\ncategory = "linear"\nsymbols = ["BTCUSDT"]\ndepth = 50\n',
    )
    streams = '[{"category": "spot", "symbols": ["ETHUSDT"], "depth": 1, "trades": false}]'

    settings = load_settings(path, {"MDGW_BYBIT__STREAMS": streams})

    assert settings.bybit.streams == [
        StreamConfig(category="spot", symbols=["ETHUSDT"], depth=1, trades=False)
    ]


def test_env_names_are_case_insensitive_and_level_values_too(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {"mdgw_log__level": "DEBUG"})

    assert settings.log.level == "debug"


def test_mdgw_config_selects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[simulator]\nport = 7300\n", name="other.toml")

    assert load_settings(env={"MDGW_CONFIG": str(path)}).simulator.port == 7300


def test_explicit_path_wins_over_mdgw_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[simulator]\nport = 7301\n", name="chosen.toml")
    other = write(tmp_path, "[simulator]\nport = 7302\n", name="other.toml")

    assert load_settings(chosen, {"MDGW_CONFIG": str(other)}).simulator.port == 7301


def test_default_file_is_config_gateway_toml_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "[simulator]\nseed = 42\n")
    monkeypatch.chdir(tmp_path)

    assert load_settings(env={}).simulator.seed == 42


def test_ws_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    path = write(tmp_path, '[bybit]\nws_url = "ws://127.0.0.1:7200/v5/public/"\n')

    assert load_settings(path, {}).bybit.ws_url == "ws://127.0.0.1:7200/v5/public"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})

    with pytest.raises(ValidationError):
        settings.bybit.ping_interval = 1


@pytest.mark.parametrize("config", [GATEWAY_TOML, DEMO_TOML], ids=lambda p: p.name)
def test_shipped_config_files_load_cleanly(config: Path) -> None:
    settings = load_settings(config, {})

    assert settings.bybit.streams


def test_gateway_toml_subscribes_the_agreed_streams() -> None:
    streams = load_settings(GATEWAY_TOML, {}).bybit.streams

    assert {(s.category, symbol) for s in streams for symbol in s.symbols} == {
        ("linear", "BTCUSDT"),
        ("linear", "ETHUSDT"),
        ("inverse", "BTCUSD"),
        ("spot", "BTCUSDT"),
    }
    assert all(s.trades for s in streams)


def test_demo_toml_points_at_the_simulator_and_shares_the_consumer_endpoints() -> None:
    demo = load_settings(DEMO_TOML, {})
    live = load_settings(GATEWAY_TOML, {})

    assert demo.bybit.ws_url == f"ws://127.0.0.1:{demo.simulator.port}/v5/public"
    assert {(s.category, tuple(s.symbols), s.depth) for s in demo.bybit.streams} == {
        ("linear", ("BTCUSDT", "ETHUSDT"), 50),
        ("inverse", ("BTCUSD", "BTCUSDH26"), 200),
        ("spot", ("BTCUSDT",), 50),
        ("spot", ("ETHUSDT",), 1),
    }
    # A consumer (the README's snippet) connects to the same endpoints in both.
    for socket in ("raw", "control", "pub", "snapshot"):
        assert getattr(demo.zmq, socket) == getattr(live.zmq, socket)
    assert (demo.zmq.pub, demo.zmq.snapshot) == ("tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101")
    assert (demo.simulator.seed, demo.simulator.rate) == (1, 20)


# --- errors ----------------------------------------------------------------------------

STREAM = '[[bybit.streams]]\ncategory = "{category}"\nsymbols = {symbols}\ndepth = {depth}\n'


def stream(category: str = "linear", symbols: str = '["BTCUSDT"]', depth: object = 50) -> str:
    return STREAM.format(category=category, symbols=symbols, depth=depth)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        pytest.param(
            stream(category="futures"),
            "bybit.streams.0.category",
            "must be 'spot', 'linear', 'inverse' or 'option' (got 'futures')",
            id="bad-category",
        ),
        pytest.param(
            stream(depth=500),
            "bybit.streams.0.depth",
            'depth must be one of 1, 50, 200, 1000, "full" (25 or 100 for category option) '
            "(got 500; Bybit removed 500 in 2025)",
            id="depth-500",
        ),
        pytest.param(
            stream(depth=25),
            "bybit.streams.0.depth",
            "depth must be one of 1, 50, 200, 1000, full for category linear (got 25)",
            id="depth-25",
        ),
        pytest.param(
            stream(category="option", symbols='["BTC-27DEC26-100000-C"]', depth=50),
            "bybit.streams.0.depth",
            "depth must be one of 25, 100 for category option (got 50)",
            id="option-depth-50",
        ),
        pytest.param(
            stream(category="option", symbols='["BTC-27DEC26-100000-C"]', depth=1),
            "bybit.streams.0.depth",
            "depth must be one of 25, 100 for category option (got 1)",
            id="option-depth-1",
        ),
        pytest.param(
            stream(category="option", symbols='["BTC-27DEC26-100000-C"]', depth=100)
            + "rpi = true\n",
            "bybit.streams.0.rpi",
            "no RPI book for options",
            id="option-rpi",
        ),
        pytest.param(
            stream(depth='"full"') + "connections = 2\n",
            "bybit.streams.0.connections",
            'depth "full" takes connections = 1',
            id="full-on-two-connections",
        ),
        pytest.param(
            stream(depth='"full"') + "connections = 1\n",
            None,
            None,
            id="full-on-one-connection-is-fine",
        ),
        pytest.param(
            stream(category="option", symbols='["BTC-27DEC26-100000-C"]', depth=25),
            None,
            None,
            id="option-depth-25-is-fine",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT"]') + stream(symbols='["BTCUSDT"]', depth=1),
            None,
            None,
            id="depth-1-beside-a-deeper-depth-is-fine",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT"]', depth=1) + stream(symbols='["BTCUSDT"]', depth=1),
            "bybit.streams",
            "symbol BTCUSDT appears more than once in category linear (streams 0 and 1)",
            id="depth-1-twice",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT", "ethusdt"]'),
            "bybit.streams.0.symbols.1",
            "symbol 'ethusdt' must be upper-case as Bybit spells it: 'ETHUSDT'",
            id="lowercase-symbol",
        ),
        pytest.param(
            stream(symbols='["BTC/USDT"]'),
            "bybit.streams.0.symbols.0",
            "must match",
            id="bad-symbol",
        ),
        pytest.param(
            stream(symbols="[]"),
            "bybit.streams.0.symbols",
            "at least one symbol",
            id="no-symbols",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT"]') + stream(symbols='["ETHUSDT", "BTCUSDT"]'),
            "bybit.streams",
            "symbol BTCUSDT appears more than once in category linear (streams 0 and 1)",
            id="duplicate-symbol-per-category",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT", "BTCUSDT"]'),
            "bybit.streams",
            "symbol BTCUSDT appears more than once in category linear (stream 0)",
            id="duplicate-symbol-in-one-stream",
        ),
        pytest.param(
            stream(symbols='["BTCUSDT"]') + "trades = false\n" + stream(category="spot"),
            None,
            None,
            id="same-symbol-in-two-categories-is-fine",
        ),
        pytest.param(
            '[zmq]\npub = "tcp://127.0.0.1:70000"\n',
            "zmq.pub",
            "port must be a number from 1 to 65535 (got '70000')",
            id="bad-endpoint-port",
        ),
        pytest.param(
            '[zmq]\nraw = "udp://127.0.0.1:7000"\n',
            "zmq.raw",
            "transport 'udp' is not supported; use tcp://, ipc:// or inproc://",
            id="bad-endpoint-transport",
        ),
        pytest.param(
            '[zmq]\npub = "tcp://127.0.0.1:7101"\n',
            "zmq.snapshot",
            "snapshot and pub are both 'tcp://127.0.0.1:7101'",
            id="endpoint-used-twice",
        ),
        pytest.param(
            "[bybit]\nping_intervl = 5\n",
            "bybit.ping_intervl",
            "unknown key (did you mean 'ping_interval'?)",
            id="unknown-key",
        ),
        pytest.param(
            "[bybitt]\nping_interval = 5\n",
            "bybitt",
            "unknown key (did you mean 'bybit'?)",
            id="unknown-section",
        ),
        pytest.param(
            stream() + "depht = 50\n",
            "bybit.streams.0.depht",
            "unknown key",
            id="unknown-key-in-stream",
        ),
        pytest.param(
            '[bybit]\nping_interval = "fast"\n',
            "bybit.ping_interval",
            "must be a valid number, unable to parse string as a number (got 'fast')",
            id="bad-type",
        ),
        pytest.param(
            "bybit = 5\n",
            "bybit",
            "must be a table (got 5)",
            id="section-not-a-table",
        ),
        pytest.param(
            "[bybit]\nping_interval = 30\nsilence_timeout = 30\n",
            "bybit.silence_timeout",
            "silence_timeout must be greater than ping_interval (30)",
            id="silence-not-above-ping",
        ),
        pytest.param(
            "[bybit]\nping_interval = 40\n",
            "bybit.silence_timeout",
            "silence_timeout must be greater than ping_interval (40)",
            id="default-silence-below-file-ping",
        ),
        pytest.param(
            "[bybit]\nbackoff_initial = 5\nbackoff_max = 2\n",
            "bybit.backoff_max",
            "backoff_max must be at least backoff_initial (5)",
            id="backoff-max-below-initial",
        ),
        pytest.param(
            "[bybit]\nmax_new_connections_per_5min = 501\n",
            "bybit.max_new_connections_per_5min",
            "must be less than or equal to 500 (got 501)",
            id="over-bybit-connection-limit",
        ),
        pytest.param(
            '[bybit]\nws_url = "https://stream.bybit.com/v5/public"\n',
            "bybit.ws_url",
            "ws_url must start with ws:// or wss://",
            id="ws-url-scheme",
        ),
        pytest.param(
            '[log]\nlevel = "verbose"\n',
            "log.level",
            "must be 'debug', 'info', 'warning' or 'error' (got 'verbose')",
            id="bad-log-level",
        ),
        pytest.param(
            '[ingestor]\nid = "has space"\n',
            "ingestor.id",
            "id must be 1 to 64 characters",
            id="bad-ingestor-id",
        ),
        pytest.param(
            "[simulator]\nlevels = 999\n",
            "simulator.levels",
            "must be greater than or equal to 1000 (got 999)",
            id="simulator-levels",
        ),
        pytest.param(
            stream().replace("depth = 50\n", ""),
            "bybit.streams.0.depth",
            "required key is missing",
            id="missing-depth",
        ),
    ],
)
def test_validation_errors_name_the_dotted_key(
    tmp_path: Path, text: str, key: str | None, problem: str | None
) -> None:
    path = write(tmp_path, text)
    if key is None:
        load_settings(path, {})
        return

    error = config_error(path)

    assert error.key == key
    assert problem is not None and problem in error.problem
    assert str(error) == f"config error: {path}: {key}: {error.problem}"


def test_missing_file_named_by_mdgw_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_settings(env={"MDGW_CONFIG": str(missing)})

    assert caught.value.key == "MDGW_CONFIG"
    assert str(caught.value).startswith(f"config error: {missing}: MDGW_CONFIG: file not found")


def test_missing_default_file_is_an_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(
        ConfigError, match=re.escape("config/gateway.toml: MDGW_CONFIG: file not found")
    ):
        load_settings(env={})


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    assert config_error(tmp_path).problem == "not a regular file"


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[bybit]\nping_interval = 20\nws_url = "wss://x\n')

    error = config_error(path)

    assert error.key == "line 3, column 18"  # the end of the unterminated string
    assert error.problem.startswith("invalid TOML: ")


def test_error_from_env_names_the_variable(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, ""), {"MDGW_BYBIT__PING_INTERVAL": "-1"})

    assert error.key == "bybit.ping_interval"
    assert (
        error.problem == "must be greater than 0 (got '-1') (env MDGW_BYBIT__PING_INTERVAL is set)"
    )


def test_error_inside_env_list_names_the_list_variable(tmp_path: Path) -> None:
    streams = '[{"category": "linear", "symbols": ["BTCUSDT"], "depth": 500}]'

    error = config_error(write(tmp_path, ""), {"MDGW_BYBIT__STREAMS": streams})

    assert error.key == "bybit.streams.0.depth"
    assert "Bybit removed 500 in 2025" in error.problem
    assert "env MDGW_BYBIT__STREAMS is set" in error.problem


def test_unknown_key_from_env_is_an_error(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, ""), {"MDGW_BYBIT__PING": "5"})

    assert error.key == "bybit.ping"
    assert "unknown key" in error.problem
    assert "MDGW_BYBIT__PING" in error.problem


def test_env_json_that_does_not_parse_names_the_variable(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, ""), {"MDGW_BYBIT__STREAMS": "[{oops"})

    assert error.key == "bybit.streams"
    assert error.problem.startswith("env MDGW_BYBIT__STREAMS is not valid JSON")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("MDGW_BYBIT_PING_INTERVAL", "did you mean MDGW_BYBIT__PING_INTERVAL?"),
        (
            "MDGW_LOGGING__LEVEL",
            "sections are bybit, zmq, books, journal, log, ingestor, simulator",
        ),
    ],
)
def test_mdgw_variable_naming_no_section_is_an_error(tmp_path: Path, name: str, hint: str) -> None:
    error = config_error(write(tmp_path, ""), {name: "1"})

    assert error.key == name
    assert error.problem.startswith("unknown environment variable")
    assert hint in error.problem


def test_mdgw_config_and_unrelated_variables_are_not_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    load_settings(env={"MDGW_CONFIG": str(path), "HOME": "/root", "MDGWX": "1"})
    # MDGW_PURE selects the pure-Python core (mdgw.compiled), it is not a config key.
    load_settings(env={"MDGW_CONFIG": str(path), "MDGW_PURE": "1"})


def test_config_error_is_always_one_line() -> None:
    error = ConfigError("a.b", "first\nsecond", file="x.toml")

    assert str(error) == "config error: x.toml: a.b: first second"


# --- settings_or_exit ------------------------------------------------------------------


def test_settings_or_exit_prints_one_line_and_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, stream(depth=500))

    with pytest.raises(SystemExit) as caught:
        settings_or_exit(path)

    assert caught.value.code == EX_CONFIG == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"config error: {path}: bybit.streams.0.depth: ")


def test_settings_or_exit_returns_settings(tmp_path: Path) -> None:
    assert settings_or_exit(write(tmp_path, "")).books.publish_depth == 25


def test_real_process_exits_78_with_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, stream(depth=500))
    venv_python = REPO / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MDGW_")}
    env["MDGW_CONFIG"] = str(path)

    result = subprocess.run(
        [python, "-c", "from mdgw.runtime.settings import settings_or_exit; settings_or_exit()"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 78
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "bybit.streams.0.depth" in lines[0]
    assert "Bybit removed 500 in 2025" in lines[0]
    assert "Traceback" not in result.stderr


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "var"),
    [
        ("bybit.ping_interval", "MDGW_BYBIT__PING_INTERVAL"),
        ("bybit.max_new_connections_per_5min", "MDGW_BYBIT__MAX_NEW_CONNECTIONS_PER_5MIN"),
        ("bybit.streams", "MDGW_BYBIT__STREAMS"),
        ("bybit.streams.0.depth", "MDGW_BYBIT__STREAMS"),
        ("bybit.streams[].depth", "MDGW_BYBIT__STREAMS"),
        ("zmq", "MDGW_ZMQ"),
    ],
)
def test_env_var_for(key: str, var: str) -> None:
    assert env_var_for(key) == var


# A valid value other than the default for each string key; numbers get default + 1.
OTHER_VALUES = {
    "bybit.ws_url": "ws://127.0.0.1:9/v5/public",
    "bybit.rest_url": "http://127.0.0.1:9",
    "zmq.raw": "ipc://var/run/other-raw.sock",
    "zmq.control": "ipc://var/run/other-control.sock",
    "zmq.pub": "tcp://127.0.0.1:9000",
    "zmq.snapshot": "tcp://127.0.0.1:9001",
    "zmq.curve_server_secret": "keys/other-server.key_secret",
    "zmq.curve_server_public": "keys/other-server.key",
    "zmq.curve_client_secret": "keys/other-client.key_secret",
    "zmq.curve_authorized_dir": "keys/other-authorized",
    "journal.dir": "var/other-journal",
    "log.level": "debug",
    "log.format": "json",
    "ingestor.id": "ingestor-2",
    "simulator.host": "localhost",
    "metrics.host": "::1",
}


def test_env_var_for_names_the_variable_that_overrides_each_scalar_key(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    defaults = load_settings(path, {})
    for key, var in leaf_keys():
        if key.startswith("bybit.streams") or key == "printer.topics":
            continue  # lists, set as JSON: see test_env_sets_lists_as_json... and printer tests
        section, name = key.split(".")
        default = getattr(getattr(defaults, section), name)
        if isinstance(default, bool):
            other: object = not default
        else:
            other = OTHER_VALUES[key] if isinstance(default, str) else default + 1

        settings = load_settings(path, {var: str(other)})

        assert getattr(getattr(settings, section), name) == other, key


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:7100",
        "tcp://*:7100",
        "tcp://localhost:1",
        "tcp://eth0:65535",
        "tcp://gateway.example.com:7100",
        "tcp://[::1]:7100",
        "ipc://var/run/raw.sock",
        "ipc:///tmp/mdgw.sock",
        "ipc://@abstract",
        "inproc://raw",
    ],
)
def test_valid_zmq_endpoints(endpoint: str) -> None:
    assert check_zmq_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("127.0.0.1:7100", "expected transport://address"),
        ("tcp://127.0.0.1", "tcp endpoints are tcp://host:port"),
        ("tcp://:7100", "tcp endpoints are tcp://host:port"),
        ("tcp://127.0.0.1:0", "port must be a number from 1 to 65535 (got '0')"),
        ("tcp://127.0.0.1:http", "port must be a number"),
        ("tcp://300.1.1.1:7100", "'300.1.1.1' is not an IPv4 address"),
        ("tcp://::1:7100", "write an IPv6 host in brackets"),
        ("tcp://[::g]:7100", "is not an IPv6 address"),
        ("tcp://bad_host:7100", "is not a hostname, IP address, interface or *"),
        ("ipc://", "ipc endpoints need a path"),
        ("ipc://" + "x" * 108, "unix sockets allow at most 107"),
        ("inproc://", "inproc endpoints need a name"),
        ("pgm://eth0;239.1.1.1:5555", "transport 'pgm' is not supported"),
    ],
)
def test_invalid_zmq_endpoints(endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_zmq_endpoint(endpoint)


@given(st.text())
def test_zmq_endpoint_check_only_raises_value_error(endpoint: str) -> None:
    try:
        check_zmq_endpoint(endpoint)
    except ValueError:
        pass


@given(st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,20}", fullmatch=True))
def test_upper_case_symbols_are_accepted(symbol: str) -> None:
    assert StreamConfig(category="spot", symbols=[symbol], depth=1).symbols == [symbol]


@given(st.from_regex(r"[A-Z0-9]*[a-z][A-Za-z0-9]*", fullmatch=True))
def test_symbols_with_lower_case_letters_are_rejected(symbol: str) -> None:
    with pytest.raises(ValidationError, match="upper-case"):
        StreamConfig(category="spot", symbols=[symbol], depth=1)


# --- docs cannot drift -----------------------------------------------------------------


def model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def leaf_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[tuple[str, str]]:
    """Every key of the config as (dotted key, env var); list items as ``list[].key``."""
    keys: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        inner = model_of(field.annotation)
        if inner is None:
            keys.append((dotted, env_var_for(dotted)))
            continue
        if getattr(field.annotation, "__origin__", None) is list:
            keys.append((dotted, env_var_for(dotted)))
            dotted += "[]"
        keys.extend(leaf_keys(inner, dotted + "."))
    return keys


def test_leaf_keys_walk_every_section() -> None:
    keys = dict(leaf_keys())

    assert keys["bybit.ping_interval"] == "MDGW_BYBIT__PING_INTERVAL"
    assert keys["bybit.streams[].depth"] == "MDGW_BYBIT__STREAMS"
    assert keys["simulator.levels"] == "MDGW_SIMULATOR__LEVELS"
    assert len(keys) > 30


@pytest.mark.parametrize(("key", "var"), leaf_keys())
def test_every_key_is_documented_with_its_env_var(key: str, var: str) -> None:
    rows = [line for line in DOCS.read_text().splitlines() if f"`{key}`" in line]

    assert rows, f"docs/configuration.md does not document `{key}`"
    assert any(f"`{var}`" in row for row in rows), f"`{key}` row lacks `{var}`"


def test_docs_include_the_real_gateway_toml() -> None:
    docs = DOCS.read_text()
    blocks = re.findall(r"```toml\n(.*?)```", docs, flags=re.DOTALL)

    assert GATEWAY_TOML.read_text() in blocks


def test_printer_topics_are_topic_specs_from_the_file_or_the_env(tmp_path: Path) -> None:
    path = write(tmp_path, '[printer]\ntopics = ["bbo", "book.inverse.BTCUSD"]\njson = true\n')
    settings = load_settings(path, {})
    assert (settings.printer.topics, settings.printer.json) == (
        ["bbo", "book.inverse.BTCUSD"],
        True,
    )
    settings = load_settings(path, {"MDGW_PRINTER__TOPICS": '["trade.spot"]'})
    assert settings.printer.topics == ["trade.spot"]
    assert load_settings(write(tmp_path, ""), {}).printer.topics == []


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        ('["books"]', "printer.topics.0: bad topic spec 'books': unknown channel 'books'"),
        ('["bbo", "bbo.futures"]', "printer.topics.1: bad topic spec 'bbo.futures'"),
        ('"bbo"', "printer.topics"),
    ],
)
def test_a_bad_printer_topic_is_a_config_error(tmp_path: Path, topics: str, problem: str) -> None:
    error = config_error(write(tmp_path, f"[printer]\ntopics = {topics}\n"))
    assert problem in str(error)


def test_metrics_ports_come_from_the_env_like_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[metrics]\nbook_builder = 9110\n")
    settings = load_settings(path, {"MDGW_METRICS__BOOK_BUILDER": "9210"})
    assert settings.metrics.book_builder == 9210
    assert (settings.metrics.ingestor, settings.metrics.printer) == (9111, 0)
    assert settings.metrics.unhealthy_after == 10.0


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[metrics]\nbook_builder = 70000\n", "metrics.book_builder"),
        ("[metrics]\ningestor = -1\n", "metrics.ingestor"),
        ("[metrics]\nprinter = 65536\n", "metrics.printer"),
        ('[metrics]\nhost = "not a host!"\n', "metrics.host"),
        ("[metrics]\nunhealthy_after = 0\n", "metrics.unhealthy_after"),
    ],
)
def test_bad_metrics_keys_are_config_errors_naming_the_key(
    tmp_path: Path, body: str, key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, body), {})
    assert info.value.key == key


def test_depth_choices_are_bybits_depths() -> None:
    """The Depth Literal spells out bybit_spec.DEPTHS and OPTION_DEPTHS (a Literal cannot take
    a tuple), and "full"."""
    from typing import get_args

    from mdgw.core.bybit_spec import DEPTHS, OPTION_DEPTHS

    choices = get_args(StreamConfig.model_fields["depth"].annotation)
    assert choices == (*sorted((*DEPTHS, *OPTION_DEPTHS)), "full")
