"""Several machines on one: Linux network namespaces joined by veth pairs, everything over
tcp with CURVE (docs/deploy.md's three-host layout, with the feed host doubled).

    sim ──veth── feed-a ──veth──┐
     └───veth── feed-b ──veth── hub ──veth── cons
                (slower)

- the simulator in ``sim``; two ingestors with the same streams in ``feed-a`` and
  ``feed-b``; book_builder in ``hub``; a checking consumer (and an intruder) in ``cons``;
- feed-b's link to the simulator is slower: ``tc netem`` delay and loss where the kernel has
  netem, else a userspace delay relay inside ``feed-b`` (no loss then; the test says which);
- every book equals the simulator's truth; books follow the faster path (feed-a first);
- kill -9 of every process in ``feed-a``'s namespace: no ``status: resyncing`` and no hole
  in any topic's ``seq``;
- a consumer whose key is not in the builder's authorized directory receives nothing.

Needs root and ``ip`` (iproute2); skips with the reason otherwise. Fixed ports are fine here:
each namespace has its own network stack, and the namespace names are unique per run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from mdgw.runtime.curve import create_keys

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PEER = Path(__file__).with_name("netns_peer.py")
ROLES = ("sim", "fa", "fb", "hub", "cons")
# (namespace, address) pairs of each veth link; /30 networks private to the namespaces.
LINKS = {
    "sa": (("sim", "10.14.1.1"), ("fa", "10.14.1.2")),
    "sb": (("sim", "10.14.2.1"), ("fb", "10.14.2.2")),
    "ah": (("fa", "10.14.3.1"), ("hub", "10.14.3.2")),
    "bh": (("fb", "10.14.4.1"), ("hub", "10.14.4.2")),
    "hc": (("hub", "10.14.5.1"), ("cons", "10.14.5.2")),
}
DELAY_MS = 40
STREAMS = (("linear", "BTCUSDT", 50), ("inverse", "BTCUSD", 50))


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=20)


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    if not zmq.has("curve"):
        return "this pyzmq has no CURVE"
    probe = f"mdgw-probe-{secrets.token_hex(3)}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


class Namespaces:
    """The five namespaces and their links; removed (with every process in them) on close."""

    def __init__(self) -> None:
        token = secrets.token_hex(3)
        self.token = token
        self.names = {role: f"mdgw-{token}-{role}" for role in ROLES}
        self.netem = False

    def create(self) -> None:
        for name in self.names.values():
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        for link, ((ns_a, addr_a), (ns_b, addr_b)) in LINKS.items():
            a, b = f"m{self.token}{link}a", f"m{self.token}{link}b"
            _run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            for dev, ns, addr in ((a, ns_a, addr_a), (b, ns_b, addr_b)):
                _run("ip", "link", "set", dev, "netns", self.names[ns])
                _run("ip", "-n", self.names[ns], "addr", "add", f"{addr}/30", "dev", dev)
                _run("ip", "-n", self.names[ns], "link", "set", dev, "up")
        # feed-b's link to the simulator is the slow one, in both directions.
        dev_sim, dev_fb = f"m{self.token}sba", f"m{self.token}sbb"
        for ns, dev in (("sim", dev_sim), ("fb", dev_fb)):
            added = _run(
                "ip", "netns", "exec", self.names[ns], "tc", "qdisc", "add", "dev", dev,
                "root", "netem", "delay", f"{DELAY_MS // 2}ms", "loss", "0.5%",
                check=False,
            )  # fmt: skip
            self.netem = added.returncode == 0
            if not self.netem:
                break

    def exec(self, role: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[role], *cmd]

    def pids(self, role: str) -> list[int]:
        out = _run("ip", "netns", "pids", self.names[role], check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self, role: str) -> list[int]:
        pids = self.pids(role)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def close(self) -> None:
        for role in ROLES:
            self.kill_all(role)
        for name in self.names.values():
            _run("ip", "netns", "del", name, check=False)


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
        if section == "bybit":
            for category, symbol, depth in STREAMS:
                lines += [
                    "[[bybit.streams]]",
                    f'category = "{category}"',
                    f'symbols = ["{symbol}"]',
                    f"depth = {depth}",
                ]
    return "\n".join(lines) + "\n"


def _configs(tmp: Path, keys: Path, ws_b: str) -> dict[str, Path]:
    """One config per host role, as docs/deploy.md writes them."""
    log = {"format": "json", "stats_interval": 1}
    books = {"publish_depth": 25, "resync_timeout": 2.0, "resync_min_interval": 0.5}
    client = {
        "curve": True,
        "curve_server_public": str(keys / "server.key"),
    }
    bybit = {
        "ping_interval": 1,
        "silence_timeout": 3,
        "connect_timeout": 2,
        "backoff_initial": 0.2,
        "backoff_max": 1.0,
    }
    configs = {
        "sim": {
            "bybit": {"ws_url": "ws://127.0.0.1:7200/v5/public"},
            "simulator": {"host": "0.0.0.0", "port": 7200, "rate": 40.0, "seed": 14},
            "log": log,
        },
        "fa": {
            "bybit": {**bybit, "ws_url": "ws://10.14.1.1:7200/v5/public"},
            "zmq": {
                **client,
                "raw": "tcp://10.14.3.2:7000",
                "control": "tcp://10.14.3.2:7001",
                "curve_client_secret": str(keys / "feed-a.key_secret"),
            },
            "ingestor": {"id": "feed-a"},
            "log": log,
        },
        "fb": {
            "bybit": {**bybit, "ws_url": ws_b},
            "zmq": {
                **client,
                "raw": "tcp://10.14.4.2:7000",
                "control": "tcp://10.14.4.2:7001",
                "curve_client_secret": str(keys / "feed-b.key_secret"),
            },
            "ingestor": {"id": "feed-b"},
            "log": log,
        },
        "hub": {
            "bybit": {},
            "zmq": {
                "raw": "tcp://0.0.0.0:7000",
                "control": "tcp://0.0.0.0:7001",
                "pub": "tcp://0.0.0.0:7100",
                "snapshot": "tcp://0.0.0.0:7101",
                "curve": True,
                "curve_server_secret": str(keys / "server.key_secret"),
                "curve_authorized_dir": str(keys / "authorized"),
            },
            "books": books,
            "log": log,
        },
    }
    paths = {}
    for role, sections in configs.items():
        path = tmp / f"{role}.toml"
        path.write_text(_toml(sections))
        paths[role] = path
    return paths


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _records(path: Path) -> list[dict[str, Any]]:
    """The consumer's complete lines: the last one may be half written while we read."""
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1].decode()
    return [json.loads(line.split("\t", 1)[1]) for line in whole.splitlines() if line]


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    ns = Namespaces()
    try:
        ns.create()
        yield ns
    finally:
        ns.close()


def test_three_hosts_over_curve_follow_the_faster_feed_and_survive_kill_9(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    started = time.monotonic()
    ns = namespaces
    keys = tmp_path / "keys"
    create_keys(keys, ["feed-a", "feed-b", "consumer"])
    intruder_keys = tmp_path / "intruder"
    create_keys(intruder_keys, ["intruder"])  # a keypair the builder does not list
    relay: list[str] = []
    ws_b = "ws://10.14.2.1:7200/v5/public"
    if not ns.netem:
        print(f"no netem qdisc in this kernel: feed-b is {DELAY_MS} ms slower by a relay")
        relay = ["--listen", "127.0.0.1:7300", "--to", "10.14.2.1:7200", "--delay"]
        relay.append(str(DELAY_MS / 1000))
        ws_b = "ws://127.0.0.1:7300/v5/public"
    configs = _configs(tmp_path, keys, ws_b)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MDGW_")}
    env["PYTHONUNBUFFERED"] = "1"
    logs = {role: tmp_path / f"{role}.log" for role in ("sim", "fa", "fb", "hub", "relay")}
    procs: list[subprocess.Popen[bytes]] = []

    def start(role: str, log: str, *cmd: str, config: str | None = None) -> None:
        run_env = dict(env)
        if config is not None:
            run_env["MDGW_CONFIG"] = str(configs[config])
        with logs[log].open("ab") as out:
            procs.append(
                subprocess.Popen(
                    ns.exec(role, sys.executable, *cmd),
                    cwd=ROOT,
                    env=run_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    records = tmp_path / "consumer.tsv"
    intruder = tmp_path / "intruder.tsv"

    def consumer(out: Path, key: Path) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, str(PEER), "consume", "--pub", "tcp://10.14.5.1:7100"]
        cmd += ["--key", str(key), "--server-key", str(keys / "server.key"), "--out", str(out)]
        proc = subprocess.Popen(ns.exec("cons", *cmd), cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    try:
        start("sim", "sim", "-m", "mdgw.simulator", config="sim")
        start("hub", "hub", "-m", "mdgw.book_builder", config="hub")
        if relay:
            start("fb", "relay", "-m", "mdgw.testing.relay", *relay)
        start("fa", "fa", "-m", "mdgw.ingestor", config="fa")
        start("fb", "fb", "-m", "mdgw.ingestor", config="fb")
        checker = consumer(records, keys / "consumer.key_secret")
        outsider = consumer(intruder, intruder_keys / "intruder.key_secret")

        def books_of(since: float = 0.0) -> dict[str, int]:
            counts: dict[str, int] = {}
            for msg in _records(records):
                if msg["channel"] == "book" and msg["pub_ns"] / 1e9 >= since:
                    counts[msg["symbol"]] = counts.get(msg["symbol"], 0) + 1
            return counts

        _wait(lambda: len(books_of()) == len(STREAMS), "books of every stream", 30)

        def hub_sources() -> dict[str, Any]:
            stats = [x for x in _json_lines(logs["hub"]) if x.get("event") == "stats"]
            return stats[-1].get("sources", {}) if stats else {}

        _wait(
            lambda: (
                {n.split("/")[0] for n, s in hub_sources().items() if s["first"] + s["late"]}
                >= {"feed-a", "feed-b"}
            ),
            "both feeds delivering to the builder",
            20,
        )
        time.sleep(3.0)  # a few seconds of A/B (not a condition: the period measured)
        before_kill = hub_sources()
        # Per ingestor, over its sources (one per category, and the system-status one).
        first: dict[str, int] = {}
        lag: dict[str, list[float]] = {}
        for name, s in before_kill.items():
            feed = name.split("/")[0]
            first[feed] = first.get(feed, 0) + s["first"]
            if s["lag_ms"] is not None:
                lag.setdefault(feed, []).append(s["lag_ms"])
        print(f"before the kill: first {first}, lag_ms {lag}")
        # The faster path wins most u.
        assert first.get("feed-a", 0) > 3 * first.get("feed-b", 0), before_kill

        killed_at = time.time()
        assert ns.kill_all("fa"), "no process in feed-a's namespace"
        _wait(
            lambda: any(x.get("event") == "ingestor_lost" for x in _json_lines(logs["hub"])),
            "the builder noticing feed-a is gone",
            10,
        )
        _wait(
            lambda: (
                all(n >= 40 for n in books_of(killed_at + 3.0).values())
                and len(books_of(killed_at + 3.0)) == len(STREAMS)
            ),
            "books from feed-b alone",
            20,
        )
        for proc in (checker, outsider):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

        messages = _records(records)
        statuses = [m for m in messages if m["channel"] == "status"]
        assert [s for s in statuses if s["state"] == "resyncing"] == []
        holes: list[str] = []
        last: dict[str, int] = {}
        for m in messages:
            topic = f"{m['channel']}.{m['category']}.{m['symbol']}"
            if topic in last and m["seq"] != last[topic] + 1:
                holes.append(f"{topic}: {last[topic]} -> {m['seq']}")
            last[topic] = m["seq"]
        assert holes == []
        assert _records(intruder) == []  # an unlisted key gets nothing
        assert any(x.get("event") == "curve_client_denied" for x in _json_lines(logs["hub"]))

        depths = ",".join(f"{c}/{s}={d}" for c, s, d in STREAMS)
        verify = subprocess.run(
            ns.exec(
                "sim",
                sys.executable,
                str(PEER),
                "verify",
                "--records",
                str(records),
                "--truth",
                "http://127.0.0.1:7200",
                "--depths",
                depths,
            ),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        summary = json.loads(verify.stdout.strip().splitlines()[-1])
        print(f"books checked against the truth: {summary}")
        assert summary["wrong"] == 0, summary
        assert summary["books"] > 200 and summary["unverifiable"] < summary["books"] // 10
        print(f"namespace test took {time.monotonic() - started:.1f}s (netem: {ns.netem})")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
