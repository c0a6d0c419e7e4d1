"""The gateway's real processes against the in-process simulator, and ways to watch them.

Shared by ``scripts/soak.py`` and the reliability tests (``tests/reliability/``), so that
people and CI run the same harness:

- :class:`Service`: one real ``python -m mdgw.<service>`` process with its JSON log file
  (read back with :meth:`Service.lines`, :meth:`Service.events`, :meth:`Service.stats`), its
  resident memory and signals (SIGSTOP/SIGCONT/SIGKILL/SIGTERM).
- :class:`Gateway`: a config file plus a book_builder and an ingestor reading it, on
  sockets of their own (ipc in a short private directory, tcp on free loopback ports).
- :class:`TruthConsumer`: a SUB on the pub socket that checks every ``book`` message
  against the simulator's truth at that ``u``, every topic's ``seq`` for holes, and which
  books are published while their last ``status`` was not ``live``.

The simulator runs in the caller's event loop (``SimulatorServer``), so its truth is read
directly; the consumer must run in that same loop.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zmq
import zmq.asyncio

from mdgw.core import wire
from mdgw.simulator.market import TruthUnavailableError
from mdgw.simulator.params import SimulatorParams
from mdgw.simulator.server import SimulatorServer

ROOT = Path(__file__).resolve().parents[1]
Key = tuple[str, str]  # (category, symbol)
# RELIABILITY_LONG=1: the reliability tests run their long versions (not MDGW_*: the
# services refuse MDGW_ variables that are not config keys).
LONG = os.environ.get("RELIABILITY_LONG", "") not in ("", "0")


@dataclass(frozen=True)
class Stream:
    category: str
    symbol: str
    depth: int
    connections: int = 1  # websockets carrying it (an A/B feed from 2)

    @property
    def key(self) -> Key:
        return (self.category, self.symbol)


# Every category, depths 1, 50 and 200: the set most reliability tests run against.
MIXED_STREAMS = (
    Stream("linear", "BTCUSDT", 50),
    Stream("linear", "ETHUSDT", 200),
    Stream("inverse", "BTCUSD", 50),
    Stream("spot", "BTCUSDT", 50),
    Stream("spot", "ETHUSDT", 1),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident memory of *pid* in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time *pid* has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MDGW_* variables (the services refuse unknown
    ones), plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MDGW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def sim_params(
    streams: Sequence[Stream],
    *,
    rate: float = 40.0,
    trade_rate: float = 2.0,
    port: int = 0,
    seed: int = 7,
    truth_history: int = 20_000,
) -> SimulatorParams:
    by_category: dict[str, list[str]] = {}
    for stream in streams:
        symbols = by_category.setdefault(stream.category, [])
        if stream.symbol not in symbols:
            symbols.append(stream.symbol)
    return SimulatorParams(
        streams={c: tuple(s) for c, s in by_category.items()},  # type: ignore[misc]
        port=port,
        seed=seed,
        rate=rate,
        trade_rate=trade_rate,
        levels=1200,
        resend_interval=1.0,
        truth_history=truth_history,
        stats_interval=3600.0,
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def config_text(streams: Sequence[Stream], sections: Mapping[str, Mapping[str, Any]]) -> str:
    """A gateway.toml: *sections* (``{"bybit": {...}, "zmq": {...}}``) plus the streams."""
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
        if section == "bybit":
            for stream in streams:
                lines += [
                    "[[bybit.streams]]",
                    f'category = "{stream.category}"',
                    f'symbols = ["{stream.symbol}"]',
                    f"depth = {stream.depth}",
                    "trades = true",
                    f"connections = {stream.connections}",
                ]
    return "\n".join(lines) + "\n"


class Service:
    """One real ``python -m mdgw.<module>`` process writing JSON lines to *log_path*.

    Restarting appends to the same log; :meth:`lines` reads everything written so far.
    """

    def __init__(
        self,
        module: str,
        config: Path,
        log_path: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.module = module
        self.config = config
        self.log_path = log_path
        self.args = list(args)
        self.env = dict(env) if env is not None else clean_env()
        self.env["MDGW_CONFIG"] = str(config)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Service:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.module} is already running")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"mdgw.{self.module}", *self.args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit status (SIGKILL after *timeout*)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss_kib(self) -> int:
        return rss_kib(self.pid) if self.alive else 0

    def raw_lines(self) -> list[bytes]:
        try:
            return [x for x in self.log_path.read_bytes().splitlines() if x]
        except FileNotFoundError:
            return []

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line logged so far (lines that are not JSON objects are skipped)."""
        out: list[dict[str, Any]] = []
        for raw in self.raw_lines():
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def non_json_lines(self) -> list[bytes]:
        bad: list[bytes] = []
        for raw in self.raw_lines():
            try:
                if not isinstance(orjson.loads(raw), dict):
                    bad.append(raw)
            except orjson.JSONDecodeError:
                bad.append(raw)
        return bad

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") in names]

    def stats(self) -> dict[str, Any] | None:
        """The last stats line (``stats`` or ``stats_final``), None before the first."""
        found = self.events("stats", "stats_final")
        return found[-1] if found else None


class Gateway:
    """A config plus a book_builder and an ingestor on this gateway's own sockets.

    *rundir* should be short (ipc paths are limited to 107 bytes); logs go to *logdir*.
    ``sections`` override or extend the config sections written by :meth:`write_config`.
    """

    def __init__(
        self,
        rundir: Path,
        logdir: Path,
        streams: Sequence[Stream],
        *,
        ws_url: str,
        sections: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.rundir = rundir
        self.logdir = logdir
        self.streams = list(streams)
        self.raw = f"ipc://{rundir}/raw.sock"
        self.control = f"ipc://{rundir}/control.sock"
        self.pub = f"tcp://127.0.0.1:{free_port()}"
        self.snapshot = f"tcp://127.0.0.1:{free_port()}"
        self.config = logdir / "gateway.toml"
        self.sections: dict[str, dict[str, Any]] = {
            "bybit": {
                "ws_url": ws_url,
                "ping_interval": 1,
                "silence_timeout": 3,
                "connect_timeout": 2,
                "backoff_initial": 0.2,
                "backoff_max": 1.0,
            },
            "zmq": {
                "raw": self.raw,
                "control": self.control,
                "pub": self.pub,
                "snapshot": self.snapshot,
            },
            "books": {"publish_depth": 25, "resync_timeout": 2.0, "resync_min_interval": 0.5},
            "log": {"format": "json", "stats_interval": 1},
        }
        for section, keys in (sections or {}).items():
            self.sections.setdefault(section, {}).update(keys)
        self.write_config()
        self.builder = Service("book_builder", self.config, logdir / "book_builder.log")
        self.ingestor = Service("ingestor", self.config, logdir / "ingestor.log")

    def write_config(self) -> None:
        self.config.write_text(config_text(self.streams, self.sections))

    def ingestor_service(self, log_name: str, *args: str) -> Service:
        """Another ingestor process on this config, logging to its own file."""
        return Service("ingestor", self.config, self.logdir / log_name, args=args)

    @property
    def keys(self) -> list[Key]:
        return [s.key for s in self.streams]

    def start(self) -> Gateway:
        self.builder.start()
        self.ingestor.start()
        return self

    def stop(self) -> dict[str, int]:
        return {"ingestor": self.ingestor.stop(), "book_builder": self.builder.stop()}

    def kill(self) -> None:
        for service in (self.ingestor, self.builder):
            service.kill()


# --- the consumer -------------------------------------------------------------------------


@dataclass
class Status:
    key: Key
    state: str
    reason: str
    pub_ns: int
    seen_ns: int


@dataclass
class Observed:
    """What a :class:`TruthConsumer` saw, checked as it arrived."""

    messages: int = 0
    books: int = 0
    verified: int = 0
    unverifiable: int = 0
    wrong: list[str] = field(default_factory=list)
    seq: dict[bytes, int] = field(default_factory=dict)
    seq_errors: list[str] = field(default_factory=list)
    seq_error_at: list[float] = field(default_factory=list)  # monotonic, one per seq_errors
    restarts: int = 0  # topics whose seq started again at 1 (book_builder restarted)
    state: dict[Key, str] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    last_book_at: dict[Key, float] = field(default_factory=dict)  # monotonic
    last_u: dict[Key, int] = field(default_factory=dict)
    published_while_not_live: list[str] = field(default_factory=list)
    rollbacks: list[str] = field(default_factory=list)  # a book at a lower u than the last
    channels: Counter[str] = field(default_factory=Counter)


class TruthConsumer:
    """SUB on the pub socket; every book checked against the simulator's truth.

    ``sample`` < 1 checks that fraction of books (chosen at random, seeded) plus the first
    book after every status change, for rates where checking all would cost too much.
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        pub: str,
        sim: SimulatorServer,
        streams: Sequence[Stream],
        *,
        publish_depth: int = 25,
        sample: float = 1.0,
        prefixes: Sequence[bytes] = (b"",),
    ) -> None:
        self.sim = sim
        self.depths = {s.key: s.depth for s in streams}
        self.publish_depth = publish_depth
        self.sample = sample
        self.rng = random.Random(1)
        self.seen = Observed()
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)  # never drop: this consumer checks seq holes
        self.sub.setsockopt(zmq.LINGER, 0)
        for prefix in prefixes:
            self.sub.subscribe(prefix)
        self.sub.connect(pub)
        self._check_next: set[Key] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> TruthConsumer:
        self.task = asyncio.create_task(self._run(), name="truth-consumer")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            if not self.task.cancelled() and self.task.exception() is not None:
                raise self.task.exception()  # type: ignore[misc]
        self.sub.close(linger=0)

    def check(self) -> None:
        """Raise if the consumer task died (a bug in the check itself)."""
        if self.task is not None and self.task.done() and not self.task.cancelled():
            exc = self.task.exception()
            if exc is not None:
                raise exc

    async def _run(self) -> None:
        recv = self.sub.recv_multipart
        poll = self.sub.poll
        while True:
            await poll()
            # Drain what is waiting without a trip through the loop per message.
            for _ in range(4096):
                try:
                    frames = await recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_message(frames)

    def _on_message(self, frames: list[bytes]) -> None:
        seen = self.seen
        seen.messages += 1
        topic, payload = frames
        msg = orjson.loads(payload)
        channel, category, symbol = msg["channel"], msg["category"], msg["symbol"]
        seen.channels[channel] += 1
        key = (category, symbol)
        last = seen.seq.get(topic)
        if last is not None and msg["seq"] != last + 1:
            if msg["seq"] == 1:
                seen.restarts += 1
            else:
                seen.seq_errors.append(f"{topic!r}: seq {last} -> {msg['seq']}")
                seen.seq_error_at.append(time.monotonic())
        seen.seq[topic] = msg["seq"]
        if wire.parse_topic(topic) != (channel, category, symbol):
            seen.wrong.append(f"topic {topic!r} does not match its payload")
        if channel == "status":
            seen.state[key] = msg["state"]
            seen.statuses.append(
                Status(key, msg["state"], msg["reason"], msg["pub_ns"], time.time_ns())
            )
            self._check_next.add(key)
            return
        if channel != "book":
            return
        seen.books += 1
        seen.state.setdefault(key, "live")  # joined after its status message
        if seen.state[key] != "live":
            seen.published_while_not_live.append(f"{key} u={msg['u']} ({seen.state[key]})")
        seen.last_book_at[key] = time.monotonic()
        before = seen.last_u.get(key)
        if before is not None and msg["u"] < before and msg["u"] != 1:  # 1: Bybit's restart
            seen.rollbacks.append(f"{key}: book u {before} -> {msg['u']}")
        seen.last_u[key] = msg["u"]
        depth = self.depths.get(key)
        if depth is None:
            return
        if self.sample < 1.0 and key not in self._check_next and self.rng.random() >= self.sample:
            return
        self._check_next.discard(key)
        try:
            truth = self.sim.market.truth(category, symbol, depth, msg["u"])
        except TruthUnavailableError:
            seen.unverifiable += 1
            return
        seen.verified += 1
        n = self.publish_depth
        if msg["bids"] != [list(x) for x in truth.bids[:n]] or msg["asks"] != [
            list(x) for x in truth.asks[:n]
        ]:
            seen.wrong.append(f"{key} u={msg['u']}: book differs from the truth")

    # --- questions ------------------------------------------------------------------------

    def all_live(self, keys: Iterable[Key]) -> bool:
        return all(self.seen.state.get(k) == "live" for k in keys)

    def books_since(self, keys: Iterable[Key], since: float) -> bool:
        """Every key had a book after monotonic time *since*, and is live."""
        return all(
            self.seen.last_book_at.get(k, 0.0) > since and self.seen.state.get(k) == "live"
            for k in keys
        )

    def first_status(self, key: Key, state: str, after_ns: int) -> Status | None:
        for status in self.seen.statuses:
            if status.key == key and status.state == state and status.pub_ns >= after_ns:
                return status
        return None


async def wait_for(
    check: Callable[[], bool], what: str, timeout: float, *, interval: float = 0.05
) -> float:
    """Poll *check* until true; the seconds it took. AssertionError past *timeout*."""
    start = time.monotonic()
    deadline = start + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


def short_tempdir(prefix: str = "mdgw-") -> Path:
    """A private directory with a short path, for ipc sockets (107-byte limit)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
