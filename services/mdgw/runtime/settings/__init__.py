"""The gateway's configuration: one TOML file, overridable key by key from the environment.

docs/configuration.md documents every key. Pydantic lives here, at the config boundary, and
nowhere near the hot paths. The package re-exports the names services use:

- :mod:`.sections`: the sections, every key with its default and its check;
- :mod:`.model`: :class:`Settings` (all sections) and the sources it reads;
- :mod:`.loading`: :func:`load_settings` and :func:`settings_or_exit` (one line, exit 78);
- :mod:`.errors`: :class:`ConfigError` and the translation of pydantic's errors into it;
- :mod:`.endpoints`: :func:`check_zmq_endpoint` and the other endpoint checks.
"""

from __future__ import annotations

from mdgw.runtime.settings.endpoints import check_http_host, check_zmq_endpoint
from mdgw.runtime.settings.errors import ConfigError, env_var_for
from mdgw.runtime.settings.loading import EX_CONFIG, load_settings, settings_or_exit
from mdgw.runtime.settings.model import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    Settings,
)
from mdgw.runtime.settings.sections import (
    BooksConfig,
    BybitConfig,
    IngestorConfig,
    JournalConfig,
    LogConfig,
    MetricsConfig,
    Port,
    PrinterConfig,
    SimulatorConfig,
    StreamConfig,
    ZmqConfig,
)

__all__ = [
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
    "MetricsConfig",
    "Port",
    "PrinterConfig",
    "Settings",
    "SimulatorConfig",
    "StreamConfig",
    "ZmqConfig",
    "check_http_host",
    "check_zmq_endpoint",
    "env_var_for",
    "load_settings",
    "settings_or_exit",
]
