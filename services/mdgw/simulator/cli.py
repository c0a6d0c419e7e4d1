"""Command line of the simulator.

``python -m mdgw.simulator [serve]``
    Serve the symbols of the config's ``[[bybit.streams]]`` on ``[simulator] host:port``.
``python -m mdgw.simulator fault KIND [--category C] [--conn-id ID] [--topic T]
[--seconds S] [--size BYTES]``
    Switch a fault on in the running simulator (see :mod:`mdgw.simulator.faults`).
``python -m mdgw.simulator status``
    Print the running simulator's connections and subscriptions (JSON).
``python -m mdgw.simulator truth --category C --symbol S --depth D [--u U]``
    Print the true window of ``orderbook.D.S`` at u (default: its current u) as JSON.

The client commands find the simulator through the config (``[simulator] host/port``)
unless ``--url http://host:port`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from mdgw.runtime.lifecycle import Shutdown, run_service
from mdgw.runtime.logging import configure_logging
from mdgw.runtime.settings import settings_or_exit
from mdgw.simulator.faults import DEFAULT_OVERSIZED_BYTES, FaultError, FaultKind, FaultRequest
from mdgw.simulator.params import SimulatorParams, params_from_settings
from mdgw.simulator.server import SimulatorServer

__all__ = ["main", "serve"]

PROG = "python -m mdgw.simulator"


async def serve(params: SimulatorParams, shutdown: Shutdown) -> None:
    """Run a simulator until shutdown is requested."""
    async with SimulatorServer(params):
        await shutdown.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Bybit v5 public-stream simulator (see docs/simulator.md)."
    )
    parser.add_argument(
        "--config", help="config file (default: $MDGW_CONFIG or config/gateway.toml)"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the simulator (the default)")

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--url", help="the simulator, http://host:port (default: from config)")
        return sub

    fault = client("fault", "switch a fault on in the running simulator")
    fault.add_argument("kind", choices=[kind.value for kind in FaultKind])
    fault.add_argument("--category", choices=["spot", "linear", "inverse"])
    fault.add_argument("--conn-id", help="only this connection (conn_id of its acks)")
    fault.add_argument("--topic", help="e.g. orderbook.50.BTCUSDT")
    fault.add_argument("--seconds", type=float, default=0.0, help="silence, mute_pongs, refuse")
    fault.add_argument("--size", type=int, default=DEFAULT_OVERSIZED_BYTES, help="oversized")
    client("status", "show connections and subscriptions")
    truth = client("truth", "print the true book of a topic at a u")
    truth.add_argument("--category", required=True, choices=["spot", "linear", "inverse"])
    truth.add_argument("--symbol", required=True)
    truth.add_argument("--depth", required=True, type=int, choices=[1, 50, 200, 1000])
    truth.add_argument("--u", type=int)
    return parser


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    sim = settings_or_exit(args.config).simulator
    return f"http://{sim.host}:{sim.port}"


def _call(method: str, url: str) -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            body: Any = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace"), file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{PROG}: cannot reach the simulator at {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        settings = settings_or_exit(args.config)
        configure_logging("simulator", settings.log.level, settings.log.format)
        params = params_from_settings(settings)
        run_service(lambda shutdown: serve(params, shutdown), name="simulator")
    base = _base_url(args)
    if args.command == "fault":
        try:
            request = FaultRequest(
                FaultKind(args.kind),
                category=args.category,
                conn_id=args.conn_id,
                topic=args.topic,
                seconds=args.seconds,
                size=args.size,
            )
        except FaultError as exc:
            print(f"{PROG} fault: {exc}", file=sys.stderr)
            return 2
        return _call("POST", f"{base}/sim/fault?{urlencode(request.to_query())}")
    if args.command == "status":
        return _call("GET", f"{base}/sim/status")
    query = {"category": args.category, "symbol": args.symbol, "depth": args.depth}
    if args.u is not None:
        query["u"] = args.u
    return _call("GET", f"{base}/sim/truth?{urlencode(query)}")
