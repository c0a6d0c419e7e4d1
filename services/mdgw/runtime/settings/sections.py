"""The configuration's sections: every key of every ``[section]``, its default and its check.

docs/configuration.md documents every key (a test checks). Sections forbid unknown keys and
are frozen; validators say what is wrong in words a user can act on. Values that are Bybit
facts (categories, depths, the symbol spelling, the connection cap) come from
:mod:`mdgw.core.bybit_spec`; ZeroMQ endpoints and hosts are checked by :mod:`.endpoints`.
The object that holds them all and reads the sources is :mod:`.model`.
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from mdgw.core import wire
from mdgw.core.bybit_spec import (
    DEPTHS,
    MAX_NEW_CONNECTIONS,
    OPTION_DEPTHS,
    SYMBOL_PATTERN,
    Category,
    is_bybit_symbol,
)
from mdgw.core.errors import WireError
from mdgw.runtime.settings.endpoints import check_http_host, check_url, check_zmq_endpoint

__all__ = [
    "MAX_STREAM_CONNECTIONS",
    "BooksConfig",
    "BybitConfig",
    "IngestorConfig",
    "JournalConfig",
    "LogConfig",
    "MetricsConfig",
    "Port",
    "PrinterConfig",
    "SimulatorConfig",
    "StreamConfig",
    "ZmqConfig",
]

_INGESTOR_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# --- field validators -------------------------------------------------------------------


def _check_depth(value: object) -> object:
    if value == "full":
        return value
    if value in (*DEPTHS, *OPTION_DEPTHS) and not isinstance(value, bool):
        return value
    note = "; Bybit removed 500 in 2025" if value == 500 else ""
    allowed = ", ".join(map(str, DEPTHS))
    raise ValueError(
        f'depth must be one of {allowed}, "full" (25 or 100 for category option) '
        f"(got {value!r}{note})"
    )


def _check_symbol(value: str) -> str:
    if is_bybit_symbol(value):
        return value
    if is_bybit_symbol(value.upper()):
        raise ValueError(
            f"symbol {value!r} must be upper-case as Bybit spells it: {value.upper()!r}"
        )
    raise ValueError(
        f"symbol {value!r} must match {SYMBOL_PATTERN.pattern} (e.g. 'BTCUSDT', 'BTC-26DEC25')"
    )


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


Symbol = Annotated[str, AfterValidator(_check_symbol)]
# The values of bybit_spec.DEPTHS and OPTION_DEPTHS, spelled out because a Literal needs them
# so (a test checks), and "full" (orderbook.full).
Depth = Annotated[Literal[1, 25, 50, 100, 200, 1000, "full"], BeforeValidator(_check_depth)]
ZmqEndpoint = Annotated[str, AfterValidator(check_zmq_endpoint)]
# A file or directory path, relative to the working directory like ipc endpoints.
KeyPath = Annotated[str, Field(min_length=1)]

_SECTION = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --- sections ---------------------------------------------------------------------------


MAX_STREAM_CONNECTIONS = 4


class StreamConfig(BaseModel):
    """One ``[[bybit.streams]]`` entry: symbols of one category at one book depth."""

    model_config = _SECTION

    category: Category
    symbols: list[Symbol]
    depth: Depth
    trades: bool = True
    # Websockets carrying each of these topics: 2 or more is an A/B feed, the book builder
    # takes every u from whichever connection delivers it first (mdgw.core.arbiter).
    connections: Annotated[int, Field(ge=1, le=MAX_STREAM_CONNECTIONS)] = 1

    # Also subscribe orderbook.rpi.{SYMBOL} (50 levels with RPI sizes), published as `rpi`.
    rpi: bool = False

    @field_validator("depth")
    @classmethod
    def _depth_of_category(cls, depth: int | str, info: ValidationInfo) -> int | str:
        category = info.data.get("category")
        allowed: tuple[int | str, ...] = (
            OPTION_DEPTHS if category == "option" else (*DEPTHS, "full")
        )
        if category is not None and depth not in allowed:
            raise ValueError(
                f"depth must be one of {', '.join(map(str, allowed))} for category "
                f"{category} (got {depth})"
            )
        return depth

    @field_validator("connections")
    @classmethod
    def _one_connection_for_full(cls, connections: int, info: ValidationInfo) -> int:
        if connections > 1 and info.data.get("depth") == "full":
            raise ValueError(
                'depth "full" takes connections = 1 (its REST-snapshot sync is single-source)'
            )
        return connections

    @field_validator("rpi")
    @classmethod
    def _rpi_not_on_options(cls, rpi: bool, info: ValidationInfo) -> bool:
        if rpi and info.data.get("category") == "option":
            raise ValueError("Bybit has no RPI book for options (spot, linear, inverse only)")
        return rpi

    @field_validator("symbols")
    @classmethod
    def _not_empty(cls, symbols: list[str]) -> list[str]:
        if not symbols:
            raise ValueError("symbols must list at least one symbol")
        return symbols


def _default_streams() -> list[StreamConfig]:
    return [
        StreamConfig(category="linear", symbols=["BTCUSDT", "ETHUSDT"], depth=50),
        StreamConfig(category="inverse", symbols=["BTCUSD"], depth=50),
    ]


class BybitConfig(BaseModel):
    """``[bybit]``: where and how the ingestor talks to Bybit."""

    model_config = _SECTION

    ws_url: str = "wss://stream.bybit.com/v5/public"
    ping_interval: Annotated[float, Field(gt=0)] = 20.0
    silence_timeout: float = 30.0
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    backoff_initial: Annotated[float, Field(gt=0)] = 1.0
    backoff_max: float = 60.0
    # Bybit allows MAX_NEW_CONNECTIONS (500) new connections per 5 minutes per IP; stay under it.
    max_new_connections_per_5min: Annotated[int, Field(ge=1, le=MAX_NEW_CONNECTIONS)] = 450
    streams: list[StreamConfig] = Field(default_factory=_default_streams)
    # Subscribe system.status on {ws_url}/misc/status: one connection for the gateway.
    system_status: bool = True
    # REST for the orderbook.full snapshot (GET {rest_url}/v5/market/full_orderbook).
    rest_url: str = "https://api.bybit.com"
    rest_timeout: Annotated[float, Field(gt=0)] = 5.0
    # Bybit allows 600 REST requests per 5 s per IP; full-book snapshots stay far below.
    rest_max_per_second: Annotated[float, Field(gt=0, le=100)] = 2.0

    @field_validator("rest_url")
    @classmethod
    def _check_rest_url(cls, url: str) -> str:
        return check_url("rest_url", url, ("http", "https"))

    @field_validator("ws_url")
    @classmethod
    def _check_ws_url(cls, url: str) -> str:
        # The ingestor appends "/{category}".
        return check_url("ws_url", url, ("ws", "wss"))

    @field_validator("silence_timeout")
    @classmethod
    def _silence_after_ping(cls, timeout: float, info: ValidationInfo) -> float:
        ping = info.data.get("ping_interval")
        if ping is not None and timeout <= ping:
            raise ValueError(
                f"silence_timeout must be greater than ping_interval ({ping:g}), or a healthy "
                f"but quiet connection is replaced before its pong arrives (got {timeout:g})"
            )
        return timeout

    @field_validator("backoff_max")
    @classmethod
    def _max_not_below_initial(cls, backoff_max: float, info: ValidationInfo) -> float:
        initial = info.data.get("backoff_initial")
        if initial is not None and backoff_max < initial:
            raise ValueError(
                f"backoff_max must be at least backoff_initial ({initial:g}) (got {backoff_max:g})"
            )
        return backoff_max

    @field_validator("streams")
    @classmethod
    def _symbol_once_per_category(cls, streams: list[StreamConfig]) -> list[StreamConfig]:
        # A symbol may appear twice in a category only as depth 1 plus one deeper depth:
        # depth 1 then feeds the symbol's bbo only (fused by Bybit's seq, docs/wire-format).
        seen: dict[tuple[str, str, bool], int] = {}
        for index, stream in enumerate(streams):
            for symbol in stream.symbols:
                first = seen.setdefault((stream.category, symbol, stream.depth == 1), index)
                if first != index or stream.symbols.count(symbol) > 1:
                    where = f"streams {first} and {index}" if first != index else f"stream {index}"
                    raise ValueError(
                        f"symbol {symbol} appears more than once in category {stream.category} "
                        f"({where}); list each symbol once per category (or twice: at depth 1 "
                        "and at one deeper depth)"
                    )
        return streams


class ZmqConfig(BaseModel):
    """``[zmq]``: the four sockets book_builder binds (architecture.md) and their HWM."""

    model_config = _SECTION

    raw: ZmqEndpoint = "ipc://var/run/raw.sock"
    control: ZmqEndpoint = "ipc://var/run/control.sock"
    pub: ZmqEndpoint = "tcp://127.0.0.1:7100"
    snapshot: ZmqEndpoint = "tcp://127.0.0.1:7101"
    hwm: Annotated[int, Field(gt=0)] = 100_000
    # CURVE (mdgw.runtime.curve): encryption and client authentication on the tcp sockets.
    # Files are checked when a service that needs them starts, not here: a client host has
    # no server secret, and the book builder needs no client keypair.
    curve: bool = False
    curve_server_secret: KeyPath = "var/keys/server.key_secret"
    curve_server_public: KeyPath = "var/keys/server.key"
    curve_client_secret: KeyPath = "var/keys/client.key_secret"
    curve_authorized_dir: KeyPath = "var/keys/authorized"

    @field_validator("control", "pub", "snapshot")
    @classmethod
    def _distinct_endpoints(cls, endpoint: str, info: ValidationInfo) -> str:
        # Fields validate in order, so info.data holds the endpoints above this one.
        for other in ("raw", "control", "pub"):
            if other != info.field_name and info.data.get(other) == endpoint:
                raise ValueError(
                    f"{info.field_name} and {other} are both {endpoint!r}; "
                    "each socket needs its own endpoint"
                )
        return endpoint


class BooksConfig(BaseModel):
    """``[books]``: what book_builder publishes and how it resyncs."""

    model_config = _SECTION

    publish_depth: Annotated[int, Field(ge=1, le=1000)] = 25
    resync_timeout: Annotated[float, Field(gt=0)] = 5.0
    resync_min_interval: Annotated[float, Field(ge=0)] = 1.0
    # An ingestor sends a heartbeat every second: after this long without anything
    # from it, its books are marked resyncing (nothing stale passes for live).
    ingestor_timeout: Annotated[float, Field(gt=1.0)] = 3.0
    stale_after: Annotated[float, Field(gt=0)] = 60.0
    # Conflation: at most this many `book` (and `bbo`) publishes a second per book, the
    # latest state winning; 0 publishes every frame.
    max_rate: Annotated[float, Field(ge=0)] = 0.0


class JournalConfig(BaseModel):
    """``[journal]``: book_builder's record of every hub input, for ``mdgw.replay``."""

    model_config = _SECTION

    enabled: bool = False
    dir: KeyPath = "var/journal"
    segment_mb: Annotated[int, Field(ge=1, le=65536)] = 64
    retain_gb: Annotated[float, Field(gt=0)] = 20.0
    # The writer hands the builder's inputs over every 100 ms and writes them within
    # flush_interval of their arrival; below 0.2 s that hand-over would be most of it.
    flush_interval: Annotated[float, Field(ge=0.2, le=60)] = 1.0


class LogConfig(BaseModel):
    """``[log]``: structlog output of every service."""

    model_config = _SECTION

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Literal["json", "console", "auto"] = "auto"
    stats_interval: Annotated[float, Field(gt=0)] = 10.0


class IngestorConfig(BaseModel):
    """``[ingestor]``: identity and limits of one ingestor process."""

    model_config = _SECTION

    id: str = "ingestor"
    max_frame_bytes: Annotated[int, Field(gt=0)] = 4_194_304

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _INGESTOR_ID_RE.match(value):
            raise ValueError(
                f"id must be 1 to 64 characters from A-Z a-z 0-9 _ . - (got {value!r})"
            )
        return value


Port = Annotated[int, Field(ge=0, le=65535)]


class MetricsConfig(BaseModel):
    """``[metrics]``: the HTTP ``/metrics`` + ``/health`` endpoint of each service.

    One port per service; 0 turns that service's endpoint off. A port that is taken is
    found when the service starts (exit 78 naming the key), not here.
    """

    model_config = _SECTION

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    book_builder: Port = 9110
    ingestor: Port = 9111
    printer: Port = 0
    # /health turns 503 when a book has not been live (or had no frame) for this long.
    unhealthy_after: Annotated[float, Field(gt=0)] = 10.0

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str) -> str:
        return check_http_host(host)


class SimulatorConfig(BaseModel):
    """``[simulator]``: only read by the simulator."""

    model_config = _SECTION

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 7200
    seed: int = 1
    rate: Annotated[float, Field(gt=0)] = 20.0
    trade_rate: Annotated[float, Field(ge=0)] = 2.0
    # Deeper than the deepest Bybit topic (1000) so orderbook.1000 snapshots are full.
    levels: Annotated[int, Field(ge=1000)] = 1500


def _check_topic_spec(value: str) -> str:
    # The printer's TOPIC arguments, checked here so that a bad one stops it at start (78).
    try:
        wire.subscription(value)
    except WireError as exc:
        raise ValueError(
            f"{exc.reason}; a topic is channel[.category[.SYMBOL]], e.g. book, book.linear, "
            "book.inverse.BTCUSD"
        ) from None
    return value


with warnings.catch_warnings():
    # The key is named ``json`` by the config contract; pydantic warns that it shadows
    # BaseModel's deprecated ``.json()`` method, which nothing here calls.
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class PrinterConfig(BaseModel):
        """``[printer]``: what the printer prints when started without TOPIC or --json."""

        model_config = _SECTION

        topics: list[Annotated[str, AfterValidator(_check_topic_spec)]] = Field(
            default_factory=list
        )
        json: bool = False  # type: ignore[assignment]  # see above
