"""The simulator's shell: HTTP endpoints on the websocket port, the CLI, the real entry point."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mdgw.simulator.params import SimulatorParams, params_from_settings
from mdgw.simulator.server import SimulatorServer
from mdgw.testing.ws_receive import recv_frame, recv_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    params = SimulatorParams(
        streams={"spot": ("BTCUSDT",), "linear": ("BTCUSDT", "ETHUSDT"), "inverse": ("BTCUSD",)},
        port=0,
        levels=1000,
        stats_interval=3600.0,
    )
    async with SimulatorServer(params) as server:
        yield server


async def http(method: str, url: str) -> tuple[int, Any]:
    """(status, decoded JSON or text body) of one HTTP request, off the event loop."""

    def call() -> tuple[int, Any]:
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                status, body = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    return await asyncio.to_thread(call)


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdgw.simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- REST -----------------------------------------------------------------------------------


async def test_rest_orderbook_is_shaped_like_bybits(sim: SimulatorServer) -> None:
    status, body = await http(
        "GET", f"{sim.http_url}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50"
    )
    assert status == 200
    assert list(body) == ["retCode", "retMsg", "result", "retExtInfo", "time"]
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {})
    result = body["result"]
    assert list(result) == ["s", "b", "a", "ts", "u", "seq", "cts"]
    assert result["s"] == "BTCUSDT" and len(result["b"]) == len(result["a"]) == 50
    # The book of the 1000-level stream at its u, which the truth knows too.
    truth = sim.market.truth("linear", "BTCUSDT", 1000, result["u"])
    assert result["b"] == [list(level) for level in truth.bids[:50]]
    assert result["a"] == [list(level) for level in truth.asks[:50]]
    # Default limits: 1 on spot, 25 on derivatives.
    _, spot = await http("GET", f"{sim.http_url}/v5/market/orderbook?category=spot&symbol=BTCUSDT")
    _, inverse = await http(
        "GET", f"{sim.http_url}/v5/market/orderbook?category=inverse&symbol=BTCUSD"
    )
    assert len(spot["result"]["b"]) == 1 and len(inverse["result"]["a"]) == 25


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("category=spread&symbol=BTCUSDT", "Illegal category"),
        ("symbol=BTCUSDT", "Illegal category"),
        ("category=linear", "Param validation for 'symbol' failed on the 'required' tag"),
        ("category=linear&symbol=btcusdt", "params error: Symbol Is Invalid"),
        ("category=inverse&symbol=BTCUSDT", "params error: Symbol Is Invalid"),
        ("category=linear&symbol=BTCUSDT&limit=0", "Param validation for 'limit' failed"),
        ("category=linear&symbol=BTCUSDT&limit=1001", "Param validation for 'limit' failed"),
        ("category=linear&symbol=BTCUSDT&limit=x", "Param validation for 'limit' failed"),
    ],
)
async def test_rest_errors_are_bybit_shaped(sim: SimulatorServer, query: str, message: str) -> None:
    status, body = await http("GET", f"{sim.http_url}/v5/market/orderbook?{query}")
    assert status == 200  # Bybit reports parameter errors in retCode, not the HTTP status
    assert body["retCode"] == 10001 and body["retMsg"].startswith(message)
    assert (body["result"], body["retExtInfo"]) == ({}, {})
    assert isinstance(body["time"], int)


async def test_unknown_paths_and_categories_are_404(sim: SimulatorServer) -> None:
    assert (await http("GET", f"{sim.http_url}/nothing/here"))[0] == 404
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{sim.port}/v5/public/spread"):
            pass
    assert refused.value.response.status_code == 404
    assert (await http("GET", f"{sim.http_url}/sim/fault?kind=drop"))[0] == 405


# --- control endpoints ---------------------------------------------------------------------


async def test_status_and_truth_endpoints(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        await ws.send('{"op":"subscribe","args":["orderbook.200.ETHUSDT"]}')
        snapshot = await recv_until(ws, lambda f: f.get("type") == "snapshot")
        status, body = await http("GET", f"{sim.http_url}/sim/status")
        assert status == 200
        (connection,) = body["connections"]
        assert connection["category"] == "linear"
        assert connection["topics"] == ["orderbook.200.ETHUSDT"]
        assert "linear/ETHUSDT" in body["symbols"]
        u = snapshot["data"]["u"]
        url = f"{sim.http_url}/sim/truth?category=linear&symbol=ETHUSDT&depth=200&u={u}"
        status, truth = await http("GET", url)
        assert status == 200 and truth["u"] == u
        assert truth["b"] == snapshot["data"]["b"] and truth["a"] == snapshot["data"]["a"]
    missing = f"{sim.http_url}/sim/truth?category=linear&symbol=ETHUSDT&depth=200&u=1"
    assert (await http("GET", missing))[0] == 404
    bad = f"{sim.http_url}/sim/truth?category=linear&symbol=ETHUSDT&depth=500"
    assert (await http("GET", bad))[0] == 400


async def test_faults_over_http(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        await ws.send('{"op":"ping"}')
        conn_id = (await recv_frame(ws))["conn_id"]
        status, body = await http("POST", f"{sim.http_url}/sim/fault?kind=mute_pongs&seconds=30")
        assert (status, body) == (200, {"ok": True, "kind": "mute_pongs", "hit": 1})
        status, body = await http("POST", f"{sim.http_url}/sim/fault?kind=explode")
        assert status == 400 and body["ok"] is False and "kind must be one of" in body["error"]
        url = f"{sim.http_url}/sim/fault?kind=drop&category=linear&conn_id={conn_id}"
        assert (await http("POST", url))[1]["hit"] == 1
        with pytest.raises(ConnectionClosed):
            await recv_until(ws, lambda f: False)


# --- the command line -----------------------------------------------------------------------


async def test_cli_fault_and_status_talk_to_a_running_simulator(sim: SimulatorServer) -> None:
    async with connect(sim.ws_url("linear")) as ws:
        await ws.send('{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}')
        await recv_until(ws, lambda f: "success" in f)
        code, out, _ = await run_cli("status", "--url", sim.http_url)
        assert code == 0 and json.loads(out)["connections"][0]["category"] == "linear"
        code, out, _ = await run_cli("fault", "drop", "--category", "linear", "--url", sim.http_url)
        assert code == 0 and json.loads(out) == {"ok": True, "kind": "drop", "hit": 1}
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(ws, lambda f: False)
        assert closed.value.rcvd is None
    code, _, err = await run_cli("fault", "silence", "--url", sim.http_url)
    assert code == 2 and "needs seconds" in err
    code, out, _ = await run_cli(
        "truth",
        "--category",
        "linear",
        "--symbol",
        "BTCUSDT",
        "--depth",
        "1",
        "--url",
        sim.http_url,
    )
    assert code == 0 and len(json.loads(out)["b"]) == 1


async def test_cli_reports_an_unreachable_simulator() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = await run_cli("status", "--url", f"http://127.0.0.1:{port}")
    assert code == 1 and "cannot reach the simulator" in err


async def test_python_m_mdgw_simulator_serves_the_config_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "sim.toml"
    config.write_text(
        "[[bybit.streams]]\n"
        'category = "spot"\nsymbols = ["BTCUSDT"]\ndepth = 1\n'
        "[[bybit.streams]]\n"
        'category = "inverse"\nsymbols = ["BTCUSD", "BTCUSDH26"]\ndepth = 200\n'
        '[log]\nformat = "json"\n'
        f"[simulator]\nport = {port}\nrate = 5\nlevels = 1000\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdgw.simulator",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    ws = await connect(f"ws://127.0.0.1:{port}/v5/public/inverse")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        async with ws:
            # Every depth of a configured symbol is served, whatever the stream's depth.
            await ws.send('{"op":"subscribe","args":["orderbook.1000.BTCUSDH26"]}')
            snapshot = await recv_until(ws, lambda f: f.get("type") == "snapshot")
            assert len(snapshot["data"]["b"]) == 1000
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await recv_until(ws, lambda f: False)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        async with asyncio.timeout(10):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    events = [orjson.loads(line)["event"] for line in out.splitlines() if line.startswith(b"{")]
    assert "simulator_started" in events and "simulator_stopped" in events


def test_params_from_the_gateway_config() -> None:
    from mdgw.runtime.settings import load_settings

    settings = load_settings(REPO / "config" / "demo.toml", env={})
    params = params_from_settings(settings)
    assert params.port == settings.simulator.port and params.seed == settings.simulator.seed
    assert params.streams["inverse"] == ("BTCUSD", "BTCUSDH26")
    assert params.streams["spot"] == ("BTCUSDT", "ETHUSDT")
    assert params.levels >= 1000
