"""Bybit's ``system.status`` notices, each published once per version (sans-I/O).

Bybit pushes maintenance and incident notices on ``/v5/public/misc/status`` (docs:
"System Status"): a frame lists notices, each with an ``id``, a ``state`` (``scheduled``,
``ongoing``, ``completed``, ``canceled``) and ``begin``/``end`` times. A notice comes again
whenever anything about it changes (its state, its expected end), and the whole list comes
again after every (re)subscription. The gateway publishes a notice when it is new or when
one of its fields changed, never twice the same version: a reconnect replays nothing.

Interruptions shorter than 10 s are not announced by Bybit.

:meth:`NoticeBoard.maintenance` says which notices are under way at a given time and
:meth:`NoticeBoard.planned` which are announced for later, for health and metrics (this
module reads no clock: the caller passes the time).
"""

from __future__ import annotations

from mdgw.core import wire
from mdgw.core.bybit import StatusNotice

__all__ = ["NoticeBoard"]

# Notices are few (a handful a month); this bounds memory against hostile input.
MAX_NOTICES = 1024
ACTIVE_STATES = frozenset({"ongoing"})


class NoticeBoard:
    """The latest version of every notice seen; says which ones are new."""

    __slots__ = ("_notices",)

    def __init__(self) -> None:
        self._notices: dict[str, StatusNotice] = {}

    def update(self, notices: list[StatusNotice]) -> list[StatusNotice]:
        """The notices of one frame that are new or changed, in the frame's order."""
        changed: list[StatusNotice] = []
        known = self._notices
        for notice in notices:
            if known.get(notice.id) == notice:
                continue
            if notice.id not in known and len(known) >= MAX_NOTICES:
                # Forget the oldest finished notice to make room (dicts keep insertion order).
                done = next(
                    (k for k, n in known.items() if n.state in ("completed", "canceled")),
                    next(iter(known)),
                )
                del known[done]
            known[notice.id] = notice
            changed.append(notice)
        return changed

    @staticmethod
    def payload(notice: StatusNotice, seq: int, pub_ns: int, recv_ns: int) -> bytes:
        """The ``status.bybit.`` payload of one notice (:func:`wire.encode_exchange_status`)."""
        return wire.encode_exchange_status(
            seq=seq,
            pub_ns=pub_ns,
            recv_ns=recv_ns,
            notice_id=notice.id,
            title=notice.title,
            state=notice.state,
            begin=notice.begin,
            end=notice.end,
            href=notice.href,
            service_types=notice.service_types,
            product=notice.product,
            maintain_type=notice.maintain_type,
            env=notice.env,
        )

    def notices(self) -> list[StatusNotice]:
        return list(self._notices.values())

    def maintenance(self, now_ms: int) -> list[StatusNotice]:
        """Notices under way at ``now_ms``: state ``ongoing``, or ``scheduled`` with
        ``begin <= now_ms < end`` (Bybit may be late to flip the state)."""
        return [
            n
            for n in self._notices.values()
            if n.state in ACTIVE_STATES or (n.state == "scheduled" and n.begin <= now_ms < n.end)
        ]

    def planned(self, now_ms: int) -> list[StatusNotice]:
        """Notices announced for later: state ``scheduled`` with ``begin > now_ms``."""
        return [n for n in self._notices.values() if n.state == "scheduled" and n.begin > now_ms]
