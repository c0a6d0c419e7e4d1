"""mdgw.core.bbo_fusion against a naive reference: keep every offer, publish the running
freshest top whenever it changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mdgw.core.bbo_fusion import BboFusion

_best = st.tuples(st.sampled_from([None, "a", "b"]), st.sampled_from([None, "x", "y"]))
_offers = st.lists(st.tuples(st.integers(0, 30), _best, st.booleans()), max_size=60)


@given(_offers)
def test_fusion_matches_the_naive_rule(
    offers: list[tuple[int, tuple[str | None, str | None], bool]],
) -> None:
    fusion = BboFusion()
    published: list[tuple[int, tuple[str | None, str | None]]] = []
    ref_published: list[tuple[int, tuple[str | None, str | None]]] = []
    seen: list[int] = []  # seqs taken since the last reset
    last: tuple[str | None, str | None] | None = None
    for seq, best, reset in offers:
        if reset:
            fusion.reset()
            seen, last = [], None
            continue
        if fusion.offer(seq, best):
            published.append((seq, best))
        if all(seq > s for s in seen):
            seen.append(seq)
            if best != last:
                last = best
                ref_published.append((seq, best))
    assert published == ref_published
    # Between resets the bbo never goes back in seq and never repeats itself.
    seqs = [s for s, _ in published]
    assert len(set(seqs)) == len(seqs) or any(r for _, _, r in offers)
