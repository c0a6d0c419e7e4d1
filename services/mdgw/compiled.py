"""The compiled hot path: which modules are compiled, where the build lives, and when it is used.

The core's hot modules (frame decode, book apply, top-N and payload build, the hub's
per-frame path) can be compiled with mypyc, which turns ``mypy --strict`` code into a C
extension with no change to the source. Five hand-written C extensions are built with
them, :data:`C_EXTENSIONS`: ``mdgw.core._levels``, the accept paths of
:func:`mdgw.core.bybit.parse_levels` (``parse``) and of the ``orderbook.*`` frame decode
(``scan_book``); ``mdgw.core._sides``, a book side's update and fast build, and a small
snapshot written into a side's own lists (:mod:`mdgw.core.book`); ``mdgw.core._render``, the
``book`` and ``bbo`` payloads written as bytes, one frame's two in one call
(:class:`mdgw.core.wire.BookTemplate`, :class:`~mdgw.core.wire.BboTemplate`);
``mdgw.core.wire._envelope``, the accept path of
:func:`mdgw.core.wire.envelope.decode_raw`; and, outside the core, ``mdgw.runtime._zio``,
book_builder's non-blocking receives and ``[topic, payload]`` sends straight into the
libzmq pyzmq loaded (:mod:`mdgw.runtime.zio`). The code that imports each uses it when it
can be imported and does without otherwise. ``make venv`` (and every make target that runs
code) builds them when a C compiler and Python's headers are present; without them, or
with ``MDGW_PURE=1`` in the environment, the very same ``.py`` modules run as they are,
and the C extensions are absent.

A compiled module must never stand in for a ``.py`` that was edited after the build
(mypyc's usual layout puts ``book.cpython-311-*.so`` next to ``book.py``, and the ``.so``
wins at import). So the build goes to ``_compiled/<key>/`` beside this file, where
``<key>`` is a hash of the exact bytes of every module in :data:`MODULES` and every C
source of :data:`C_EXTENSIONS` (and the interpreter's ABI tag), and nothing there is on
``sys.path``. At ``import mdgw`` this module hashes the sources again (~0.1 ms) and
installs an import hook for that build only if its key matches: edit one byte of any
listed module or C source and the whole set runs as pure Python until the next build. All
or nothing, since mypyc compiles the set as one group whose modules call each other
natively.

Which build is in use is :data:`ACTIVE` (``"compiled (mypyc 2.4.1 + C _levels, _sides,
_render, _envelope, _zio, build ...)"`` or ``"pure-Python (...why)"``); the services name it
in their startup log line and ``make bench`` in its output. (book_builder's startup line
also names its ZeroMQ I/O, ``zmq_io``: ``_zio`` is in the build but uses the libzmq it finds
at run time, :data:`mdgw.runtime.zio.ACTIVE`.) ``python -m mdgw.compiled_build`` builds (a
no-op when the current build exists; see there), ``python -m mdgw.compiled_build --status``
prints :data:`ACTIVE`.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["ACTIVE", "BUILDS_DIR", "C_EXTENSIONS", "IS_COMPILED", "MODULES", "source_key"]

# The one list of compiled modules (mypyc compiles them as one group). Keep it to modules
# that are `mypy --strict` clean and sans-I/O; tests/test_compiled.py checks both builds.
MODULES: tuple[str, ...] = (
    "mdgw.core.errors",
    "mdgw.core.wire.envelope",
    "mdgw.core.wire.topics",
    "mdgw.core.bybit_topics",
    "mdgw.core.bybit_frames",
    "mdgw.core.bybit",
    "mdgw.core.book",
    "mdgw.core.rpi_book",
    "mdgw.core.arbiter",
    "mdgw.core.hub_state",
    "mdgw.core.conflation",
    "mdgw.core.trade_feed",
    "mdgw.core.hub_books",
    "mdgw.core.single_source",
    "mdgw.core.hub_sources",
    "mdgw.core.hub",
)
# Hand-written C extensions built with them, one ``.c`` file each (``mdgw/core/_levels.c``),
# each with a ``.pyi`` stub for mypy. They must stay optional to the code that imports them:
# the pure-Python build runs without them. Only the core's are sans-I/O; _zio is the shell's.
C_EXTENSIONS: tuple[str, ...] = (
    "mdgw.core._levels",
    "mdgw.core._sides",
    "mdgw.core._render",
    "mdgw.core.wire._envelope",
    "mdgw.runtime._zio",
)
PURE_ENV = "MDGW_PURE"  # set to 1: ignore any build, run the .py modules
_PACKAGE_DIR = Path(__file__).resolve().parent
BUILDS_DIR = _PACKAGE_DIR / "_compiled"
MANIFEST = "BUILD.json"


def source_paths(package_dir: Path = _PACKAGE_DIR) -> list[Path]:
    """The ``.py`` file of each module in :data:`MODULES`."""
    return [package_dir.joinpath(*name.split(".")[1:]).with_suffix(".py") for name in MODULES]


def c_source_paths(package_dir: Path = _PACKAGE_DIR) -> list[Path]:
    """The ``.c`` file of each extension in :data:`C_EXTENSIONS`."""
    return [package_dir.joinpath(*name.split(".")[1:]).with_suffix(".c") for name in C_EXTENSIONS]


def source_key(package_dir: Path = _PACKAGE_DIR) -> str:
    """Hash of the compiled modules' sources and the interpreter's ABI: names the build."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    digest.update(importlib.machinery.EXTENSION_SUFFIXES[0].encode())
    names = (*MODULES, *C_EXTENSIONS)
    paths = source_paths(package_dir) + c_source_paths(package_dir)
    for name, path in zip(names, paths, strict=True):
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _BuildFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules (mypyc's shared group library and the C extensions too) in
    one build directory."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self._root = root
        self._files = files  # module name -> file name under root

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        rel = self._files.get(fullname)
        if rel is None:
            return None
        location = str(self._root / rel)
        loader = importlib.machinery.ExtensionFileLoader(fullname, location)
        return importlib.util.spec_from_file_location(fullname, location, loader=loader)


def _select() -> tuple[bool, str]:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False, f"pure-Python ({PURE_ENV} is set)"
    if not BUILDS_DIR.is_dir():
        return False, "pure-Python (no compiled build; `make venv` builds one with a C compiler)"
    try:
        key = source_key()
    except OSError as exc:  # a source file missing from an odd install
        return False, f"pure-Python (cannot read the sources: {exc})"
    root = BUILDS_DIR / key
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False, f"pure-Python (no compiled build for these sources, key {key})"
    files: dict[str, str] = manifest["files"]
    if manifest.get("key") != key or not all((root / f).is_file() for f in files.values()):
        return False, f"pure-Python (build {key} is incomplete)"
    loaded = [m for m in MODULES if m in sys.modules]
    if loaded:  # too late to swap them; mixing would break mypyc's group
        return False, f"pure-Python ({loaded[0]} was imported before mdgw)"
    sys.meta_path.insert(0, _BuildFinder(root, files))
    extensions = ", ".join(name.rpartition(".")[2] for name in C_EXTENSIONS)
    return True, f"compiled (mypyc {manifest.get('mypy', '?')} + C {extensions}, build {key})"


IS_COMPILED, ACTIVE = _select()
