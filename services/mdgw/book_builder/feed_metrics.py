"""book_builder's view of its feed in ``/metrics`` and ``/health``: the sources, Bybit's notices.

*Sources* are the ingestor connections the hub arbitrates by ``u``
(:mod:`mdgw.core.arbiter`), named ``ingestor/slot`` and kept across reconnects
(:meth:`Hub.source_stats <mdgw.core.hub.Hub.source_stats>`). Their labels are the ingestor id
and the connection slot (``linear#0``): both bounded by the config (streams, ``connections``,
ingestor ids), and the hub folds names past its limit into ``ingestor/other``.

The counters are the hub's totals since the builder started. The two lag gauges are the
stats line's ``lag_ms`` and ``lag_ms_max`` of the source (docs/operations.md): the mean and
the largest lag of the copies it delivered late during the last complete stats interval
(``log.stats_interval``). The stats line owns that window (it resets the hub's running
maximum), so a scrape never resets anything and every scraper reads the same figure.

Bybit's ``system.status`` notices (:mod:`mdgw.core.system_status`) show as
``mdgw_exchange_maintenance{phase}``: how many are under way (``active``) and how many are
announced for later (``planned``). Information only: they do not make ``/health`` 503.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mdgw.core.bybit import StatusNotice
from mdgw.core.hub import Hub

__all__ = [
    "PHASES",
    "LagFigures",
    "SourceRow",
    "maintenance_body",
    "maintenance_families",
    "source_families",
    "source_rows",
    "sources_body",
]

PHASES: Final = ("active", "planned")
# Notices listed per phase in /health: Bybit has a handful at a time; this bounds the body
# against a feed that sends hundreds (the metric still counts them all).
MAX_LISTED: Final = 20
# (mean, largest) lag in seconds of a source's late copies in the last stats interval; None
# when it delivered no measured late copy in it (it was first every time, or silent).
LagFigures = tuple[float | None, float | None]
# SourceRow's counters: (field of SourceStats, metric name, help).
_COUNTERS: Final = (
    ("first", "mdgw_source_frames_first_total", "frames this source delivered first (taken)"),
    ("late", "mdgw_source_frames_late_total", "copies this source delivered after another"),
    ("gaps", "mdgw_source_gaps_total", "holes in the u this source delivered"),
    (
        "seq_holes",
        "mdgw_source_seq_holes_total",
        "holes in this source's envelope sequence (frames lost between ingestor and builder)",
    ),
    (
        "older_snapshots",
        "mdgw_source_older_snapshots_total",
        "snapshots from this source older than the book, dropped",
    ),
    (
        "failovers",
        "mdgw_source_failovers_total",
        "times this source became unusable while another source kept its books",
    ),
)


class SourceRow(NamedTuple):
    """One named source, copied on the event loop."""

    name: str  # "ingestor/slot"
    connections: int  # open connections with this name now
    first: int
    late: int
    gaps: int
    seq_holes: int
    older_snapshots: int
    failovers: int
    lag_s: float | None
    lag_max_s: float | None

    def labels(self) -> list[str]:
        """``[ingestor, slot]``: ingestor ids have no ``/`` (``ingestor.id``'s pattern)."""
        ingestor, _, slot = self.name.partition("/")
        return [ingestor, slot]


def source_rows(hub: Hub, lags: dict[str, LagFigures]) -> list[SourceRow]:
    """On the event loop: every named source's counters, with the last stats line's lags."""
    live = hub.live_sources()
    rows = []
    for name, s in hub.source_stats().items():
        lag, lag_max = lags.get(name, (None, None))
        rows.append(
            SourceRow(
                name,
                live.get(name, 0),
                s.first,
                s.late,
                s.gaps,
                s.seq_holes,
                s.older_snapshots,
                s.failovers,
                lag,
                lag_max,
            )
        )
    return rows


def source_families(rows: list[SourceRow]) -> Iterable[Metric]:
    labels = ["ingestor", "slot"]
    connections = GaugeMetricFamily(
        "mdgw_source_connections", "open connections of this source now", labels=labels
    )
    counters = [
        (field, CounterMetricFamily(name, doc, labels=labels)) for field, name, doc in _COUNTERS
    ]
    lag = GaugeMetricFamily(
        "mdgw_source_lag_seconds",
        "mean lag behind the first copy of this source's late copies, over the last stats "
        "interval (log.stats_interval); absent when it had none",
        labels=labels,
    )
    lag_max = GaugeMetricFamily(
        "mdgw_source_lag_max_seconds",
        "largest lag behind the first copy of this source's late copies, over the last "
        "stats interval (log.stats_interval); absent when it had none",
        labels=labels,
    )
    for row in rows:
        values = row.labels()
        connections.add_metric(values, row.connections)
        for field, family in counters:
            family.add_metric(values, getattr(row, field))
        if row.lag_s is not None:
            lag.add_metric(values, row.lag_s)
        if row.lag_max_s is not None:
            lag_max.add_metric(values, row.lag_max_s)
    yield connections
    for _, family in counters:
        yield family
    yield lag
    yield lag_max


def sources_body(rows: list[SourceRow]) -> dict[str, dict[str, Any]]:
    """``/health``'s ``sources``: the stats line's per-source fields (lags in ms)."""
    return {
        row.name: {
            "connections": row.connections,
            "first": row.first,
            "late": row.late,
            "lag_ms": None if row.lag_s is None else round(row.lag_s * 1e3, 3),
            "lag_ms_max": None if row.lag_max_s is None else round(row.lag_max_s * 1e3, 3),
            "gaps": row.gaps,
            "seq_holes": row.seq_holes,
            "older_snapshots": row.older_snapshots,
            "failovers": row.failovers,
        }
        for row in sorted(rows)
    }


def maintenance_families(maintenance: dict[str, list[StatusNotice]]) -> Iterable[Metric]:
    family = GaugeMetricFamily(
        "mdgw_exchange_maintenance",
        "Bybit system.status notices under way (phase=active: ongoing, or scheduled with "
        "begin <= now < end) or announced for later (phase=planned: scheduled, begin > now)",
        labels=["phase"],
    )
    for phase in PHASES:
        family.add_metric([phase], len(maintenance.get(phase, ())))
    yield family


def maintenance_body(maintenance: dict[str, list[StatusNotice]]) -> dict[str, list[dict[str, Any]]]:
    """``/health``'s ``maintenance``: the notices of each phase, as published on
    ``status.bybit.`` (docs/wire-format.md), at most :data:`MAX_LISTED` of each."""
    return {
        phase: [
            {
                "id": n.id,
                "title": n.title,
                "state": n.state,
                "begin": n.begin,
                "end": n.end,
                "service_types": list(n.service_types),
                "product": list(n.product),
                "maintain_type": n.maintain_type,
                "env": n.env,
            }
            for n in maintenance.get(phase, [])[:MAX_LISTED]
        ]
        for phase in PHASES
    }
