"""``python -m mdgw.top`` (``make top``): a live full-screen view of the running gateway.

One row per book (state, age of the last frame, frames/s, u, best bid/ask and spread,
recv->pub p50/p99, resyncs) under a header with the ingestors' connections and totals,
refreshed every second. It reads book_builder's and the ingestors' /health and /metrics
(the [metrics] ports of the config) and the bbo messages of the pub socket. Ctrl-C
quits.

Exit status: 0; 1 with --once when book_builder did not answer; 64 for bad options; 78 for
a bad config.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Final, NoReturn

from rich.console import Console
from rich.live import Live

from mdgw.runtime.curve import client_keys_or_exit
from mdgw.runtime.settings import EX_CONFIG, Settings, settings_or_exit
from mdgw.top.render import render, render_text
from mdgw.top.source import TopSource

EX_USAGE: Final = 64


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m mdgw.top", description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", metavar="PATH", help="config file (default: $MDGW_CONFIG)")
    parser.add_argument(
        "--builder", metavar="URL", help="book_builder's endpoint (default: from [metrics])"
    )
    parser.add_argument(
        "--ingestor",
        action="append",
        default=[],
        metavar="URL",
        help="an ingestor's endpoint (repeatable; default: metrics.ingestor's port)",
    )
    parser.add_argument(
        "--no-pub", action="store_true", help="do not read the pub socket (no bid/ask, latency)"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument(
        "--once", action="store_true", help="print one frame as text (after one interval) and exit"
    )
    parser.add_argument("--width", type=int, default=None, help="columns for --once")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    return args


def _url(settings: Settings, port: int) -> str:
    host = settings.metrics.host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_or_exit(args.config)
    builder = args.builder
    if builder is None:
        if settings.metrics.book_builder == 0:
            print(
                "config error: metrics.book_builder: is 0 (off), so book_builder serves no "
                "/health to read; give --builder URL",
                file=sys.stderr,
            )
            return EX_CONFIG
        builder = _url(settings, settings.metrics.book_builder)
    ingestors = args.ingestor or (
        [_url(settings, settings.metrics.ingestor)] if settings.metrics.ingestor else []
    )
    curve = None if args.no_pub else client_keys_or_exit(settings, (settings.zmq.pub,))
    source = TopSource(builder, ingestors, None if args.no_pub else settings.zmq.pub, curve)
    try:
        if args.once:
            source.poll()
            time.sleep(args.interval)
            view = source.poll()
            width = args.width or Console().width
            sys.stdout.write(render_text(view, width))
            return 1 if view.builder_status == "unreachable" else 0
        with Live(render(source.poll()), screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(source.poll()), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        source.close()


if __name__ == "__main__":
    sys.exit(main())
