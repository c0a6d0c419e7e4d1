"""The simulated ``system.status`` topic (``/v5/public/misc/status``): notices and frames.

Bybit pushes maintenance and incident notices there (docs: "System Status"). The simulator
keeps the notices a test or an operator posted (``POST /sim/system_status``), sends the
whole list to a new subscriber and each posted notice to every subscriber, in Bybit's shape:
``{"topic":"system.status","ts":…,"data":[{"id","title","state","begin","end","href",
"serviceTypes","product","uidSuffix","maintainType","env"}]}`` with ``begin``/``end`` as
strings of milliseconds. Posting the same notice twice sends it twice (a test of the
gateway's dedup).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["STATUS_PATH", "STATUS_TOPIC", "NoticeBoard", "status_frame"]

STATUS_PATH: Final = "misc/status"
STATUS_TOPIC: Final = "system.status"
STATES: Final = ("scheduled", "ongoing", "completed", "canceled")


class NoticeBoard:
    """The notices posted so far, in posting order (a notice posted again moves to the end)."""

    def __init__(self) -> None:
        self._notices: dict[str, dict[str, Any]] = {}

    def post(
        self,
        *,
        notice_id: str,
        state: str,
        begin_ms: int,
        end_ms: int,
        title: str = "",
        service_types: tuple[int, ...] = (5,),
    ) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if not notice_id:
            raise ValueError("id must not be empty")
        notice = {
            "id": notice_id,
            "title": title or f"Scheduled maintenance {notice_id}",
            "state": state,
            "begin": str(begin_ms),
            "end": str(end_ms),
            "href": "",
            "serviceTypes": list(service_types),
            "product": [1, 2, 3, 4],
            "uidSuffix": [],
            "maintainType": 1,
            "env": 1,
        }
        self._notices.pop(notice_id, None)
        self._notices[notice_id] = notice
        return notice

    def all(self) -> list[dict[str, Any]]:
        return list(self._notices.values())


def status_frame(notices: list[dict[str, Any]], ts_ms: int) -> bytes:
    return orjson.dumps({"topic": STATUS_TOPIC, "ts": ts_ms, "data": notices})
