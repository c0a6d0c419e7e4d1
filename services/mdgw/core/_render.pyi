# The C extension of _render.c (see there): built with the compiled hot path, absent without it.
def book(
    head: str,
    depth_text: str,
    seq: int,
    pub_ns: int,
    recv_ns: int,
    u: int,
    ts: int,
    cts: int,
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
