# The C extension of _levels.c (see there): built with the compiled hot path, absent without it.
from mdgw.core.bybit_frames import Level

def parse(raw: object, max_len: int, max_digits: int, /) -> list[Level] | None: ...
def scan_book(
    frame: bytes, max_len: int, max_digits: int, /
) -> tuple[str, str, str, list[Level], list[Level], tuple[int, ...]] | None: ...
