"""mdgw.core.bbo_fusion against a naive reference: keep every offer, publish the running
freshest top whenever it changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.bbo_fusion import RESTART_AFTER, BboFusion

_best = st.tuples(st.sampled_from([None, "a", "b"]), st.sampled_from([None, "x", "y"]))
_offers = st.lists(st.tuples(st.integers(0, 30), _best), max_size=80)


@given(_offers)
def test_fusion_matches_the_naive_rule(
    offers: list[tuple[int, tuple[str | None, str | None]]],
) -> None:
    fusion = BboFusion()
    published = [(seq, best) for seq, best in offers if fusion.offer(seq, best)]
    # Naive: a top is taken if its seq beats every seq taken before; published if it differs.
    ref: list[tuple[int, tuple[str | None, str | None]]] = []
    taken: list[int] = []
    last: tuple[str | None, str | None] | None = None
    for seq, best in offers:
        if all(seq > s for s in taken):
            taken.append(seq)
            if best != last:
                last = best
                ref.append((seq, best))
    assert published == ref
    seqs = [s for s, _ in published]
    assert seqs == sorted(set(seqs))  # never back, never the same seq twice


def test_a_restarted_sequence_is_taken_after_many_refusals_in_a_row() -> None:
    fusion = BboFusion()
    assert fusion.offer(10**9, ("a", "x"))
    refused = [fusion.offer(5 + i, ("b", "y")) for i in range(RESTART_AFTER)]
    assert not any(refused)
    assert fusion.offer(5 + RESTART_AFTER, ("b", "y"))  # the sequence restarted lower
    assert not fusion.offer(4, ("c", "z"))
