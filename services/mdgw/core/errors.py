"""The one error tree of mdgw's core.

Everything the sans-I/O core rejects is reported with one of these exceptions, and
nothing else escapes a core decoder: shells catch :class:`MdgwError` (or a subclass),
count it, log it once with context and carry on.

- :class:`ParseError`: a Bybit frame that is not what Bybit's v5 public protocol
  says it is (bad JSON, wrong types, missing fields, impossible values). ``topic``
  is set when the frame could still be attributed to a topic, so the book builder
  can resync exactly that book.
- :class:`WireError`: a malformed gateway message: raw envelope, published
  payload, control message or snapshot request.
"""

from __future__ import annotations


class MdgwError(Exception):
    """Base of every error the core raises on bad input."""


class ParseError(MdgwError):
    """A Bybit frame could not be decoded."""

    def __init__(self, reason: str, topic: str | None = None) -> None:
        super().__init__(reason if topic is None else f"{reason} (topic {topic})")
        self.reason = reason
        self.topic = topic


class UnsupportedTopicError(ParseError):
    """A well-formed frame of a topic the gateway does not handle (``tickers.*``, ...)."""


class WireError(MdgwError):
    """A gateway wire message (envelope, payload, control, snapshot) is malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
