"""mdgw.core.conn_ids: connection ids are unique and carry a random per-process prefix."""

from __future__ import annotations

import random

from mdgw.core.conn_ids import ConnIds


def test_conn_ids_are_unique_and_carry_a_random_prefix() -> None:
    ids = ConnIds(random.Random(1).getrandbits)
    seen = [ids.next() for _ in range(70_000)]  # past the 16-bit counter
    assert len(set(seen)) == len(seen) and 0 not in seen
    assert all(0 < i < 2**32 for i in seen)
    assert len({i >> 16 for i in seen}) == 2
    other = ConnIds(random.Random(2).getrandbits)
    assert other.next() >> 16 != seen[0] >> 16
