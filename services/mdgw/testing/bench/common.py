"""What the benchmark's driver and its helper processes share: progress lines, the helpers'
command line, a stop flag."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

__all__ = ["StopFlag", "helper_parser", "progress"]

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout is for the table)."""
    # One write per line: stages that run at once (--quick) do not cut into each other's.
    line = f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}\n"
    sys.stderr.write(line)
    sys.stderr.flush()


def helper_parser(doc: str | None) -> argparse.ArgumentParser:
    """A helper process's argument parser with the two options every helper takes
    (:class:`mdgw.testing.processes.Helper` passes them): ``--out FILE``, its JSON result,
    written when it stops; ``--ready FILE``, created once it is set up."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    return parser


class StopFlag:
    """False until SIGTERM or SIGINT arrives: for the helpers' own plain loops."""

    def __init__(self) -> None:
        self._set = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set
