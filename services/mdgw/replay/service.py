"""Feeding a journal through a new :class:`~mdgw.core.hub.Hub`, and where its output goes.

:class:`Replayer` reads segments in time order. Each builder run (a *session* in the
segment headers) gets a hub of its own, built from the configuration its header recorded,
and every record is one call of the hub entry point it names (:data:`DISPATCH`), with the
``now`` the live hub was given. So the hub publishes what the live one published, field
for field, apart from ``pub_ns`` (this hub's clock).

What the journal cannot vouch for is said on stderr and not glossed over: a hole (inputs
the writer left out) or a missing segment make every book resync (``status: resyncing``,
reason ``journal hole``) until its next snapshot; a torn segment is reported with where it
stops; a session whose first segment is gone starts with books that wait for a snapshot.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import orjson
import zmq

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.core.hub import Hub
from mdgw.core.journal_format import InputKind, Record
from mdgw.core.render import render_json
from mdgw.replay.reader import Segment, SegmentReader, Tear

__all__ = [
    "DISPATCH",
    "JsonLinesSink",
    "Progress",
    "PubSink",
    "Replayer",
    "Selection",
    "Sink",
    "Summary",
    "export_raw",
    "iso_ns",
]

Warn = Callable[[str], None]


def _raw(hub: Hub, record: Record) -> int:
    now = record.now
    on_raw = hub.on_raw
    errors = 0
    for item in record.items:
        try:
            on_raw(item, now)
        except Exception:  # as live: a hub bug costs one message (the builder logs it)
            errors += 1
    return errors


def _tick(hub: Hub, record: Record) -> int:
    hub.tick(record.now)
    return 0


def _peer_disconnected(hub: Hub, record: Record) -> int:
    hub.on_peer_disconnected(record.now)
    return 0


def _control_subscriber(hub: Hub, record: Record) -> int:
    hub.on_control_subscriber(record.now)
    return 0


def _publish_due(hub: Hub, record: Record) -> int:
    hub.publish_due(record.now)
    return 0


# One entry per hub entry point the builder journals (book_builder/service.py): a new hub
# input is a new InputKind and one line here. Each returns the number of internal errors.
DISPATCH: dict[int, Callable[[Hub, Record], int]] = {
    InputKind.RAW: _raw,
    InputKind.TICK: _tick,
    InputKind.PEER_DISCONNECTED: _peer_disconnected,
    InputKind.CONTROL_SUBSCRIBER: _control_subscriber,
    InputKind.PUBLISH_DUE: _publish_due,
}


def iso_ns(ns: int) -> str:
    """``2026-12-02T14:15:30.123456Z``: wall-clock ns as ISO 8601, UTC, microseconds."""
    when = datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000 % 1_000_000:06d}Z"


class Sink(Protocol):
    def emit(self, outbox: list[tuple[bytes, bytes]]) -> int: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON object per line, the payload plus ``"topic"``: ``mdgw.printer --json``'s lines."""

    def __init__(self, out: IO[bytes], prefixes: Sequence[bytes]) -> None:
        self.out = out
        self.prefixes = tuple(prefixes)
        self.everything = b"" in self.prefixes
        self.lines: list[bytes] = []

    def emit(self, outbox: list[tuple[bytes, bytes]]) -> int:
        lines = self.lines
        n = 0
        for topic, payload in outbox:
            if self.everything or topic.startswith(self.prefixes):
                lines.append(render_json(topic, wire.decode_payload(payload)) + b"\n")
                n += 1
        if len(lines) >= 4096:
            self.flush()
        return n

    def flush(self) -> None:
        if self.lines:
            self.out.write(b"".join(self.lines))
            self.lines.clear()

    def close(self) -> None:
        self.flush()
        self.out.flush()


class PubSink:
    """``[topic, payload]`` on a bound socket, as the live builder publishes.

    An XPUB with XPUB_NODROP and blocking sends: a replay faster than its subscribers
    waits for them instead of dropping (the live PUB drops at its high-water mark).
    """

    def __init__(self, sock: zmq.Socket[bytes], prefixes: Sequence[bytes]) -> None:
        self.sock = sock
        self.prefixes = tuple(prefixes)
        self.everything = b"" in self.prefixes

    def emit(self, outbox: list[tuple[bytes, bytes]]) -> int:
        send = self.sock.send_multipart
        n = 0
        for topic, payload in outbox:
            if self.everything or topic.startswith(self.prefixes):
                send([topic, payload])
                n += 1
        return n

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Selection:
    from_ns: int | None = None  # records taken in at or after this wall-clock time...
    to_ns: int | None = None  # ...and before this one are published
    speed: float | None = None  # None: as fast as possible


@dataclass
class Summary:
    segments: int = 0
    sessions: int = 0
    records: int = 0
    envelopes: int = 0
    messages: int = 0
    internal_errors: int = 0
    holes: list[str] = field(default_factory=list)
    tears: list[Tear] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None
    seconds: float = 0.0

    def line(self) -> str:
        span = ""
        if self.first_ns is not None and self.last_ns is not None:
            span = f" recorded {iso_ns(self.first_ns)} .. {iso_ns(self.last_ns)};"
        return (
            f"replay: {self.records:,} records ({self.envelopes:,} envelopes) from "
            f"{self.segments} segment(s), {self.sessions} session(s);{span} "
            f"{self.messages:,} messages out in {self.seconds:.1f}s; "
            f"{len(self.holes)} hole(s), {len(self.tears)} tear(s)"
        )


class Progress:
    """A status line on a terminal (after the first 2 s), refreshed twice a second."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.next_at = self.started + 2.0
        self.shown = False

    def update(self, records: int, recorded_ns: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + 0.5
        rate = records / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{records:,} records read, recorded time {iso_ns(recorded_ns)}, "
            f"{rate:,.0f} records/s \x1b[K"
        )
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Replayer:
    """Feeds segments to hubs (one per session) and their output to a sink."""

    def __init__(
        self,
        sink: Sink,
        selection: Selection,
        *,
        warn: Warn,
        progress: Progress | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.sink = sink
        self.selection = selection
        self.warn = warn
        self.progress = progress
        self.clock_ns = clock_ns
        self.summary = Summary()
        self.hub: Hub | None = None
        self._session: str | None = None
        self._next_index = 0
        self._lost: str | None = None  # inputs are missing before the next record
        self._pace: tuple[float, int] | None = None  # (monotonic start, first record ns)

    def run(self, segments: Iterable[Segment]) -> Summary:
        started = time.monotonic()
        try:
            for segment in segments:
                if not self._segment(segment):
                    break
        finally:
            self.sink.close()
            if self.progress is not None:
                self.progress.done()
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _segment(self, segment: Segment) -> bool:
        """Feed one segment; False once past ``--to`` (nothing later is wanted)."""
        header = segment.header
        summary = self.summary
        summary.segments += 1
        name = segment.path.name
        if header.session != self._session:
            self._session = header.session
            self.hub = Hub(**header.hub, clock_ns=self.clock_ns)
            self._lost = None
            summary.sessions += 1
            if header.index != 0:
                self._note(
                    f"{name}: its session's first {header.index} segment(s) are not in the "
                    "journal (deleted by retention, or not given): books wait for their next "
                    "snapshot and seq numbers do not match the live ones"
                )
        elif header.index != self._next_index:
            missing = header.index - self._next_index
            self._hole(f"{name}: {missing} segment(s) of this session are missing before it")
        self._next_index = header.index + 1
        reader = SegmentReader(segment)
        keep_going = self._feed(reader)
        if reader.tear is not None:
            tear = reader.tear
            summary.tears.append(tear)
            where = f", last record at {iso_ns(tear.last_ns)}" if tear.last_ns else ""
            self.warn(
                f"{name}: torn at byte {tear.offset:,} after {tear.records:,} records"
                f"{where}: {tear.reason}; everything before it was replayed"
            )
            # The builder may have gone on in this session (corruption, not a kill): what
            # followed the tear is lost to this replay.
            self._lost = f"journal torn in {name}"
        return keep_going

    def _feed(self, reader: SegmentReader) -> bool:
        hub = self.hub
        assert hub is not None
        summary = self.summary
        from_ns, to_ns, speed = self.selection.from_ns, self.selection.to_ns, self.selection.speed
        sink, progress = self.sink, self.progress
        outbox = hub.outbox
        for record in reader:
            kind, wall_ns = record.kind, record.wall_ns
            if to_ns is not None and wall_ns >= to_ns:
                return False
            if kind == InputKind.END:
                continue
            if kind == InputKind.HOLE:
                self._hole(_describe_hole(reader.segment.path.name, record))
                continue
            entry = DISPATCH.get(kind)
            if entry is None:
                self._hole(
                    f"{reader.segment.path.name}: record of unknown kind {kind} skipped "
                    "(written by a newer mdgw?)"
                )
                continue
            if self._lost is not None:
                hub.on_inputs_lost(self._lost, record.now)
                self._lost = None
            summary.records += 1
            if kind == InputKind.RAW:
                summary.envelopes += len(record.items)
            summary.internal_errors += entry(hub, record)
            selected = from_ns is None or wall_ns >= from_ns
            if outbox:
                if selected:
                    if speed is not None:
                        self._wait(wall_ns, speed)
                    summary.messages += sink.emit(outbox)
                outbox.clear()
            hub.control.clear()
            hub.events.clear()
            hub.latencies.clear()
            if selected:
                if summary.first_ns is None:
                    summary.first_ns = wall_ns
                summary.last_ns = wall_ns
            if progress is not None:
                progress.update(summary.records, wall_ns)
        return True

    def _wait(self, wall_ns: int, speed: float) -> None:
        if self._pace is None:
            self._pace = (time.monotonic(), wall_ns)
            return
        start, first_ns = self._pace
        delay = start + (wall_ns - first_ns) / 1e9 / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _hole(self, text: str) -> None:
        self.summary.holes.append(text)
        self.warn(f"{text}; every book resyncs (status resyncing, reason 'journal hole')")
        self._lost = "journal hole"

    def _note(self, text: str) -> None:
        self.summary.notes.append(text)
        self.warn(text)


def _describe_hole(name: str, record: Record) -> str:
    try:
        info: dict[str, Any] = orjson.loads(record.items[0]) if record.items else {}
    except orjson.JSONDecodeError:
        info = {}
    span = ""
    if isinstance(info.get("from_ns"), int) and isinstance(info.get("to_ns"), int):
        span = f" from {iso_ns(info['from_ns'])} to {iso_ns(info['to_ns'])}"
    return (
        f"{name}: hole in the journal{span}: {info.get('records', '?')} inputs "
        f"({info.get('envelopes', '?')} envelopes) were not recorded (the disk was behind)"
    )


def export_raw(
    segments: Iterable[Segment],
    out_path: Path,
    selection: Selection,
    *,
    warn: Warn,
    progress: Progress | None = None,
) -> Summary:
    """Every Bybit frame as ``<ISO-8601 receive time> <frame>`` lines (gzip if ``.gz``).

    The time is the envelope's ``recv_ns``: when the ingestor received the frame from
    Bybit. Line breaks inside a frame (JSON whitespace) become spaces, so one line is one
    frame. Connection events and heartbeats are not Bybit frames and are left out.
    """
    summary = Summary()
    started = time.monotonic()
    data_kind = int(wire.EnvelopeKind.DATA)
    gz = out_path.suffix == ".gz"
    # SIM115: the with-block follows on the next line; gzip.open is typed as GzipFile.
    out: BinaryIO = gzip.open(out_path, "wb") if gz else out_path.open("wb")  # type: ignore[assignment]  # noqa: SIM115
    with out:
        lines: list[bytes] = []
        for segment in segments:
            summary.segments += 1
            reader = SegmentReader(segment)
            for record in reader:
                if selection.to_ns is not None and record.wall_ns >= selection.to_ns:
                    break
                if record.kind == InputKind.HOLE:
                    summary.holes.append(_describe_hole(segment.path.name, record))
                    warn(summary.holes[-1])
                if record.kind != InputKind.RAW:
                    continue
                summary.records += 1
                summary.envelopes += len(record.items)
                if selection.from_ns is not None and record.wall_ns < selection.from_ns:
                    continue
                for item in record.items:
                    try:
                        kind, _, _, _, _, recv_ns, frame = wire.decode_raw(item)
                    except WireError:
                        continue
                    if kind != data_kind:
                        continue
                    if b"\n" in frame or b"\r" in frame:
                        frame = frame.replace(b"\r", b" ").replace(b"\n", b" ")
                    lines.append(iso_ns(recv_ns).encode() + b" " + frame + b"\n")
                    summary.messages += 1
                if len(lines) >= 4096:
                    out.write(b"".join(lines))
                    lines.clear()
                if summary.first_ns is None:
                    summary.first_ns = record.wall_ns
                summary.last_ns = record.wall_ns
                if progress is not None:
                    progress.update(summary.records, record.wall_ns)
            if reader.tear is not None:
                summary.tears.append(reader.tear)
                tear = reader.tear
                warn(
                    f"{segment.path.name}: torn at byte {tear.offset:,} after "
                    f"{tear.records:,} records: {tear.reason}"
                )
        out.write(b"".join(lines))
    if progress is not None:
        progress.done()
    summary.seconds = time.monotonic() - started
    return summary


def stderr_warn(message: str) -> None:
    print(f"replay: {message}", file=sys.stderr, flush=True)
