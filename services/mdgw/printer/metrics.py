"""The printer's ``/metrics`` and ``/health`` (off unless ``metrics.printer`` or
``--metrics-port`` names a port).

The printer (an asyncio loop) keeps its counters in plain ints and one small dict that the
HTTP thread copies (a dict copy is atomic under the GIL).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mdgw.printer.service import Printer
from mdgw.runtime.metrics import MetricsEndpoint, health_verdict

__all__ = ["PrinterMetrics"]


class PrinterMetrics:
    def __init__(self, printer: Printer, endpoint: MetricsEndpoint, unhealthy_after: float) -> None:
        self.printer = printer
        self.endpoint = endpoint
        self.unhealthy_after = unhealthy_after
        self._started_ns = time.time_ns()

    def start(self) -> None:
        self.endpoint.start(self.collect, self.health)

    def close(self) -> None:
        self.endpoint.close()

    def collect(self) -> Iterable[Metric]:
        printer = self.printer
        messages = CounterMetricFamily(
            "mdgw_printer_messages_total", "messages printed, by channel", labels=["channel"]
        )
        for channel, count in sorted(dict(printer.messages).items()):
            messages.add_metric([channel.decode("ascii", "replace")], count)
        yield messages
        yield CounterMetricFamily(
            "mdgw_printer_seq_holes_total",
            "seq holes seen (topics that lost messages)",
            value=printer.seq_holes,
        )
        yield CounterMetricFamily(
            "mdgw_printer_seq_missed_total",
            "messages missed in those holes",
            value=printer.seq_missed,
        )
        last = printer.last_message_ns
        if last:
            yield GaugeMetricFamily(
                "mdgw_printer_last_message_age_seconds",
                "seconds since the last message printed",
                value=max(0.0, (time.time_ns() - last) / 1e9),
            )

    def health(self) -> tuple[bool, dict[str, Any]]:
        """503 when nothing was printed for ``metrics.unhealthy_after`` seconds (counted from
        the start until the first message), which ``problems`` says; ``seq_holes`` is
        information only (each hole is on stderr already)."""
        printer = self.printer
        last = printer.last_message_ns
        age = (time.time_ns() - (last or self._started_ns)) / 1e9
        problems: list[str] = []
        if age >= self.unhealthy_after:
            problems.append(
                f"no message for {age:.1f}s" if last else f"no message in {age:.1f}s since start"
            )
        fields = {
            "messages": sum(dict(printer.messages).values()),
            "seq_holes": printer.seq_holes,
            "last_message_age_s": round(age, 3) if last else None,
            "unhealthy_after": self.unhealthy_after,
        }
        return health_verdict(problems, fields)
