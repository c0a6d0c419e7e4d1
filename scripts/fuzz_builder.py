"""Fuzz a book_builder of its own through its raw socket (mdgw.testing.fuzz explains how).

    .venv/bin/python scripts/fuzz_builder.py --seconds 120

Prints the JSON report; exit status 1 if a wrong book was published, a rejection was not
counted, book_builder died, or its memory grew by more than ``--rss-growth-mib``.
"""

from __future__ import annotations

import argparse
import json
import sys

from mdgw.testing.endpoints import short_tempdir
from mdgw.testing.fuzz import fuzz_new_builder, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-growth-mib", type=float, default=64.0)
    args = parser.parse_args()
    workdir = short_tempdir("mdgw-fuzz-")
    report = fuzz_new_builder(workdir, args.seconds, args.seed)
    print(json.dumps(report, indent=1))
    print(f"logs: {workdir}", file=sys.stderr)
    return 0 if passed(report, args.rss_growth_mib) else 1


if __name__ == "__main__":
    sys.exit(main())
