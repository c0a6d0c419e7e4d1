"""Logging for every service: structlog, one JSON object per line (docs/operations.md, "Logs").

The structlog half is the production recipe of structlog's docs/performance.md: a filtering
bound logger (below-level calls are ``return None``), ``merge_contextvars``, the level,
an ISO UTC ``timestamp``, orjson rendering straight to bytes, cached loggers. Every line
also carries ``service``.

The standard-library half (websockets, asyncio, anything else using ``logging``) goes
through ``structlog.stdlib.ProcessorFormatter`` into the same stream, in the same format,
so stdout stays one JSON object per line whoever logs.

Context such as ``category``, ``symbol`` or ``conn_id`` is bound with
``structlog.contextvars.bind_contextvars`` (or ``get_logger(**initial)``), not repeated in
every call.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO, Final, TextIO, cast

import orjson
import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["LEVELS", "configure_logging", "get_logger"]

LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS: Final = ("json", "console", "auto")

# websockets logs every frame at DEBUG: never let it below WARNING.
_CHATTY_LOGGERS: Final = ("websockets",)

# The handler configure_logging put on the root logger, replaced when it is called again.
_root_handler: logging.Handler | None = None


class _AddService:
    """Processor adding ``service`` to every event, also in threads and after
    ``clear_contextvars()``, which a contextvar binding would not survive."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", self._service)
        return event_dict


class _BinaryLineHandler(logging.Handler):
    """Writes formatted stdlib records as lines to the binary stream structlog writes to,
    so both halves go through the same buffer and stay in order."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__()
        self._file = file

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Handler.handle() holds the handler's lock around emit().
            self._file.write(self.format(record).encode("utf-8", "backslashreplace") + b"\n")
            self._file.flush()
        except Exception:
            self.handleError(record)


def _dumps_text(obj: Any, **kwargs: Any) -> str:
    return orjson.dumps(obj, **kwargs).decode()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(
    service: str, level: str = "info", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """Send structlog and stdlib logging of this process to *stream* (default stdout).

    *fmt* ``json`` writes one JSON object per line; ``console`` writes aligned text for
    people; ``auto`` means console on a terminal and JSON otherwise (under supervisord).
    Calling it again replaces the previous configuration; loggers that already logged
    keep theirs (they are cached on first use), so call it once, first thing in main.
    """
    global _root_handler
    numeric_level = LEVELS.get(level.lower())
    if numeric_level is None:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)} (got {level!r})")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    out = sys.stdout if stream is None else stream
    as_json = fmt == "json" or (fmt == "auto" and not _isatty(out))

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _AddService(service),
        structlog.processors.StackInfoRenderer(),
    ]
    binary: BinaryIO | None = getattr(out, "buffer", None) if as_json else None
    logger_factory: Any
    if as_json:
        # The traceback becomes a list of frames in one "exception" field: never multi-line.
        # No locals: they can be huge (books) and do not belong in logs.
        exceptions: list[Processor] = [
            ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        ]
        text_renderer: Processor = structlog.processors.JSONRenderer(
            serializer=_dumps_text, option=orjson.OPT_NON_STR_KEYS
        )
        if binary is not None:
            # orjson gives bytes: write them as they are (structlog's BytesLoggerFactory).
            renderer: Processor = structlog.processors.JSONRenderer(
                serializer=orjson.dumps, option=orjson.OPT_NON_STR_KEYS
            )
            logger_factory = structlog.BytesLoggerFactory(file=binary)
        else:
            renderer = text_renderer
            logger_factory = structlog.WriteLoggerFactory(file=out)
    else:
        exceptions = []  # ConsoleRenderer prints exc_info after the line itself.
        text_renderer = renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
        logger_factory = structlog.WriteLoggerFactory(file=out)

    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        context_class=dict,
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            text_renderer,
        ],
    )
    handler: logging.Handler = (
        _BinaryLineHandler(binary) if binary is not None else logging.StreamHandler(out)
    )
    handler.setFormatter(formatter)

    root = logging.getLogger()
    if _root_handler is not None:
        root.removeHandler(_root_handler)
        _root_handler.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _root_handler = handler
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))


def get_logger(**initial: Any) -> FilteringBoundLogger:
    """A structlog logger with *initial* context bound; configure_logging first."""
    return cast(FilteringBoundLogger, structlog.get_logger(**initial))
