"""The compiled hot path (mdgw.compiled): used only for the exact sources it was built from.

The core tests themselves run against both builds (`make test` runs tests/core again with
MDGW_PURE=1 after a compiled run); these tests check the selection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mdgw
from mdgw import compiled
from mdgw.compiled_build import missing_toolchain

PACKAGE = Path(mdgw.__file__).parent
PROBE = (
    "import sys, mdgw, mdgw.core.hub as hub, mdgw.core.book as book; "
    "print(mdgw.compiled.ACTIVE); print(hub.__file__); print(book.__file__); "
    "print(getattr(sys.modules.get('mdgw.core._levels'), '__file__', None))"
)


def _build_exists() -> bool:
    return (compiled.BUILDS_DIR / compiled.source_key() / compiled.MANIFEST).is_file()


def _probe(services: Path, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    environ.update(env, PYTHONPATH=str(services))
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=services,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.splitlines()


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the mdgw package, its compiled build included; returns its services dir."""
    if not _build_exists():
        pytest.skip("no compiled build for these sources (`make compiled` needs a C compiler)")
    services = tmp_path / "services"
    shutil.copytree(PACKAGE, services / "mdgw", ignore=shutil.ignore_patterns("__pycache__"))
    return services


def test_every_listed_module_exists_and_is_in_the_core() -> None:
    """MODULES is the one list to update when hot modules move (mdgw.compiled)."""
    for name, path in zip(compiled.MODULES, compiled.source_paths(), strict=True):
        assert name.startswith("mdgw.core."), name
        assert path.is_file(), f"{name}: {path} does not exist; update mdgw.compiled.MODULES"
    for name, path in zip(compiled.C_EXTENSIONS, compiled.c_source_paths(), strict=True):
        # the core's, or the shell's I/O (mdgw.runtime._zio), which the core must not import
        assert name.startswith(("mdgw.core.", "mdgw.runtime.")), name
        assert path.is_file(), f"{name}: {path} does not exist; update mdgw.compiled.C_EXTENSIONS"
        assert path.with_suffix(".pyi").is_file(), f"{name}: no stub for mypy"


def test_a_compiler_means_a_build() -> None:
    """Where a compiler is present (CI here has one), the tests must see the compiled build."""
    why = missing_toolchain()
    if why is not None:
        pytest.skip(f"{why}: only the pure-Python modules can be tested here")
    assert _build_exists(), "a C compiler is present but no build: run `make compiled`"


def test_this_process_uses_the_build_it_names() -> None:
    from mdgw.core import hub

    on_so = hub.__file__ is not None and not hub.__file__.endswith(".py")
    assert on_so == compiled.IS_COMPILED
    assert compiled.ACTIVE.startswith("compiled" if on_so else "pure-Python")
    if os.environ.get(compiled.PURE_ENV, "") not in ("", "0"):
        assert not compiled.IS_COMPILED


def test_the_key_follows_every_byte_of_every_compiled_module(tmp_path: Path) -> None:
    copy = tmp_path / "mdgw"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "_compiled"))
    key = compiled.source_key(copy)
    assert key == compiled.source_key(PACKAGE)
    seen = {key}
    for path in compiled.source_paths(copy) + compiled.c_source_paths(copy):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        seen.add(compiled.source_key(copy))
        path.write_bytes(original)
    assert len(seen) == len(compiled.MODULES) + len(compiled.C_EXTENSIONS) + 1
    assert compiled.source_key(copy) == key


def test_a_copy_with_its_build_runs_compiled(package_copy: Path) -> None:
    active, hub_file, book_file, levels_file = _probe(package_copy)
    assert active.startswith("compiled (mypyc")
    assert "_compiled" in hub_file and "_compiled" in book_file
    assert not hub_file.endswith(".py")
    assert levels_file.startswith(str(package_copy / "mdgw" / "_compiled"))  # bybit took it


def test_an_edited_module_is_never_shadowed_by_the_old_build(package_copy: Path) -> None:
    hub_py = package_copy / "mdgw" / "core" / "hub.py"
    hub_py.write_text(hub_py.read_text() + "\nEDITED = True\n")
    active, hub_file, book_file, levels_file = _probe(package_copy)
    assert active.startswith("pure-Python (no compiled build for these sources")
    assert hub_file == str(hub_py)
    assert book_file.endswith("book.py")  # all or nothing: the group is not split
    assert levels_file == "None"


def test_an_edited_c_source_is_never_served_by_the_old_build(package_copy: Path) -> None:
    levels_c = package_copy / "mdgw" / "core" / "_levels.c"
    levels_c.write_text(levels_c.read_text() + "\n/* edited */\n")
    active, hub_file, book_file, levels_file = _probe(package_copy)
    assert active.startswith("pure-Python (no compiled build for these sources")
    assert hub_file.endswith("hub.py") and book_file.endswith("book.py")
    assert levels_file == "None"  # not importable: parse_levels runs as pure Python


def test_mdgw_pure_forces_the_source(package_copy: Path) -> None:
    active, hub_file, _, levels_file = _probe(package_copy, MDGW_PURE="1")
    assert active == "pure-Python (MDGW_PURE is set)"
    assert hub_file.endswith("hub.py")
    assert levels_file == "None"
