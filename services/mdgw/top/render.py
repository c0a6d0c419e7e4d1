"""The screen of ``mdgw top``, drawn with rich from a :class:`~mdgw.top.model.TopView`."""

from __future__ import annotations

import io
from typing import Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from mdgw.top.model import TopView

__all__ = ["render", "render_text"]

STATE_STYLES: Final = {
    "live": "bold green",
    "resyncing": "bold yellow",
    "stale": "bold red",
    "new": "cyan",
    "subscribed": "green",
    "subscribing": "yellow",
    "connecting": "red",
    "ok": "bold green",
    "degraded": "bold red",
    "unreachable": "bold red",
}


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _state(value: str) -> Text:
    return Text(value, style=STATE_STYLES.get(value, ""))


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)


def header(view: TopView) -> RenderableType:
    line = Text.assemble(
        ("mdgw top", "bold"),
        "  book_builder ",
        (view.builder_url, "dim"),
        " ",
        _state(view.builder_status),
        f"  ingestors connected: {_int(view.ingestors_connected)}",
    )
    conns = Text("connections: ")
    if not view.connections:
        conns.append("none", style="red")
    for conn in view.connections:
        age = "" if conn.last_frame_age_s is None else f" {conn.last_frame_age_s:.1f}s"
        conns.append(f"{conn.source}/{conn.name} ")
        conns.append(conn.state, style=STATE_STYLES.get(conn.state, ""))
        conns.append(f"{age}   ")
    totals = Text(
        f"frames/s in {_num(view.frames_per_s)} · books/s out {_num(view.books_per_s)} · "
        f"ws frames/s {_num(view.ws_frames_per_s)} · "
        f"publish p99 <= {_num(view.publish_p99_ms, 3)} ms · pub drops {_int(view.pub_dropped)} · "
        f"resyncs {view.resyncs} · ws reconnects {_int(view.reconnects)}"
    )
    parts: list[RenderableType] = [line, conns, totals]
    if view.sources:
        sources = Text("sources (first / lag): ")
        for src in view.sources:
            share = "-" if src.first_share is None else f"{src.first_share:.0%}"
            lag = "-" if src.lag_ms is None else f"{src.lag_ms:.1f} ms"
            style = "" if src.connections else "dim"
            sources.append(f"{src.name} {share} / {lag}", style=style)
            if src.failovers or src.gaps:
                sources.append(f" failovers {src.failovers} gaps {src.gaps}", style="yellow")
            sources.append("   ")
        parts.append(sources)
    for window in view.maintenance:
        parts.append(Text(f"~ {window}", style="yellow"))
    for problem in view.problems[:5]:
        parts.append(Text(f"! {problem}", style="red"))
    return Group(*parts)


def books_table(view: TopView) -> Table:
    table = Table(expand=True, header_style="bold", box=box.SIMPLE_HEAVY)
    for name, justify in (
        ("category", "left"),
        ("symbol", "left"),
        ("depth", "right"),
        ("state", "left"),
        ("age s", "right"),
        ("frames/s", "right"),
        ("u", "right"),
        ("bid", "right"),
        ("ask", "right"),
        ("spread", "right"),
        ("p50 µs", "right"),
        ("p99 µs", "right"),
        ("resyncs", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for book in view.books:
        table.add_row(
            book.category,
            book.symbol,
            str(book.depth),
            _state(book.state),
            _num(book.age_s, 2),
            _num(book.frames_per_s),
            "-" if book.u is None else str(book.u),
            book.bid or "-",
            book.ask or "-",
            book.spread or "-",
            _num(book.p50_us, 0),
            _num(book.p99_us, 0),
            Text(str(book.resyncs), style="yellow" if book.resyncs else ""),
        )
    return table


def render(view: TopView) -> RenderableType:
    return Group(header(view), books_table(view))


def render_text(view: TopView, width: int = 160) -> str:
    """One frame as plain text (no colours), as a terminal of ``width`` columns shows it."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(render(view))
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()
