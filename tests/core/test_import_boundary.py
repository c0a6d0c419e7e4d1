"""The core is sans-I/O: it may import only pure stdlib modules, orjson, msgspec and itself.

An allowlist rather than a denylist: anything new has to be argued for here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parents[2] / "services" / "mdgw" / "core"

ALLOWED = {
    "__future__",
    "abc",
    "bisect",
    "collections",
    "dataclasses",
    "datetime",  # render.py formats timestamps it is given; the core never reads the clock
    "decimal",
    "enum",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "re",
    "struct",
    "typing",
    "orjson",
    "msgspec",  # JSON decoding into typed structs (bybit's book fast path); no I/O
    "mdgw.core",
}
# Named so a failure message says why, should someone try.
FORBIDDEN_EXAMPLES = {
    "asyncio",
    "zmq",
    "websockets",
    "structlog",
    "pydantic",
    "time",
    "random",
    "os",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: inside mdgw.core by construction
                names.add("mdgw.core")
            elif node.module:
                names.add(node.module)
    return names


def allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_nothing_with_io(path: Path) -> None:
    bad = sorted(m for m in imported_modules(path) if not allowed(m))
    assert not bad, f"{path.relative_to(CORE)} imports {bad}; mdgw.core must stay sans-I/O"


CLOCK_READS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter"}


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_reads_no_clock(path: Path) -> None:
    """datetime is allowed for formatting given timestamps; reading the clock is not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & CLOCK_READS, f"{path.relative_to(CORE)} calls {sorted(calls & CLOCK_READS)}"


def test_the_check_sees_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom zmq import Socket\nimport time\n")
    found = imported_modules(sample)
    assert {"asyncio", "zmq", "time"} <= found
    assert not any(allowed(m) for m in found & FORBIDDEN_EXAMPLES)
