"""One published message -> one line of text, sans-I/O.

Pure functions of the message and of what a shell passes in (the current time, the time
zone), so the printer's output is unit-tested without sockets or clocks. A line never
contains a newline or another control character, whatever the payload holds: the printer's
output is read line by line (``make demo``, ``| grep``, ``| head``).

Readable lines look like this (each is one line; the first two are wrapped here)::

    12:34:56.789 book   linear  BTCUSDT    65000.5 x 1.25 | 65000.6 x 0.4  spread 0.1  seq 42
        recv->pub 41µs  recv->now 0.2ms
    12:34:56.790 trade  linear  BTCUSDT    buy 65000.6 x 0.01  id 5cbb0f7e  seq 7
        recv->pub 35µs  recv->now 0.1ms
    12:34:57.001 status inverse BTCUSD     resyncing  u gap at u=1043  seq 3

``recv->pub`` is the gateway's own latency (ingestor receive to book_builder publish, both
wall clock), ``recv->now`` adds the way to this consumer. Both need the ingestor and this
host to share a clock when they are different hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

import orjson

__all__ = ["format_duration", "render_json", "render_line"]

_CHANNEL_WIDTH = 6  # "status"
_CATEGORY_WIDTH = 7  # "inverse"
_SYMBOL_WIDTH = 10


def render_line(
    topic: bytes,
    payload: Mapping[str, Any],
    *,
    now_ns: int,
    tz: tzinfo | None,
    snapshot: bool = False,
) -> str:
    """The readable line of one message; ``snapshot`` marks an item of a snapshot reply.

    ``payload`` is a decoded payload (``mdgw.core.wire.decode_payload``): its contract
    fields are present, but their types are not checked there, so nothing here trusts them.
    ``now_ns`` is the wall-clock time of receipt. ``tz`` is the zone the time is shown in;
    None means the system's local time (its rules, DST included, at each message's time).
    """
    channel = _text(payload.get("channel"))
    head = (
        f"{_clock(payload.get('pub_ns'), tz)} {channel:<{_CHANNEL_WIDTH}}"
        f" {_text(payload.get('category')):<{_CATEGORY_WIDTH}}"
        f" {_text(payload.get('symbol')):<{_SYMBOL_WIDTH}}"
    )
    parts = [head]
    if channel in ("book", "rpi"):
        bid = _first_level(payload.get("bids"))
        ask = _first_level(payload.get("asks"))
        parts.append(_quote(bid, ask))
    elif channel == "bbo":
        bid = _pair(payload.get("bid"), payload.get("bid_size"))
        ask = _pair(payload.get("ask"), payload.get("ask_size"))
        parts.append(_quote(bid, ask))
    elif channel == "trade":
        trade = (
            f"{_text(payload.get('side'))} {_text(payload.get('price'))}"
            f" x {_text(payload.get('size'))}  id {_text(payload.get('id'))}"
        )
        if payload.get("block") is True:
            trade += "  block"
        parts.append(trade)
    elif channel == "status" and payload.get("scope") == "exchange":
        parts.append(f"{_text(payload.get('state'))}  {_text(payload.get('title'))}")
    elif channel == "status":
        parts.append(f"{_text(payload.get('state'))}  {_text(payload.get('reason'))}")
    else:
        parts.append(f"topic {_text(topic.decode('ascii', 'backslashreplace'))}")
    parts.append(f"seq {_text(payload.get('seq'))}")
    recv_ns = payload.get("recv_ns")
    pub_ns = payload.get("pub_ns")
    if _is_int(recv_ns):
        if _is_int(pub_ns):
            parts.append(f"recv->pub {format_duration(pub_ns - recv_ns)}")
        parts.append(f"recv->now {format_duration(now_ns - recv_ns)}")
    if snapshot:
        parts.append("(snapshot)")
    return "  ".join(parts)


def render_json(topic: bytes, payload: Mapping[str, Any]) -> bytes:
    """One JSON object on one line (no newline at the end): the payload plus ``"topic"``.

    ``"topic"`` is the wire topic, terminator included (``"book.linear.BTCUSDT."``).
    orjson escapes control characters inside strings, so the result is a single line.
    """
    return orjson.dumps({**payload, "topic": topic.decode("ascii", "backslashreplace")})


def format_duration(ns: int) -> str:
    """``41_000`` -> ``"41µs"``, ``1_234_567`` -> ``"1.2ms"``, ``2_500_000_000`` -> ``"2.50s"``."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000:
        return f"{sign}{ns / 1000:.0f}µs"
    if ns < 1_000_000_000:
        return f"{sign}{ns / 1_000_000:.1f}ms"
    return f"{sign}{ns / 1_000_000_000:.2f}s"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _clock(pub_ns: object, tz: tzinfo | None) -> str:
    """``HH:MM:SS.mmm`` in ``tz``; ``??:??:??.???`` when ``pub_ns`` is not a usable time."""
    if _is_int(pub_ns):
        seconds, ns = divmod(pub_ns, 1_000_000_000)
        try:
            clock = datetime.fromtimestamp(seconds, tz)
        except (OverflowError, OSError, ValueError):
            pass
        else:
            return f"{clock:%H:%M:%S}.{ns // 1_000_000:03d}"
    return "??:??:??.???"


def _text(value: object) -> str:
    """A payload value as text that cannot break the line."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _pair(price: object, size: object) -> tuple[str, str] | None:
    if price is None:
        return None
    return _text(price), _text(size)


def _first_level(levels: object) -> tuple[str, str] | None:
    """The best ``[price, size]`` of a side, or None when the side is empty or malformed."""
    if not isinstance(levels, list) or not levels:
        return None
    level = levels[0]
    if not isinstance(level, list | tuple) or len(level) < 2:
        return None
    return _text(level[0]), _text(level[1])


def _quote(bid: tuple[str, str] | None, ask: tuple[str, str] | None) -> str:
    bid_text = f"{bid[0]} x {bid[1]}" if bid else "-"
    ask_text = f"{ask[0]} x {ask[1]}" if ask else "-"
    return f"{bid_text} | {ask_text}  spread {_spread(bid, ask)}"


def _spread(bid: tuple[str, str] | None, ask: tuple[str, str] | None) -> str:
    # Decimal, not float: "65000.6" - "65000.5" must print 0.1, not 0.10000000000582077.
    if bid is None or ask is None:
        return "-"
    try:
        spread = Decimal(ask[0]) - Decimal(bid[0])
    except InvalidOperation:
        return "?"
    if not spread.is_finite():
        return "?"
    return str(spread)
