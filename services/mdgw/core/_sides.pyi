# The C extension of _sides.c (see there): built with the compiled hot path, absent without it.
from collections.abc import Sequence

from mdgw.core.bybit_frames import Level

def update_side(
    keys: list[float],
    pairs: list[tuple[str, str]],
    texts: list[str],
    levels: Sequence[Level],
    sign: float,
    depth: int,
    /,
) -> None: ...
def build_side(
    levels: Sequence[Level], sign: float, depth: int, /
) -> tuple[list[float], list[tuple[str, str]], list[str]] | None: ...
def refill_side(
    keys: list[float],
    pairs: list[tuple[str, str]],
    texts: list[str],
    levels: Sequence[Level],
    sign: float,
    depth: int,
    /,
) -> bool | None: ...
