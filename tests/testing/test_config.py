"""mdgw.testing.config: the generated configs are ones the services accept as written."""

from __future__ import annotations

from pathlib import Path

from mdgw.runtime.settings import load_settings
from mdgw.testing.config import MIXED_STREAMS, Stream, config_text, gateway_config


def test_config_text_is_a_valid_gateway_config_with_every_stream(tmp_path: Path) -> None:
    streams = [
        *MIXED_STREAMS,
        Stream("linear", "SOLUSDT", 50, trades=False),
        Stream("linear", "XRPUSDT", 50, trades=False),
    ]
    path = tmp_path / "gateway.toml"
    path.write_text(
        config_text(
            streams,
            {
                "bybit": {"ws_url": "ws://127.0.0.1:9/v5/public", "ping_interval": 1},
                "zmq": {"raw": f"ipc://{tmp_path}/raw.sock", "pub": f"ipc://{tmp_path}/p"},
                "log": {"format": "json", "stats_interval": 1.5},
            },
        )
    )
    settings = load_settings(path, env={})
    got = {
        (s.category, symbol, s.depth, s.trades)
        for s in settings.bybit.streams
        for symbol in s.symbols
    }
    assert got == {(s.category, s.symbol, s.depth, s.trades) for s in streams}
    assert settings.bybit.ping_interval == 1
    assert settings.zmq.pub == f"ipc://{tmp_path}/p"
    assert settings.log.stats_interval == 1.5
    # Consecutive streams of one category, depth and trades flag share one table.
    assert len(settings.bybit.streams) == len(streams) - 1


def test_gateway_config_is_valid(tmp_path: Path) -> None:
    path = gateway_config(
        tmp_path / "bench.toml",
        raw=f"ipc://{tmp_path}/raw.sock",
        control=f"ipc://{tmp_path}/control.sock",
        pub="tcp://127.0.0.1:7100",
        snapshot="tcp://127.0.0.1:7101",
        symbols=["S0000USDT", "S0001USDT"],
        trades=True,
    )
    settings = load_settings(path, env={})
    assert [(s.category, s.symbols, s.depth, s.trades) for s in settings.bybit.streams] == [
        ("linear", ["S0000USDT", "S0001USDT"], 50, True)
    ]
    assert settings.ingestor.id == "bench-ingestor"
