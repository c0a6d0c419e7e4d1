# The C extension of _render.c (see there): built with the compiled hot path, absent without it.
def book(
    head: str,
    depth_text: str,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    frame_ints: tuple[int, ...],  # (u, bybit_seq, ts, cts)
    depth: int,
    bids: list[str],
    asks: list[str],
    /,
) -> bytes | None: ...
def bbo(
    head: str,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    u: int,
    ts: int,
    bid: tuple[str, str] | None,
    ask: tuple[str, str] | None,
    bybit_seq: int,
    depth: int | str,
    /,
) -> bytes | None: ...
def book_bbo(
    book_head: str,
    depth_text: str,
    bbo_head: str,
    seq: int,
    bbo_seq: int,
    pub_ns: int,
    recv_ns: int,
    frame_ints: tuple[int, ...],  # (u, bybit_seq, ts, cts)
    depth: int,
    bids: list[str],
    asks: list[str],
    bid: tuple[str, str] | None,
    ask: tuple[str, str] | None,
    bbo_depth: int | str,
    /,
) -> tuple[bytes, bytes] | None: ...
