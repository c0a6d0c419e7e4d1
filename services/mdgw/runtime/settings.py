"""The gateway's configuration: one TOML file, overridable key by key from the environment.

This is the config contract of DESIGN §5; docs/configuration.md documents every key.

- The file is ``config/gateway.toml`` (relative to the current directory) unless
  ``MDGW_CONFIG=path`` names another one. It must exist.
- Every key can be overridden by ``MDGW_<SECTION>__<KEY>`` (lists and tables as JSON).
  Precedence: environment > file > default.
- Unknown keys, unknown sections and bad values are errors. :func:`load_settings` reports
  the first one as a :class:`ConfigError` naming its dotted key (``bybit.streams.0.depth``);
  :func:`settings_or_exit` prints that one line and exits with :data:`EX_CONFIG` (78).

Pydantic lives here, at the config boundary, and nowhere near the hot paths.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

__all__ = [
    "BYBIT_DEPTHS",
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "EX_CONFIG",
    "BooksConfig",
    "BybitConfig",
    "ConfigError",
    "IngestorConfig",
    "JournalConfig",
    "LogConfig",
    "Settings",
    "SimulatorConfig",
    "StreamConfig",
    "ZmqConfig",
    "check_zmq_endpoint",
    "env_var_for",
    "load_settings",
    "settings_or_exit",
]

DEFAULT_CONFIG_PATH: Final = Path("config/gateway.toml")
CONFIG_ENV_VAR: Final = "MDGW_CONFIG"
ENV_PREFIX: Final = "MDGW_"
ENV_NESTED_DELIMITER: Final = "__"
EX_CONFIG: Final = 78  # sysexits.h: configuration error

# Order-book depths Bybit v5 offers on the public streams (all three categories).
BYBIT_DEPTHS: Final = (1, 50, 200, 1000)
_SYMBOL_RE: Final = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")
_INGESTOR_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HOSTNAME_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL; libzmq
# refuses longer ipc paths with ENAMETOOLONG at bind/connect time, far from the config.
_IPC_PATH_MAX_BYTES: Final = 107


class ConfigError(Exception):
    """A configuration problem, reported as one line naming the file and the dotted key."""

    def __init__(self, key: str, problem: str, *, file: str | Path | None = None) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem
        self.file = None if file is None else str(file)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file is not None else ""
        # One line, always: the message is printed as-is to stderr by settings_or_exit.
        return " ".join(f"config error: {where}{self.key}: {self.problem}".split())


# --- field validators -------------------------------------------------------------------


def _check_depth(value: object) -> object:
    if value in BYBIT_DEPTHS and not isinstance(value, bool):
        return value
    note = "; Bybit removed 500 in 2025" if value == 500 else ""
    allowed = ", ".join(map(str, BYBIT_DEPTHS))
    raise ValueError(f"depth must be one of {allowed} (got {value!r}{note})")


def _check_symbol(value: str) -> str:
    if _SYMBOL_RE.match(value):
        return value
    if _SYMBOL_RE.match(value.upper()):
        raise ValueError(
            f"symbol {value!r} must be upper-case as Bybit spells it: {value.upper()!r}"
        )
    raise ValueError(
        f"symbol {value!r} must match {_SYMBOL_RE.pattern} (e.g. 'BTCUSDT', 'BTC-26DEC25')"
    )


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


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


Symbol = Annotated[str, AfterValidator(_check_symbol)]
Depth = Annotated[Literal[1, 50, 200, 1000], BeforeValidator(_check_depth)]
ZmqEndpoint = Annotated[str, AfterValidator(check_zmq_endpoint)]
# A file or directory path, relative to the working directory like ipc endpoints.
KeyPath = Annotated[str, Field(min_length=1)]

_SECTION = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --- sections ---------------------------------------------------------------------------


MAX_STREAM_CONNECTIONS = 4


class StreamConfig(BaseModel):
    """One ``[[bybit.streams]]`` entry: symbols of one category at one book depth."""

    model_config = _SECTION

    category: Literal["spot", "linear", "inverse"]
    symbols: list[Symbol]
    depth: Depth
    trades: bool = True
    # Websockets carrying each of these topics: 2 or more is an A/B feed, the book builder
    # takes every u from whichever connection delivers it first (mdgw.core.arbiter).
    connections: Annotated[int, Field(ge=1, le=MAX_STREAM_CONNECTIONS)] = 1

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
    # Bybit allows 500 new connections per 5 minutes per IP; stay under it.
    max_new_connections_per_5min: Annotated[int, Field(ge=1, le=500)] = 450
    streams: list[StreamConfig] = Field(default_factory=_default_streams)

    @field_validator("ws_url")
    @classmethod
    def _check_ws_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(
                f"ws_url must start with ws:// or wss:// and name a host (got {url!r})"
            )
        # The ingestor appends "/{category}".
        return url.rstrip("/")

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
        seen: dict[tuple[str, str], int] = {}
        for index, stream in enumerate(streams):
            for symbol in stream.symbols:
                first = seen.setdefault((stream.category, symbol), index)
                if first != index or stream.symbols.count(symbol) > 1:
                    where = f"streams {first} and {index}" if first != index else f"stream {index}"
                    raise ValueError(
                        f"symbol {symbol} appears more than once in category {stream.category} "
                        f"({where}); list each symbol once per category"
                    )
        return streams


class ZmqConfig(BaseModel):
    """``[zmq]``: the four sockets book_builder binds (DESIGN §1) and their high-water mark."""

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


# --- the settings object ----------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    toml_file: Path
    environ: Mapping[str, str]


# load_settings passes the file and environment it resolved to settings_customise_sources,
# which pydantic-settings calls as a classmethod with no room for arguments of our own.
_inputs: ContextVar[_Inputs | None] = ContextVar("mdgw_settings_inputs", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Settings are case-insensitive: pydantic-settings matches lower-cased names.
        return {name.lower(): value for name, value in self._environ.items()}


class Settings(BaseSettings):
    """All of the gateway's configuration. Build it with :func:`load_settings`.

    Constructing it directly (tests) reads the same sources, ``$MDGW_CONFIG`` or
    ``config/gateway.toml`` if it exists plus ``os.environ``, with keyword arguments winning.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
    )

    bybit: BybitConfig = BybitConfig()
    zmq: ZmqConfig = ZmqConfig()
    books: BooksConfig = BooksConfig()
    journal: JournalConfig = JournalConfig()
    log: LogConfig = LogConfig()
    ingestor: IngestorConfig = IngestorConfig()
    simulator: SimulatorConfig = SimulatorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        inputs = _inputs.get() or _Inputs(_config_path(None, os.environ), os.environ)
        # Earlier sources win: explicit arguments, then the environment, then the file.
        # No .env file and no secrets directory: one file plus the environment is the contract.
        return (
            init_settings,
            _MappingEnvSource(settings_cls, inputs.environ),
            TomlConfigSettingsSource(settings_cls, toml_file=inputs.toml_file),
        )


# --- loading ----------------------------------------------------------------------------


def env_var_for(dotted_key: str) -> str:
    """The environment variable that overrides *dotted_key*.

    ``bybit.ping_interval`` -> ``MDGW_BYBIT__PING_INTERVAL``. List items cannot be set one
    by one, so ``bybit.streams.0.depth`` and ``bybit.streams[].depth`` give the variable
    of the whole list, ``MDGW_BYBIT__STREAMS``.
    """
    names: list[str] = []
    for part in dotted_key.split("."):
        name = part.removesuffix("[]")
        if not name or name.isdigit():
            break
        names.append(name.upper())
        if part.endswith("[]"):
            break
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(names)


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file and the environment into a validated :class:`Settings`.

    *path* defaults to ``$MDGW_CONFIG``, else ``config/gateway.toml``; *env* defaults to
    ``os.environ``. Raises :class:`ConfigError` for the first problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    toml_file = _config_path(path, environ)
    # Which knob chose the file, for the message when it is missing.
    chooser = "path" if path is not None else CONFIG_ENV_VAR
    if not toml_file.exists():
        raise ConfigError(chooser, f"file not found (cwd {Path.cwd()})", file=toml_file)
    if not toml_file.is_file():
        raise ConfigError(chooser, "not a regular file", file=toml_file)
    _check_env_names(environ, toml_file)

    token = _inputs.set(_Inputs(toml_file, environ))
    try:
        return Settings()
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, toml_file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(chooser, f"cannot read: {exc}", file=toml_file) from None
    except SettingsError as exc:
        raise _env_decode_error(exc, environ, toml_file) from None
    except ValidationError as exc:
        raise _validation_error(exc, environ, toml_file) from None
    finally:
        _inputs.reset(token)


def settings_or_exit(path: str | Path | None = None) -> Settings:
    """:func:`load_settings`, or one line on stderr and exit status 78 (EX_CONFIG)."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None


def _config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path:
    if path is not None:
        return Path(path)
    return Path(environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def _check_env_names(environ: Mapping[str, str], toml_file: Path) -> None:
    """Refuse MDGW_* variables that name no section: pydantic-settings would ignore them."""
    sections = list(Settings.model_fields)
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_ENV_VAR:
            continue
        head = upper[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER, 1)[0].lower()
        if head in sections:
            continue
        hint = f"sections are {', '.join(sections)}"
        for section in sections:
            if head.startswith(section + "_"):
                key = head[len(section) + 1 :]
                hint = f"did you mean {env_var_for(f'{section}.{key}')}? ('__' separates the key)"
        raise ConfigError(name, f"unknown environment variable; {hint}", file=toml_file)


_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)$")


def _toml_error(exc: tomllib.TOMLDecodeError, toml_file: Path) -> ConfigError:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    where = match.group(1) if match else "toml"
    problem = message[: match.start()] if match else message
    return ConfigError(where, f"invalid TOML: {problem}", file=toml_file)


def _env_decode_error(
    exc: SettingsError, environ: Mapping[str, str], toml_file: Path
) -> ConfigError:
    # pydantic-settings only names the top-level field; find the variable that is not JSON.
    for name, value in environ.items():
        dotted = _dotted_for_env(name)
        if dotted is None or not _is_structured(tuple(dotted.split("."))):
            continue
        try:
            json.loads(value)
        except ValueError as err:
            return ConfigError(dotted, f"env {name} is not valid JSON: {err}", file=toml_file)
    return ConfigError("environment", str(exc), file=toml_file)


def _dotted_for_env(name: str) -> str | None:
    upper = name.upper()
    if not upper.startswith(ENV_PREFIX) or upper == CONFIG_ENV_VAR:
        return None
    return ".".join(upper[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER))


def _validation_error(
    exc: ValidationError, environ: Mapping[str, str], toml_file: Path
) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    problem = _describe(error, loc)
    source = _env_source(loc, environ)
    if source is not None:
        problem += f" (env {source} is set)"
    return ConfigError(".".join(map(str, loc)) or "settings", problem, file=toml_file)


def _describe(error: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    message = str(error["msg"])
    if kind == "value_error":
        # Our own validators: the message already shows the offending value.
        return message.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        return f"unknown key (known keys here: {', '.join(known) or 'none'})"
    if kind == "missing":
        return "required key is missing"
    if kind == "model_type":
        return f"must be a table (got {_show(error['input'])})"
    for subject in ("Input should", "String should", "List should", "Value should"):
        if message.startswith(subject):
            message = "must" + message.removeprefix(subject)
            break
    return f"{message} (got {_show(error['input'])})"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Settings
    for part in loc:
        if isinstance(part, int):
            continue  # an index into a list of models
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model a field holds, directly or as list items."""
    if get_origin(annotation) in (list, Annotated):
        return _model_in(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    model = _model_at(loc)
    return [] if model is None else list(model.model_fields)


def _is_structured(loc: tuple[str, ...]) -> bool:
    """Whether the key holds a table or a list, which the environment gives as JSON."""
    model = _model_at(loc[:-1])
    if model is None or loc[-1] not in model.model_fields:
        return False
    annotation = model.model_fields[loc[-1]].annotation
    return _model_in(annotation) is not None or get_origin(annotation) is list


def _env_source(loc: tuple[int | str, ...], environ: Mapping[str, str]) -> str | None:
    """The most specific set MDGW_* variable that covers *loc*, if any."""
    upper = {name.upper(): name for name in environ}
    for end in range(len(loc), 0, -1):
        candidate = env_var_for(".".join(map(str, loc[:end])))
        if candidate != ENV_PREFIX and candidate in upper:
            return upper[candidate]
    return None
