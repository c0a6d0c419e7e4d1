"""``python -m mdgw.simulator``: a Bybit v5 public-stream simulator (docs/simulator.md)."""

from __future__ import annotations

from mdgw.simulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
