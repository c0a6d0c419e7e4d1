"""Configuration errors: one line naming the file and the dotted key, in the user's words.

pydantic and pydantic-settings report problems in their own terms (a ``loc`` tuple, an error
type, the top-level field of a bad environment variable). The functions here translate them:
the dotted key (``bybit.streams.0.depth``), what is wrong with it, which ``MDGW_*`` variable
set it, and a close match for a misspelt key.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings.exceptions import SettingsError

from mdgw.runtime.settings.model import CONFIG_ENV_VAR, ENV_NESTED_DELIMITER, ENV_PREFIX, Settings

__all__ = ["ConfigError", "env_decode_error", "env_var_for", "toml_error", "validation_error"]


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


_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)$")


def toml_error(exc: tomllib.TOMLDecodeError, toml_file: Path) -> ConfigError:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    where = match.group(1) if match else "toml"
    problem = message[: match.start()] if match else message
    return ConfigError(where, f"invalid TOML: {problem}", file=toml_file)


def env_decode_error(
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


def validation_error(
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
