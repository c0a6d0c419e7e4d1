"""``python -m mdgw.book_builder``: assemble Bybit books and publish them (docs/wire-format.md)."""

from __future__ import annotations

import argparse

from mdgw.book_builder.service import BookBuilder
from mdgw.runtime.lifecycle import Shutdown, run_service
from mdgw.runtime.logging import configure_logging
from mdgw.runtime.metrics import bind_or_exit
from mdgw.runtime.settings import settings_or_exit
from mdgw.runtime.zmqsock import BUILDER_DRAIN_BATCH, warn_if_hwm_below_floor


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mdgw.book_builder", description=__doc__)
    parser.add_argument(
        "--config", help="config file (default: $MDGW_CONFIG or config/gateway.toml)"
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="port of /metrics and /health, over metrics.book_builder; 0: off, "
        "auto: any free port (logged in metrics_listening)",
    )
    args = parser.parse_args()
    settings = settings_or_exit(args.config)
    # Bound now: a taken port is a configuration error (exit 78), like a bad key.
    metrics = bind_or_exit(settings, "book_builder", args.metrics_port)
    configure_logging("book_builder", settings.log.level, settings.log.format)
    warn_if_hwm_below_floor(
        settings.zmq.hwm,
        f"a subscriber only a moment behind loses messages (seq holes): each drained batch "
        f"of up to {BUILDER_DRAIN_BATCH} frames is published in one go, a book and a bbo each",
    )

    async def serve(shutdown: Shutdown) -> None:
        await BookBuilder(settings, shutdown, metrics).run()

    run_service(serve, name="book_builder", shutdown_timeout=3.0)


if __name__ == "__main__":
    main()
