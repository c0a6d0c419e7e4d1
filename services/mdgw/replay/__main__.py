"""``python -m mdgw.replay``: feed a book_builder journal through the same hub again.

    python -m mdgw.replay [--config PATH] [--speed X|max] [--from ISO] [--to ISO]
                          [--topics SPEC ...] (--pub ENDPOINT | --out FILE) JOURNAL...
    python -m mdgw.replay --export raw --out FILE.gz [--from ISO] [--to ISO] JOURNAL...

JOURNAL is a journal directory or segment files (``*.mdj``). The replayed ``book``,
``bbo`` and ``trade`` messages equal the live ones field for field except ``pub_ns``;
``status`` messages equal them in order and content except ``pub_ns``.

``--out FILE`` writes one JSON object per line, the payload plus ``"topic"`` (as
``mdgw.printer --json``; ``-`` is stdout). ``--pub ENDPOINT`` binds there and publishes
``[topic, payload]`` as the live builder does. ``--speed`` is a multiple of the recorded
pace (``1``: as recorded; default with ``--pub``) or ``max`` (default with ``--out``).
``--from``/``--to`` (ISO 8601; UTC unless an offset is given) keep what the builder
published for inputs it took in within [from, to); the hub is still fed from the start
of the run, so ``seq`` numbers match. ``--topics`` takes the printer's topic specs
(``book``, ``book.linear``, ``trade.spot.BTCUSDT``).

``--export raw --out FILE.gz`` writes the Bybit frames as ``<ISO-8601 receive time>
<frame>`` lines (gzip when FILE ends in ``.gz``).

Holes, missing segments and torn segments are reported on stderr, with a summary line at
the end; on a terminal a progress line shows records read, the recorded time reached and
the rate. Exit status: 0 done, 64 bad usage, 66 no journal there, 78 bad config.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final, NoReturn

import zmq

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.replay.reader import JournalReadError, find_segments
from mdgw.replay.service import (
    JsonLinesSink,
    Progress,
    PubSink,
    Replayer,
    Selection,
    Sink,
    Summary,
    export_raw,
    stderr_warn,
)
from mdgw.runtime.curve import server_keys_or_exit, start_authenticator
from mdgw.runtime.settings import Settings, check_zmq_endpoint, settings_or_exit
from mdgw.runtime.zmqsock import make_socket

EX_USAGE: Final = 64
EX_NOINPUT: Final = 66
PROG: Final = "python -m mdgw.replay"
# A subscriber that connects as the replay starts needs a moment to be heard (PUB/SUB
# delivers nothing to a subscription that has not arrived yet).
_SUBSCRIBER_WAIT_S: Final = 2.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _instant(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-02T14:03:04.123Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _speed(text: str) -> float:
    if text == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number or 'max'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number or 'max'")
    return value


def _is_spec(text: str) -> bool:
    try:
        wire.subscription(text)
    except WireError:
        return False
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("journal", nargs="*", metavar="JOURNAL", help="directory or segments")
    parser.add_argument("--config", metavar="PATH", help="config file (for --pub's socket)")
    parser.add_argument("--speed", type=_speed, metavar="X|max", help="pace (see above)")
    parser.add_argument("--from", dest="from_ns", type=_instant, metavar="ISO")
    parser.add_argument("--to", dest="to_ns", type=_instant, metavar="ISO")
    parser.add_argument("--topics", nargs="+", default=[], metavar="SPEC", help="topic specs")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--pub", metavar="ENDPOINT", help="bind and publish there")
    target.add_argument("--out", metavar="FILE", help="JSON lines to FILE ('-': stdout)")
    parser.add_argument("--export", choices=["raw"], help="write the raw frames, not replay")
    args = parser.parse_args(argv)
    # "--topics book var/journal": argparse gives the journal to --topics; take back the
    # trailing words that are no topic spec but an existing path.
    while args.topics and not _is_spec(args.topics[-1]) and Path(args.topics[-1]).exists():
        args.journal.insert(0, args.topics.pop())
    if not args.journal:
        parser.error("the following arguments are required: JOURNAL")
    if args.from_ns is not None and args.to_ns is not None and args.to_ns <= args.from_ns:
        parser.error("--to must be later than --from")
    if args.export is not None:
        if args.out is None:
            parser.error("--export raw needs --out FILE")
        if args.topics:
            parser.error("--topics does not apply to --export raw (it writes Bybit's frames)")
        if args.speed is not None:
            parser.error("--speed does not apply to --export raw")
    if args.pub is not None:
        try:
            check_zmq_endpoint(args.pub)
        except ValueError as exc:
            parser.error(f"--pub: {exc}")
    for spec in args.topics:
        try:
            wire.subscription(spec)
        except WireError as exc:
            parser.error(f"--topics: {exc.reason}")
    return args


def _prefixes(specs: Sequence[str]) -> list[bytes]:
    return [wire.subscription(spec) for spec in specs] or [b""]


Ctx = zmq.Context[zmq.Socket[bytes]]


def _open_pub(args: argparse.Namespace, settings: Settings) -> tuple[Ctx, zmq.Socket[bytes]]:
    curve = server_keys_or_exit(settings)
    ctx: Ctx = zmq.Context()
    if curve is not None and args.pub.startswith("tcp://"):
        start_authenticator(ctx, curve)
    sock = make_socket(
        ctx, zmq.XPUB, args.pub, bind=True, hwm=settings.zmq.hwm, curve=curve, linger_ms=5000
    )
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    # Wait (briefly) for a first subscriber, so a consumer started with the replay sees it all.
    if sock.poll(int(_SUBSCRIBER_WAIT_S * 1000)):
        sock.recv()
    return ctx, sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        segments, broken = find_segments(args.journal)
    except JournalReadError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EX_NOINPUT
    for tear in broken:
        stderr_warn(f"{tear.path.name}: {tear.reason}; skipped")
    if not segments:
        print(f"{PROG}: no journal segments (*.mdj) in {' '.join(args.journal)}", file=sys.stderr)
        return EX_NOINPUT
    progress = Progress(sys.stderr)
    summary: Summary
    if args.export is not None:
        selection = Selection(args.from_ns, args.to_ns, None)
        summary = export_raw(
            segments, Path(args.out), selection, warn=stderr_warn, progress=progress
        )
        summary.tears[:0] = broken
        print(summary.line().replace("messages out", "frames exported"), file=sys.stderr)
        return 0
    settings = settings_or_exit(args.config) if args.config or args.pub else None
    prefixes = _prefixes(args.topics)
    ctx = None
    out: IO[bytes] | None = None
    sink: Sink
    if args.pub is not None:
        assert settings is not None
        ctx, sock = _open_pub(args, settings)
        sink = PubSink(sock, prefixes)
        speed = 1.0 if args.speed is None else args.speed
    else:
        # Not a with-block (SIM115): stdout must stay open; a file is closed in the finally below.
        out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
        sink = JsonLinesSink(out, prefixes)
        speed = math.inf if args.speed is None else args.speed
    try:
        replayer = Replayer(
            sink,
            Selection(args.from_ns, args.to_ns, None if speed == math.inf else speed),
            warn=stderr_warn,
            progress=progress,
        )
        summary = replayer.run(segments)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
        if ctx is not None:
            ctx.destroy(linger=5000)
    summary.tears[:0] = broken
    if summary.internal_errors:
        stderr_warn(f"{summary.internal_errors} inputs made the hub raise (as they did live)")
    print(summary.line(), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
