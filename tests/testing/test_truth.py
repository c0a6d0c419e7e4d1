"""mdgw.testing.truth.check_books: one walk through the truth, the answers of one check per book."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdgw.simulator.market import Market, MarketParams, TruthUnavailableError
from mdgw.testing.truth import Checked, check_books

T0 = 1_790_000_000_000
KEYS = [("linear", "BTCUSDT"), ("spot", "ETHUSDT")]
DEPTHS = {("linear", "BTCUSDT"): 50, ("spot", "ETHUSDT"): 200}


def one_by_one(market: Market, books: list[dict[str, Any]], publish_depth: int) -> Checked:
    """The slow way: Market.truth per book, as TruthConsumer did at each arrival."""
    out = Checked()
    for book in books:
        key = (book["category"], book["symbol"])
        if key not in DEPTHS:
            continue
        try:
            truth = market.truth(key[0], key[1], DEPTHS[key], book["u"])
        except TruthUnavailableError:
            out.unverifiable += 1
            continue
        out.verified += 1
        n = publish_depth
        if book["bids"] != [list(x) for x in truth.bids[:n]] or book["asks"] != [
            list(x) for x in truth.asks[:n]
        ]:
            out.wrong.append(f"{key} u={book['u']}: book differs from the truth")
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    history=st.integers(1, 60),
    steps=st.integers(1, 80),
    publish_depth=st.sampled_from([1, 25, 50]),
    data=st.data(),
)
def test_check_books_answers_as_one_truth_per_book(
    *, seed: int, history: int, steps: int, publish_depth: int, data: st.DataObject
) -> None:
    market = Market(
        MarketParams(
            streams={"linear": ["BTCUSDT"], "spot": ["ETHUSDT"]},
            seed=seed,
            levels=1000,
            truth_history=history,
        )
    )
    sent: list[tuple[tuple[str, str], int]] = []
    for key, depth in DEPTHS.items():
        flushed, snapshot = market.subscribe(key[0], f"orderbook.{depth}.{key[1]}", T0)
        assert snapshot is not None and not flushed
        sent.append((key, snapshot.u))
    # Books taken along the way (each the truth when it was sent), then some spoiled.
    books: list[dict[str, Any]] = []
    for index in range(1, steps + 1):
        for key, depth in DEPTHS.items():
            for frame in market.step(key[0], key[1], T0 + index * 50):  # type: ignore[arg-type]
                if frame.topic.startswith("orderbook."):
                    truth = market.truth(key[0], key[1], depth, frame.u)
                    books.append(
                        {
                            "category": key[0],
                            "symbol": key[1],
                            "u": frame.u,
                            "bids": [list(x) for x in truth.bids[:publish_depth]],
                            "asks": [list(x) for x in truth.asks[:publish_depth]],
                        }
                    )
    for key, u in sent:
        books.append({"category": key[0], "symbol": key[1], "u": u, "bids": [], "asks": []})
    books.append({"category": "inverse", "symbol": "BTCUSD", "u": 5, "bids": [], "asks": []})
    books.append({"category": "linear", "symbol": "BTCUSDT", "u": 3, "bids": [], "asks": []})
    if books:
        spoil = st.tuples(st.integers(0, len(books) - 1), st.sampled_from(["bids", "asks"]))
        for index, name in data.draw(st.lists(spoil, max_size=6)):
            side = books[index][name]
            if side:
                side[-1] = [side[-1][0], side[-1][1] + "1"]
        books = data.draw(st.permutations(books))
    fast = check_books(market, books, DEPTHS, publish_depth)
    slow = one_by_one(market, books, publish_depth)
    assert (fast.verified, fast.unverifiable) == (slow.verified, slow.unverifiable)
    assert sorted(fast.wrong) == sorted(slow.wrong)
