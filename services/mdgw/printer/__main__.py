"""``python -m mdgw.printer [TOPIC ...]``: print what the gateway publishes, one line per message.

TOPIC is a topic spec: ``book.inverse.BTCUSD`` is that symbol only (never BTCUSDH26),
``book.inverse`` every inverse book, ``book`` every book. Channels are book, bbo, trade,
status and rpi; categories spot, linear, inverse and option.

Without TOPIC, the topics are the config's ``printer.topics`` (default: none, which means
everything); ``--json`` or ``printer.json = true`` prints JSON lines. Under supervisord the
printer runs with no arguments, so the config decides.

At start the printer asks the snapshot service for the current book and bbo of each spec,
prints them, then prints updates newer than them. A hole in a topic's seq is reported on
stderr and the topic is asked for again. SIGINT/SIGTERM (Ctrl-C) exit 0.

Exit status: 0 on a signal or when stdout is closed (``| head``), 64 for a bad TOPIC or
option, 78 for a bad config file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.printer.service import Printer, PrinterOptions
from mdgw.runtime.curve import client_keys_or_exit
from mdgw.runtime.lifecycle import Shutdown, run_service
from mdgw.runtime.logging import configure_logging
from mdgw.runtime.settings import settings_or_exit
from mdgw.runtime.zmqsock import HWM_FLOOR

EX_USAGE: Final = 64  # sysexits.h: the command was used incorrectly
PROG: Final = "python -m mdgw.printer"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "topics",
        nargs="*",
        metavar="TOPIC",
        help="topic specs (default: printer.topics of the config; empty: everything)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line: the payload plus "topic" (default: printer.json)',
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="do not ask the snapshot service; print live updates only",
    )
    parser.add_argument(
        "--snapshot-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="wait this long for a snapshot reply, then go on with live updates (default 2)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="serve /metrics and /health on this port, over metrics.printer (default 0: off); "
        "auto: any free port (its number goes to stderr)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MDGW_CONFIG or config/gateway.toml)",
    )
    args = parser.parse_args(argv)
    if args.snapshot_timeout <= 0:
        parser.error("--snapshot-timeout must be positive")
    return args


def subscriptions(specs: Sequence[str]) -> tuple[bytes, ...]:
    """The ZeroMQ prefixes of the TOPIC arguments; exit 64 with a message on a bad one."""
    prefixes: list[bytes] = []
    for spec in specs or [""]:
        try:
            prefix = wire.subscription(spec)
        except WireError as exc:
            print(
                f"{PROG}: {exc.reason}; a TOPIC is channel[.category[.SYMBOL]], e.g. "
                "book, book.linear, book.inverse.BTCUSD",
                file=sys.stderr,
            )
            raise SystemExit(EX_USAGE) from None
        parts = spec.split(".")
        if len(parts) > 2 and parts[2] != parts[2].upper():
            _warn(f"{spec!r}: Bybit symbols are upper case; this subscription may get nothing")
        if prefix not in prefixes:
            prefixes.append(prefix)
    return tuple(prefixes)


def _warn(message: str) -> None:
    print(f"printer: warning: {message}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    # The reader went away (| head). Point stdout at /dev/null so that the interpreter's
    # final flush does not raise BrokenPipeError again (Python docs, "Note on SIGPIPE").
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    cli_prefixes = subscriptions(args.topics) if args.topics else None
    settings = settings_or_exit(args.config)
    # The printer's stdout is its output: the lifecycle's own log lines go to stderr, and
    # only when something is wrong (a crash, a missed shutdown deadline).
    configure_logging("printer", "error", "console", stream=sys.stderr)
    options = PrinterOptions(
        pub=settings.zmq.pub,
        snapshot=None if args.no_snapshot else settings.zmq.snapshot,
        prefixes=cli_prefixes or subscriptions(settings.printer.topics),
        json=args.json or settings.printer.json,
        hwm=settings.zmq.hwm,
        snapshot_timeout=args.snapshot_timeout,
        curve=client_keys_or_exit(settings, (settings.zmq.pub, settings.zmq.snapshot)),
    )
    if options.hwm < HWM_FLOOR:  # its log is for errors: this goes with its other warnings
        _warn(
            f"zmq.hwm {options.hwm} is below {HWM_FLOOR} (zmq_hwm_below_floor): this "
            f"subscriber's queue holds less than one burst of book_builder's (up to "
            f"{HWM_FLOOR} messages at once); with book_builder's zmq.hwm as low, being a "
            "moment behind costs seq holes"
        )
    printer = Printer(options, out=sys.stdout.buffer, warn=_warn)
    metrics = None
    if args.metrics_port is not None or settings.metrics.printer:
        # Imported only when asked for: prometheus_client adds ~0.2 s to the printer's start,
        # and its endpoint is off by default.
        from mdgw.printer.metrics import PrinterMetrics  # noqa: PLC0415
        from mdgw.runtime.metrics import bind_or_exit  # noqa: PLC0415

        endpoint = bind_or_exit(settings, "printer", args.metrics_port)
        if endpoint is not None:
            metrics = PrinterMetrics(printer, endpoint, settings.metrics.unhealthy_after)
            metrics.start()
            _warn(f"metrics: {endpoint.url}/metrics and /health (port {endpoint.port})")

    async def serve(shutdown: Shutdown) -> None:
        try:
            await printer.run(shutdown)
        except BrokenPipeError:
            _silence_stdout()

    try:
        run_service(serve, name="printer", shutdown_timeout=2.0)
    finally:
        if metrics is not None:
            metrics.close()


if __name__ == "__main__":
    main()
