"""Loading the configuration: choose the file, read it with the environment, or exit 78.

- The file is ``config/gateway.toml`` (relative to the current directory) unless
  ``MDGW_CONFIG=path`` names another one. It must exist.
- Every key can be overridden by ``MDGW_<SECTION>__<KEY>`` (lists and tables as JSON).
  Precedence: environment > file > default.
- Unknown keys, unknown sections and bad values are errors. :func:`load_settings` reports
  the first one as a :class:`ConfigError` naming its dotted key (``bybit.streams.0.depth``);
  :func:`settings_or_exit` prints that one line and exits with :data:`EX_CONFIG` (78).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from mdgw.compiled import PURE_ENV
from mdgw.runtime.settings.errors import (
    ConfigError,
    env_decode_error,
    env_var_for,
    toml_error,
    validation_error,
)
from mdgw.runtime.settings.model import (
    CONFIG_ENV_VAR,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    Settings,
    config_path,
    read_settings,
)

__all__ = ["EX_CONFIG", "load_settings", "settings_or_exit"]

EX_CONFIG: Final = 78  # sysexits.h: configuration error


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file and the environment into a validated :class:`Settings`.

    *path* defaults to ``$MDGW_CONFIG``, else ``config/gateway.toml``; *env* defaults to
    ``os.environ``. Raises :class:`ConfigError` for the first problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    toml_file = config_path(path, environ)
    # Which knob chose the file, for the message when it is missing.
    chooser = "path" if path is not None else CONFIG_ENV_VAR
    if not toml_file.exists():
        raise ConfigError(chooser, f"file not found (cwd {Path.cwd()})", file=toml_file)
    if not toml_file.is_file():
        raise ConfigError(chooser, "not a regular file", file=toml_file)
    _check_env_names(environ, toml_file)

    try:
        return read_settings(toml_file, environ)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(exc, toml_file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(chooser, f"cannot read: {exc}", file=toml_file) from None
    except SettingsError as exc:
        raise env_decode_error(exc, environ, toml_file) from None
    except ValidationError as exc:
        raise validation_error(exc, environ, toml_file) from None


def settings_or_exit(path: str | Path | None = None) -> Settings:
    """:func:`load_settings`, or one line on stderr and exit status 78 (EX_CONFIG)."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(EX_CONFIG) from None


def _check_env_names(environ: Mapping[str, str], toml_file: Path) -> None:
    """Refuse MDGW_* variables that name no section: pydantic-settings would ignore them."""
    sections = list(Settings.model_fields)
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in (CONFIG_ENV_VAR, PURE_ENV):
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
