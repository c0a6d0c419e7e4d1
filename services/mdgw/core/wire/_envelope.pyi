# The C extension of _envelope.c (see there): built with the compiled hot path, absent without it.
def decode(
    msg: bytes, ids: dict[bytes, str], categories: tuple[str, ...], /
) -> tuple[int, str, str, int, int, int, bytes] | None: ...
