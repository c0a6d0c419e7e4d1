"""The settings object: all sections in one :class:`Settings`, and the sources it reads.

:class:`Settings` reads its sources (explicit arguments > environment > TOML file) in
``settings_customise_sources``; :func:`mdgw.runtime.settings.load_settings` chooses the file
and the environment and turns validation errors into one-line :class:`ConfigError` s. The
sections and their keys are in :mod:`.sections`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mdgw.runtime.settings.sections import (
    BooksConfig,
    BybitConfig,
    IngestorConfig,
    JournalConfig,
    LogConfig,
    MetricsConfig,
    PrinterConfig,
    SimulatorConfig,
    ZmqConfig,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "Settings",
    "config_path",
    "read_settings",
]

DEFAULT_CONFIG_PATH: Final = Path("config/gateway.toml")
CONFIG_ENV_VAR: Final = "MDGW_CONFIG"
ENV_PREFIX: Final = "MDGW_"
ENV_NESTED_DELIMITER: Final = "__"


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
    printer: PrinterConfig = PrinterConfig()
    metrics: MetricsConfig = MetricsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        inputs = _inputs.get() or _Inputs(config_path(None, os.environ), os.environ)
        # Earlier sources win: explicit arguments, then the environment, then the file.
        # No .env file and no secrets directory: one file plus the environment is the contract.
        return (
            init_settings,
            _MappingEnvSource(settings_cls, inputs.environ),
            TomlConfigSettingsSource(settings_cls, toml_file=inputs.toml_file),
        )


def config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path:
    """The config file: *path*, else ``$MDGW_CONFIG``, else ``config/gateway.toml``."""
    if path is not None:
        return Path(path)
    return Path(environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def read_settings(toml_file: Path, environ: Mapping[str, str]) -> Settings:
    """:class:`Settings` from exactly this file and this environment (not ``os.environ``).

    Raises what pydantic-settings raises; :func:`mdgw.runtime.settings.load_settings`
    translates it.
    """
    token = _inputs.set(_Inputs(toml_file, environ))
    try:
        return Settings()
    finally:
        _inputs.reset(token)
