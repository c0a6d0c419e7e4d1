"""``make bench`` / ``make bench-long``: run the benchmarks, print one table, write the JSON.

    .venv/bin/python scripts/bench.py [--quick] [--long] [--only NAME ...] [--strict]

mdgw.testing.bench.run has the options; docs/performance.md the method and results.
"""

from __future__ import annotations

import sys

from mdgw.testing.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
