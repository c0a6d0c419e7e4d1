"""Soak the whole gateway for a long time with periodic faults (``make soak``).

mdgw.testing.soak describes what runs and what is checked.

    .venv/bin/python scripts/soak.py                         # 30 min, ~5k frames/s
    .venv/bin/python scripts/soak.py --minutes 5 --frames-per-s 2000

Prints the JSON report; exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from mdgw.runtime.logging import configure_logging
from mdgw.testing.endpoints import short_tempdir
from mdgw.testing.soak import Options, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Options()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    options = Options(**{name: getattr(args, name) for name in asdict(defaults)})
    workdir = short_tempdir("mdgw-soak-logs-")
    # The simulator runs in this process: its log goes to a file, stdout is the report's.
    with (workdir / "simulator.log").open("w") as sim_log:
        configure_logging("simulator", "info", "json", stream=sim_log)
        report = asyncio.run(soak(options, workdir))
    print(json.dumps({**asdict(report), "ok": report.ok, "logs": str(workdir)}, indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
