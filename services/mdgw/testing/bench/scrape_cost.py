"""CPU of one book_builder ``/metrics`` scrape, in-process: where a scrape's time goes.

    python -m mdgw.testing.bench.scrape_cost [--books 100] [--scrapes 50]

Feeds a real :class:`~mdgw.core.hub.Hub` the throughput benchmark's frames for ``--books``
symbols, two connections of one ingestor each (so the per-source families have rows), then
times, in CPU of this process (``time.process_time``) per scrape: the copy the event loop
takes (:meth:`BuilderMetrics.snapshot`'s calls), building the families, and the whole text
as the endpoint writes it (``prometheus_client``'s ``generate_latest``, with the standard
process, platform and GC collectors), in the text format and in OpenMetrics (what a
Prometheus server asks for). Prints one JSON line. No sockets, no second thread: the wall
time of a scrape on a busy builder is this CPU stretched by the event loop's share of the
GIL (docs/performance.md, "Metrics scrape").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from mdgw.book_builder.feed_metrics import source_rows
from mdgw.book_builder.metrics import BuilderView, families
from mdgw.core import wire
from mdgw.core.hub import BookRow, Hub
from mdgw.runtime.metrics import PUBLISH_LATENCY_BOUNDS, Buckets
from mdgw.testing.bench.frames import script
from mdgw.testing.bench.hub_inproc import bench_hub

__all__ = ["main", "measure"]


def fed_hub(books: int, deltas: int) -> Hub:
    """A hub with ``books`` live books, each delta delivered by two connections."""
    hub = bench_hub()
    encode = wire.RawEncoder("bench", "linear")
    seq = {1: 0, 2: 0}

    def send(conn: int, frame: bytes) -> None:
        seq[conn] += 1
        hub.on_raw(encode.data(conn, seq[conn], 1, frame), 1.0)

    for conn in (1, 2):
        hub.on_raw(encode.conn_up(conn, 1, slot=f"linear#{conn - 1}"), 1.0)
    for i in range(books):
        for conn in (1, 2):
            send(conn, script(i).snapshot(0, 1))
    for k in range(1, deltas + 1):
        for i in range(books):
            for conn in (1, 2):
                send(conn, script(i).delta(k, 1))
        hub.outbox.clear()
    assert hub.stats.gaps == 0, hub.stats
    return hub


def measure(books: int, scrapes: int) -> dict[str, object]:
    hub = fed_hub(books, 5)
    latency = Buckets(PUBLISH_LATENCY_BOUNDS)
    latency.fold_ns(range(0, 10_000_000, 10_000))

    def copy() -> BuilderView:  # what the event loop does per scrape
        return BuilderView(
            now=2.0,
            books=hub.book_rows(),  # type: ignore[arg-type]  # plain tuples, as the loop's
            trade_frames=hub.trade_frames(),
            ingestors=hub.ingestors(),
            stats=hub.stats.as_dict(),
            pub_dropped=0,
            snapshots_served=0,
            snapshots_rejected=0,
            internal_errors=0,
            sources=source_rows(hub, {}),
            maintenance={"active": hub.notices.maintenance(0), "planned": []},
        )

    def view() -> BuilderView:  # the copy, completed in the HTTP thread
        v = copy()
        return dataclasses.replace(v, books=[BookRow._make(r) for r in v.books])

    class Builder(Collector):
        def collect(self) -> Iterable[Metric]:
            return list(families(view(), latency))

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(Builder())

    def cpu_ms(fn: Callable[[], object]) -> float:
        fn()
        start = time.process_time()
        for _ in range(scrapes):
            fn()
        return round((time.process_time() - start) / scrapes * 1e3, 3)

    text = generate_latest(registry)
    return {
        "books": len(hub.book_rows()),
        "samples": sum(len(m.samples) for m in registry.collect()),
        "bytes": len(text),
        "loop_copy_ms": cpu_ms(copy),
        "families_ms": cpu_ms(lambda: list(families(view(), latency))),
        "text_ms": cpu_ms(lambda: generate_latest(registry)),
        # prometheus_client types generate_latest but not its OpenMetrics twin
        "openmetrics_ms": cpu_ms(lambda: generate_openmetrics(registry)),  # type: ignore[no-untyped-call]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(measure(args.books, args.scrapes)))


if __name__ == "__main__":
    main()
