"""``python -m mdgw.printer [TOPIC ...]``: print what the gateway publishes, one line per message.

TOPIC is a topic spec: ``book.inverse.BTCUSD`` is that symbol only (never BTCUSDH26),
``book.inverse`` every inverse book, ``book`` every book; no TOPIC means everything.
Channels are book, bbo, trade and status; categories spot, linear and inverse.

At start the printer asks the snapshot service for the current book and bbo of each spec,
prints them, then prints updates newer than them. A hole in a topic's seq is reported on
stderr and the topic is asked for again. SIGINT/SIGTERM (Ctrl-C) exit 0.

Exit status: 0 on a signal or when stdout is closed (``| head``), 64 for a bad TOPIC or
option, 78 for a bad config file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Final, NoReturn

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.printer.service import Printer, PrinterOptions
from mdgw.runtime.curve import client_keys_or_exit
from mdgw.runtime.settings import settings_or_exit

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
        "topics", nargs="*", metavar="TOPIC", help="topic specs (default: everything)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line: the payload plus "topic"',
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


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; a second SIGINT raises KeyboardInterrupt."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _warn(message: str) -> None:
    print(f"printer: warning: {message}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    # The reader went away (| head). Point stdout at /dev/null so that the interpreter's
    # final flush does not raise BrokenPipeError again (Python docs, "Note on SIGPIPE").
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prefixes = subscriptions(args.topics)
    settings = settings_or_exit(args.config)
    options = PrinterOptions(
        pub=settings.zmq.pub,
        snapshot=None if args.no_snapshot else settings.zmq.snapshot,
        prefixes=prefixes,
        json=args.json,
        hwm=settings.zmq.hwm,
        snapshot_timeout=args.snapshot_timeout,
        curve=client_keys_or_exit(settings, (settings.zmq.pub, settings.zmq.snapshot)),
    )
    stop = threading.Event()
    printer = Printer(options, out=sys.stdout.buffer, warn=_warn, stop=stop)
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
    try:
        with stop_on_signals(stop):
            printer.run()
    except BrokenPipeError:
        _silence_stdout()
    except KeyboardInterrupt:
        pass
    finally:
        if metrics is not None:
            metrics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
