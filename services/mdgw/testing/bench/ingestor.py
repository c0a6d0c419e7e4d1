"""The ingestor's receive rate (``make bench``) against a bare websockets client,
alternately, from one ws_blaster running flat out."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mdgw.testing.bench import frames
from mdgw.testing.bench.common import progress
from mdgw.testing.bench.measure import Timing, counter_rate, fmt, in_window, window_rate
from mdgw.testing.bench.report import FigureResult, Row, judged
from mdgw.testing.bench.stage import Stage
from mdgw.testing.config import gateway_config
from mdgw.testing.processes import HarnessError, Helper, Service

__all__ = ["ingestor_rate"]

INGESTOR_TARGET = 0.80  # of the bare client's rate


def ingestor_rate(base: Path, t: Timing) -> FigureResult:
    """Bare websockets client vs ingestor, alternately, against one ws_blaster --max."""
    fig = FigureResult("ingestor")
    bare_rates: list[float] = []
    ingestor_rates: list[float] = []
    runs: list[dict[str, Any]] = []
    with Stage(base, "ingestor") as stage:
        ws = stage.add(
            Helper("ws_blaster", "ws_blaster", ["--symbols", str(t.symbols), "--max"], stage.dir)
        )
        ws.wait_ready()
        port = ws.ready.read_text()
        url = f"ws://127.0.0.1:{port}/v5/public/linear"
        for rep in range(t.ws_reps):
            client = stage.add(
                Helper(
                    f"ws_client-{rep}",
                    "ws_client",
                    [
                        "--url",
                        url,
                        "--symbols",
                        str(t.symbols),
                        "--warmup",
                        str(t.ws_warmup),
                        "--seconds",
                        str(t.ws_seconds),
                    ],
                    stage.dir,
                )
            )
            client.wait_exit(t.ws_warmup + t.ws_seconds + 60)
            got = client.result()
            bare = window_rate(got, "data")
            bare_rates.append(bare)
            start, end = got["window"]
            runs.append(
                {
                    "kind": "bare",
                    "rate": bare,
                    "cpu": stage.sampler.cpu_share(client.name, start, end),
                    "server_cpu": stage.sampler.cpu_share("ws_blaster", start, end),
                    "other_cpu": stage.sampler.other_share(start, end),
                }
            )
            progress(f"ingestor figure: bare websockets client {bare:,.0f} frames/s")

            ep = stage.endpoints(f"-{rep}")
            config = gateway_config(
                stage.dir / f"gateway-{rep}.toml",
                raw=ep.raw,
                control=ep.control,
                pub=ep.pub,
                snapshot=ep.snapshot,
                ws_url=f"ws://127.0.0.1:{port}/v5/public",
                symbols=[frames.symbol(i) for i in range(t.symbols)],
                stats_interval=0.5,
            )
            sink_args = ["--mode", "pull", "--endpoint", ep.raw]
            sink_args += ["--warmup", str(t.ws_warmup), "--seconds", str(t.ws_seconds)]
            sink = stage.add(Helper(f"sink-{rep}", "consumer", sink_args, stage.dir))
            sink.wait_ready()
            ingestor = stage.add(
                Service(
                    "ingestor", config, stage.dir / f"ingestor-{rep}.log", name=f"ingestor-{rep}"
                )
            )
            sink.wait_exit(t.ws_warmup + t.ws_seconds + 60)
            stage.sampler.sample()
            ingestor.stop()
            got = sink.result()
            if got["first"] is None:
                raise HarnessError("the ingestor forwarded nothing")
            start, end = got["window"]
            lines = in_window(ingestor.stats_lines(), start, end)
            own = counter_rate(lines, "frames_in")
            forwarded = window_rate(got, "data")
            rate = own if own is not None else forwarded
            ingestor_rates.append(rate)
            runs.append(
                {
                    "kind": "ingestor",
                    "rate": rate,
                    "rate_from": "ingestor stats" if own is not None else "sink",
                    "forwarded_at_sink": forwarded,
                    "dropped": lines[-1].get("dropped") if lines else None,
                    "sink_seq_holes": got["seq_holes"],
                    "cpu": stage.sampler.cpu_share(ingestor.name, start, end),
                    "sink_cpu": stage.sampler.cpu_share(sink.name, start, end),
                    "server_cpu": stage.sampler.cpu_share("ws_blaster", start, end),
                    "other_cpu": stage.sampler.other_share(start, end),
                }
            )
            progress(f"ingestor figure: ingestor {rate:,.0f} frames/s")
    bare, ing = statistics.median(bare_rates), statistics.median(ingestor_rates)
    fig.details = {"runs": runs, "symbols": t.symbols}
    fig.rows = [
        Row(
            "ingestor receive rate (frames/s, websockets server flat out)",
            fmt(ing),
            f">= {INGESTOR_TARGET:.0%} of bare {fmt(bare)}",
            ing / bare if bare else None,
            judged(bare > 0 and ing / bare >= INGESTOR_TARGET),
            ing,
            "frames/s",
        ),
        Row(
            "bare websockets client receive rate (frames/s)",
            fmt(bare),
            "-",
            None,
            "info",
            bare,
            "frames/s",
        ),
    ]
    return fig
