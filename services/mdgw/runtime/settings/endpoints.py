"""Endpoint checks: catch at load time what libzmq (or an HTTP or websocket client) would refuse.

A bad endpoint found by libzmq surfaces far from the config (an ``EINVAL`` from a socket call
in some service); checked here, it is one line naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["check_http_host", "check_url", "check_zmq_endpoint"]

_HOSTNAME_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL; libzmq
# refuses longer ipc paths with ENAMETOOLONG at bind/connect time, far from the config.
_IPC_PATH_MAX_BYTES: Final = 107


def _check_tcp_host(host: str, endpoint: str) -> None:
    if host == "*":
        return
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{endpoint!r}: IPv6 host is missing its closing ']'")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{endpoint!r}: {host[1:-1]!r} is not an IPv6 address") from None
        return
    if ":" in host:
        raise ValueError(f"{endpoint!r}: write an IPv6 host in brackets, e.g. tcp://[::1]:7100")
    if all(part.isdigit() for part in host.split(".")):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{endpoint!r}: {host!r} is not an IPv4 address") from None
        return
    # Anything else must be a hostname or an interface name (eth0, lo): same character set.
    if not _HOSTNAME_RE.match(host):
        raise ValueError(f"{endpoint!r}: {host!r} is not a hostname, IP address, interface or *")


def check_url(key: str, url: str, schemes: tuple[str, str]) -> str:
    """Return *url* without a trailing ``/`` if it has one of *schemes* and names a host.
    Raises ValueError naming *key*."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        plain, secure = schemes
        raise ValueError(
            f"{key} must start with {plain}:// or {secure}:// and name a host (got {url!r})"
        )
    return url.rstrip("/")


def check_http_host(host: str) -> str:
    """Return *host* if an HTTP server can listen on it: an IP address (IPv6 without
    brackets) or a hostname. Raises ValueError saying what is wrong."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME_RE.match(host):
            raise ValueError(
                f"host must be an IP address (IPv6 without brackets) or a hostname "
                f"(got {host!r}); 0.0.0.0 listens on every interface"
            ) from None
    return host


def check_zmq_endpoint(endpoint: str) -> str:
    """Return *endpoint* if it is a ZeroMQ address this gateway can bind or connect.

    Raises ValueError with a message that says what is wrong with it.
    """
    transport, sep, address = endpoint.partition("://")
    if not sep:
        raise ValueError(f"{endpoint!r} is not a ZeroMQ endpoint: expected transport://address")
    if transport == "tcp":
        host, colon, port = address.rpartition(":")
        if not colon or not host:
            raise ValueError(f"{endpoint!r}: tcp endpoints are tcp://host:port")
        _check_tcp_host(host, endpoint)
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{endpoint!r}: port must be a number from 1 to 65535 (got {port!r})")
        return endpoint
    if transport == "ipc":
        if not address:
            raise ValueError(
                f"{endpoint!r}: ipc endpoints need a path, e.g. ipc://var/run/raw.sock"
            )
        if len(address.encode()) > _IPC_PATH_MAX_BYTES:
            raise ValueError(
                f"{endpoint!r}: ipc path is {len(address.encode())} bytes; "
                f"unix sockets allow at most {_IPC_PATH_MAX_BYTES}"
            )
        return endpoint
    if transport == "inproc":
        if not address:
            raise ValueError(f"{endpoint!r}: inproc endpoints need a name, e.g. inproc://raw")
        return endpoint
    raise ValueError(
        f"{endpoint!r}: transport {transport!r} is not supported; use tcp://, ipc:// or inproc://"
    )
