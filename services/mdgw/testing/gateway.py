"""The gateway's two services on a generated config, on sockets of their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mdgw.testing.config import Key, Stream, config_text
from mdgw.testing.endpoints import Endpoints
from mdgw.testing.processes import Service

__all__ = ["Gateway"]


class Gateway:
    """A config plus a book_builder and an ingestor on this gateway's own sockets.

    raw and control are ipc sockets in *rundir*, which should be short (ipc paths are
    limited to 107 bytes; :func:`mdgw.testing.endpoints.short_tempdir`); pub and snapshot
    are loopback tcp ports reserved for this process (:func:`~mdgw.testing.endpoints.
    reserve_port`), held until it exits so that a restarted book_builder finds them free.
    Logs and the config go to *logdir*. ``sections`` override or extend the config
    sections written by :meth:`write_config`.
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
        self.endpoints = Endpoints.in_dir(rundir)
        self.raw = self.endpoints.raw
        self.control = self.endpoints.control
        self.pub = self.endpoints.pub
        self.snapshot = self.endpoints.snapshot
        self.config = logdir / "gateway.toml"
        self.sections: dict[str, dict[str, Any]] = {
            "bybit": {
                "ws_url": ws_url,
                "ping_interval": 1,
                "silence_timeout": 3,
                "connect_timeout": 2,
                "backoff_initial": 0.2,
                "backoff_max": 1.0,
                # Tests that count connections and attempts mean the book connections;
                # system.status has its own tests (tests/e2e/test_streams.py).
                "system_status": False,
            },
            "zmq": {
                "raw": self.raw,
                "control": self.control,
                "pub": self.pub,
                "snapshot": self.snapshot,
            },
            "books": {"publish_depth": 25, "resync_timeout": 2.0, "resync_min_interval": 0.5},
            "log": {"format": "json", "stats_interval": 1},
            # Off unless a test asks (--metrics-port auto): no fixed port, runs side by side.
            "metrics": {"book_builder": 0, "ingestor": 0},
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
