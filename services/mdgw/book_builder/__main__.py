"""``python -m mdgw.book_builder``: assemble Bybit books and publish them (docs/wire-format.md)."""

from __future__ import annotations

import argparse

from mdgw.book_builder.service import BookBuilder
from mdgw.runtime.lifecycle import Shutdown, run_service
from mdgw.runtime.logging import configure_logging
from mdgw.runtime.settings import settings_or_exit


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mdgw.book_builder", description=__doc__)
    parser.add_argument(
        "--config", help="config file (default: $MDGW_CONFIG or config/gateway.toml)"
    )
    args = parser.parse_args()
    settings = settings_or_exit(args.config)
    configure_logging("book_builder", settings.log.level, settings.log.format)

    async def serve(shutdown: Shutdown) -> None:
        await BookBuilder(settings, shutdown).run()

    run_service(serve, name="book_builder", shutdown_timeout=3.0)


if __name__ == "__main__":
    main()
