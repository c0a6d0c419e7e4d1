"""NoticeBoard's maintenance and planned windows, at a given time (no clock)."""

from __future__ import annotations

from mdgw.core.bybit import StatusNotice
from mdgw.core.system_status import NoticeBoard


def notice(nid: str, state: str, begin: int, end: int) -> StatusNotice:
    return StatusNotice(nid, nid, state, begin, end, "", (5,), (1,), "1", "1")


def test_a_window_is_planned_then_active_by_time_or_state_then_over() -> None:
    board = NoticeBoard()
    board.update([notice("a", "scheduled", 1000, 2000), notice("b", "completed", 0, 500)])
    assert [n.id for n in board.planned(999)] == ["a"] and board.maintenance(999) == []
    # Bybit may be late to flip the state: a scheduled window whose begin passed is active.
    assert board.planned(1000) == [] and [n.id for n in board.maintenance(1000)] == ["a"]
    assert board.maintenance(2000) == [] and board.planned(2000) == []
    board.update([notice("a", "ongoing", 1000, 2500)])  # running late: ongoing past its end
    assert [n.id for n in board.maintenance(3000)] == ["a"]
    board.update([notice("a", "completed", 1000, 2600)])
    assert board.maintenance(3000) == [] and board.planned(0) == []
