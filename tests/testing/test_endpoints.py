"""mdgw.testing.endpoints: a reserved port is held against everyone but the service."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import pytest
import zmq

from mdgw.testing.endpoints import Endpoints, release_port, reserve_port, tcp_endpoint


def test_a_reserved_port_refuses_other_binds_and_takes_the_services() -> None:
    port = reserve_port()
    try:
        # Anyone binding it without SO_REUSEADDR (a careless free_port) is refused...
        with socket.socket() as other, pytest.raises(OSError) as refused:
            other.bind(("127.0.0.1", port))
        assert refused.value.errno == errno.EADDRINUSE
        # ...while a ZeroMQ listener (SO_REUSEADDR, as book_builder's) binds and serves.
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            pub = ctx.socket(zmq.PUSH)
            pub.bind(f"tcp://127.0.0.1:{port}")
            pull = ctx.socket(zmq.PULL)
            pull.connect(f"tcp://127.0.0.1:{port}")
            pub.send(b"hello")
            assert pull.poll(5000)
            assert pull.recv() == b"hello"
        finally:
            ctx.destroy(linger=0)
    finally:
        release_port(port)


async def test_an_asyncio_server_binds_a_reserved_port() -> None:
    port = reserve_port()
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        server.close()
        await server.wait_closed()
    finally:
        release_port(port)


def test_reserved_ports_are_distinct_and_endpoints_release_them() -> None:
    ports = [reserve_port() for _ in range(20)]
    try:
        assert len(set(ports)) == 20
    finally:
        for port in ports:
            release_port(port)
    endpoints = Endpoints.in_dir(Path("/tmp/x"), "-1")
    assert endpoints.raw == "ipc:///tmp/x/raw-1.sock"
    assert endpoints.control == "ipc:///tmp/x/control-1.sock"
    port = int(endpoints.pub.rsplit(":", 1)[1])
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    endpoints.release()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
    endpoint = tcp_endpoint()
    assert endpoint.startswith("tcp://127.0.0.1:")
    release_port(int(endpoint.rsplit(":", 1)[1]))
