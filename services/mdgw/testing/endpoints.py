"""Endpoints for the processes under test, allocated without races.

Tests and benchmarks of many engineers run on one machine at the same time, so nothing
here picks a fixed port, and nothing asks for a free port and then lets it go (another
process may take it before the service binds it):

- ipc paths in a short private directory (:func:`short_tempdir`) need no allocation at all;
  use them wherever the transport is not what is tested.
- Where a service must be told a tcp port before it starts (a config file read by several
  processes, a simulator that supervisord restarts on the same port), :func:`reserve_port`
  binds a socket to port 0 with ``SO_REUSEADDR``, reads the port back and keeps that
  socket open, never listening, until :func:`release_port` or the end of this process.
  While it is held, Linux gives the port to no other ``bind(port 0)`` and to no outgoing
  connection; the service can still bind and listen on it, because ZeroMQ's and asyncio's
  listeners set ``SO_REUSEADDR`` too and the held socket is not listening.
"""

from __future__ import annotations

import atexit
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Endpoints",
    "release_port",
    "reserve_port",
    "short_tempdir",
    "tcp_endpoint",
]

_held: dict[int, socket.socket] = {}


def short_tempdir(prefix: str = "mdgw-") -> Path:
    """A private directory with a short path, for ipc sockets (paths are limited to 107
    bytes, which pytest's tmp_path can exceed)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def reserve_port(host: str = "127.0.0.1") -> int:
    """A tcp port on *host* that is this process's until :func:`release_port` (see above)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    port: int = sock.getsockname()[1]
    _held[port] = sock
    return port


def release_port(port: int) -> None:
    """Let go of a port from :func:`reserve_port` (nothing if it is not held)."""
    sock = _held.pop(port, None)
    if sock is not None:
        sock.close()


@atexit.register
def _release_all() -> None:
    for port in list(_held):
        release_port(port)


def tcp_endpoint(host: str = "127.0.0.1") -> str:
    """``tcp://host:port`` on a port from :func:`reserve_port`."""
    return f"tcp://{host}:{reserve_port(host)}"


@dataclass(frozen=True)
class Endpoints:
    """book_builder's four sockets: raw and control on ipc in *workdir*; pub and snapshot
    on reserved loopback tcp ports (consumers connect there as they would in production),
    or on ipc too with ``tcp=False``."""

    raw: str
    control: str
    pub: str
    snapshot: str

    @classmethod
    def in_dir(cls, workdir: Path, suffix: str = "", *, tcp: bool = True) -> Endpoints:
        return cls(
            raw=f"ipc://{workdir}/raw{suffix}.sock",
            control=f"ipc://{workdir}/control{suffix}.sock",
            pub=tcp_endpoint() if tcp else f"ipc://{workdir}/pub{suffix}.sock",
            snapshot=tcp_endpoint() if tcp else f"ipc://{workdir}/snapshot{suffix}.sock",
        )

    def release(self) -> None:
        """Release the tcp ports (once the processes that bind them have stopped or bound)."""
        for endpoint in (self.pub, self.snapshot):
            if endpoint.startswith("tcp://"):
                release_port(int(endpoint.rsplit(":", 1)[1]))
