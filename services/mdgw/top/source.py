"""Where ``mdgw top`` reads from: HTTP ``/health`` + ``/metrics`` and the pub socket.

No new protocol: the same endpoints Prometheus and the consumers use. Each refresh makes
two requests per service (short timeouts: a service that does not answer shows as
unreachable, and the screen keeps refreshing) and drains the ``bbo.`` messages that
arrived on the pub socket since the previous refresh.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

import orjson
import zmq
from prometheus_client.parser import text_string_to_metric_families

from mdgw.core import wire
from mdgw.core.errors import WireError
from mdgw.runtime.curve import CurveClient, apply_curve
from mdgw.top.model import BboTracker, IngestorInput, Samples, TopView, build_view

__all__ = ["TopSource", "fetch_health", "fetch_samples"]

HTTP_TIMEOUT: Final = 0.8
_DRAIN_MAX: Final = 100_000  # pub messages read per refresh at most


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()  # 503 carries the health body too
    except (OSError, ValueError):
        return None


def fetch_health(base: str) -> dict[str, Any] | None:
    got = _get(f"{base}/health")
    if got is None:
        return None
    try:
        body = orjson.loads(got[1])
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def fetch_samples(base: str) -> Samples:
    got = _get(f"{base}/metrics")
    if got is None or got[0] != 200:
        return {}
    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(got[1].decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    except ValueError:
        return {}
    return samples


class TopSource:
    def __init__(
        self,
        builder: str,
        ingestors: Sequence[str],
        pub: str | None,
        curve: CurveClient | None = None,
    ) -> None:
        self.builder = builder.rstrip("/")
        self.ingestors = [url.rstrip("/") for url in ingestors]
        self.bbo = BboTracker()
        self._before: Samples = {}
        self._ingestors_before: dict[str, Samples] = {}
        self._at = time.monotonic()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub: zmq.Socket[bytes] | None = None
        if pub is not None:
            sub = self.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, 100_000)
            sub.setsockopt(zmq.SUBSCRIBE, wire.subscription("bbo"))
            apply_curve(sub, curve, pub)
            sub.connect(pub)
            self.sub = sub

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close(linger=0)
        self.ctx.term()

    def _drain(self) -> None:
        sub = self.sub
        if sub is None:
            return
        for _ in range(_DRAIN_MAX):
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue
            try:
                self.bbo.on_bbo(wire.decode_payload(frames[1]))
            except WireError:
                continue

    def poll(self) -> TopView:
        now = time.monotonic()
        dt = now - self._at
        self._at = now
        self._drain()
        health = fetch_health(self.builder)
        samples = fetch_samples(self.builder)
        inputs = []
        for url in self.ingestors:
            got = fetch_samples(url)
            inputs.append(
                IngestorInput(url, fetch_health(url), got, self._ingestors_before.get(url, {}))
            )
            self._ingestors_before[url] = got
        view = build_view(
            builder_url=self.builder,
            builder_health=health,
            builder=samples,
            builder_before=self._before,
            dt=dt,
            ingestors=inputs,
            bbo=self.bbo,
        )
        self._before = samples
        return view
