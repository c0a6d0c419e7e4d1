"""Sans-I/O modules import no I/O: pure stdlib modules, orjson, msgspec and pure mdgw code.

The core (every module of ``mdgw.core``), the simulator's model (the modules named in
``SIMULATOR_MODEL``; the rest of the simulator is its shell, named in ``SIMULATOR_SHELL``,
and every simulator module must be one or the other), ``mdgw top``'s model, and the test
oracles, samples, reference book and tracked book. An allowlist rather than a denylist:
anything new has to be argued for here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MDGW = Path(__file__).parents[2] / "services" / "mdgw"
CORE = MDGW / "core"
SIMULATOR = MDGW / "simulator"

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


# The simulator's model is deterministic rather than free of random numbers: it draws from
# seeded ``random.Random`` instances it makes itself (never the module's global generator),
# makes uuids from those bits and hashes names into stable per-symbol values.
SIMULATOR_MODEL = (
    "book",
    "faults",
    "frames",
    "instruments",
    "market",
    "protocol",
    "rpi",
    "symbol_market",
    "system_status",
    "topics",
    "truth",
)
SIMULATOR_SHELL = (
    "__init__",
    "__main__",
    "cli",
    "connection",
    "fanout",
    "params",
    "routes",
    "server",
)
SIMULATOR_ALLOWED = {
    *ALLOWED,
    "array",
    "hashlib",
    "random",  # only random.Random, seeded (test_seeded_randomness_only)
    "uuid",  # only uuid.UUID from given bits
    *(f"mdgw.simulator.{name}" for name in SIMULATOR_MODEL),
}
SEEDED_ONLY = {"random": "Random", "uuid": "UUID"}
# TrackedBook draws from the seeded random.Random it is given (the fuzzer's, a test's).
TRACKED_ALLOWED = {*ALLOWED, "random", "mdgw.testing.reference"}

# (path, the package its relative imports mean, what it may import)
SANS_IO = [
    *((path, "mdgw.core", ALLOWED) for path in sorted(CORE.rglob("*.py"))),
    *((SIMULATOR / f"{name}.py", "mdgw.simulator", SIMULATOR_ALLOWED) for name in SIMULATOR_MODEL),
    (MDGW / "top" / "model.py", "mdgw.top", ALLOWED),
    (MDGW / "testing" / "oracles.py", "mdgw.testing", ALLOWED),
    (MDGW / "testing" / "samples.py", "mdgw.testing", {*ALLOWED, "mdgw.testing.oracles"}),
    (MDGW / "testing" / "reference.py", "mdgw.testing", ALLOWED),
    (MDGW / "testing" / "tracked.py", "mdgw.testing", TRACKED_ALLOWED),
]
IDS = [str(path.relative_to(MDGW)) for path, _, _ in SANS_IO]


def imported_modules(path: Path, package: str = "mdgw.core") -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: inside the package by construction
                names.add(package)
            elif node.module:
                names.add(node.module)
    return names


def allowed(module: str, allowlist: set[str] = ALLOWED) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowlist)


@pytest.mark.parametrize(("path", "package", "allowlist"), SANS_IO, ids=IDS)
def test_sans_io_module_imports_nothing_with_io(
    path: Path, package: str, allowlist: set[str]
) -> None:
    bad = sorted(m for m in imported_modules(path, package) if not allowed(m, allowlist))
    assert not bad, f"{path.relative_to(MDGW)} imports {bad}; it must stay sans-I/O"


def test_every_simulator_module_is_model_or_shell() -> None:
    names = {path.stem for path in SIMULATOR.glob("*.py")}
    assert names == {*SIMULATOR_MODEL, *SIMULATOR_SHELL}, (
        "name a new simulator module in SIMULATOR_MODEL (sans-I/O) or SIMULATOR_SHELL"
    )


# The modules allowed random (and uuid): each may use only the seeded constructors.
SEEDED = [
    *(SIMULATOR / f"{name}.py" for name in SIMULATOR_MODEL),
    MDGW / "testing" / "tracked.py",
]


@pytest.mark.parametrize("path", SEEDED, ids=[str(p.relative_to(MDGW)) for p in SEEDED])
def test_seeded_randomness_only(path: Path) -> None:
    """The simulator's model and TrackedBook use random and uuid only through the seeded
    constructors."""
    tree = ast.parse(path.read_text(), filename=str(path))
    used: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in SEEDED_ONLY
        ):
            used.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in SEEDED_ONLY:
            used.update(f"{node.module}.{alias.name}" for alias in node.names)
    bad = sorted(u for u in used if u.partition(".")[2] != SEEDED_ONLY[u.partition(".")[0]])
    assert not bad, f"{path.relative_to(MDGW)} uses {bad}; draw from a seeded random.Random instead"


CLOCK_READS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter"}


@pytest.mark.parametrize(("path", "package", "allowlist"), SANS_IO, ids=IDS)
def test_sans_io_module_reads_no_clock(path: Path, package: str, allowlist: set[str]) -> None:
    """datetime is allowed for formatting given timestamps; reading the clock is not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & CLOCK_READS, f"{path.relative_to(MDGW)} calls {sorted(calls & CLOCK_READS)}"


def test_the_check_sees_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom zmq import Socket\nimport time\n")
    found = imported_modules(sample)
    assert {"asyncio", "zmq", "time"} <= found
    assert not any(allowed(m) for m in found & FORBIDDEN_EXAMPLES)
    assert not any(allowed(m, SIMULATOR_ALLOWED) for m in found & FORBIDDEN_EXAMPLES - {"random"})
    assert not allowed("mdgw.simulator.server", SIMULATOR_ALLOWED)
