"""``python -m mdgw.ingestor``: serve Bybit streams into the raw socket.

With no arguments it serves every stream of the config. Options pick a subset, to shard
the streams over several ingestor processes; each needs its own ``--id``.

Exit status: 0 after SIGTERM/SIGINT, 64 for bad options, 78 for a bad config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

from pydantic import ValidationError

from mdgw.core.bybit_spec import CATEGORIES
from mdgw.core.connection_plan import Selection, SelectionError
from mdgw.ingestor.metrics import IngestorMetrics
from mdgw.ingestor.service import Ingestor
from mdgw.runtime.lifecycle import run_service
from mdgw.runtime.logging import configure_logging
from mdgw.runtime.metrics import bind_or_exit
from mdgw.runtime.settings import IngestorConfig, settings_or_exit
from mdgw.runtime.zmqsock import warn_if_hwm_below_floor

EX_USAGE: Final = 64  # sysexits.h: command line usage error
SHUTDOWN_TIMEOUT: Final = 3.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mdgw.ingestor",
        description="Bybit v5 public websockets -> raw envelopes on the ZeroMQ raw socket.",
        epilog="Without options, every stream in the config is served. "
        "Exit status: 64 for bad options, 78 for a bad config.",
    )
    parser.add_argument(
        "--category",
        action="append",
        choices=CATEGORIES,
        default=[],
        help="serve only this category (repeatable)",
    )
    parser.add_argument(
        "--symbols",
        action="append",
        default=[],
        metavar="A,B",
        help="serve only these configured symbols (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--id", metavar="NAME", help="ingestor id in the envelopes (default: ingestor.id)"
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="port of /metrics and /health, over metrics.ingestor (a second ingestor on the "
        "same host needs its own); 0: off, auto: any free port (logged in metrics_listening)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MDGW_CONFIG, else config/gateway.toml)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Selection]:
    parser = build_parser()
    args = parser.parse_args(argv)
    symbols: list[str] = []
    for chunk in args.symbols:
        for raw in chunk.split(","):
            symbol = raw.strip().upper()
            if not symbol:
                parser.error(f"--symbols {chunk!r}: empty symbol")
            if symbol not in symbols:
                symbols.append(symbol)
    if args.id is not None:
        try:
            IngestorConfig(id=args.id)
        except ValidationError as exc:
            parser.error(
                f"--id {args.id!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
            )
    categories = tuple(dict.fromkeys(args.category))
    return args, Selection(categories=categories, symbols=tuple(symbols))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args, selection = parse_args(argv)
    settings = settings_or_exit(args.config)
    configure_logging("ingestor", settings.log.level, settings.log.format)
    warn_if_hwm_below_floor(
        settings.zmq.hwm,
        "the raw socket holds fewer frames while book_builder is busy or briefly stalled; "
        "past that they are dropped (counted in dropped) and their books resync",
    )
    try:
        ingestor = Ingestor(settings, ingestor_id=args.id, selection=selection)
    except SelectionError as exc:
        build_parser().error(str(exc))
    # Bound now: a taken port is a configuration error (exit 78), like a bad key.
    endpoint = bind_or_exit(settings, "ingestor", args.metrics_port)
    if endpoint is not None:
        ingestor.metrics = IngestorMetrics(ingestor, endpoint)
    run_service(ingestor.run, name="ingestor", shutdown_timeout=SHUTDOWN_TIMEOUT)


if __name__ == "__main__":
    main()
