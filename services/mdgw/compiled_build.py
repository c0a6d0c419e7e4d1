"""Build the compiled hot path: ``python -m mdgw.compiled_build [--status] [--quiet]``.

Compiles :data:`mdgw.compiled.MODULES` with mypyc (from the pinned mypy of
requirements-dev.txt), and the C sources of :data:`mdgw.compiled.C_EXTENSIONS` with the
same compiler, into ``mdgw/_compiled/<key>/``, where ``<key>`` is
:func:`mdgw.compiled.source_key` of the sources as they were when the build started; a
build whose sources changed while it ran is thrown away. Older builds are removed. A no-op
(~0.1 s) when the build for the current sources exists, so make runs it before every
target that runs code.

Exit status: 0 when the build exists or was made, and also when there is no C compiler or
no Python headers (the pure-Python modules run then; the message says so); 1 when
compiling failed (a bug to look at: the pure-Python modules still run).

Why mypyc (docs/performance.md has the numbers): it compiles the same ``mypy --strict``
modules the pure-Python fallback runs, so there is one source and one set of tests, and
the compiled code is checked by the same type checker that checks the source. The C
extensions are the exception, each kept to functions whose every answer the tests compare
with the Python (and msgspec, or pyzmq) they stand in for (``core/_levels.c``,
``core/_sides.c``, ``core/_render.c``, ``core/wire/_envelope.c``, ``runtime/_zio.c``).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from mdgw import compiled

_SETUP = """
import sys
from setuptools import Extension, setup
from mypyc.build import mypycify

paths = sys.argv[1:-2]
build_lib, build_temp = sys.argv[-2:]
python = [p for p in paths if p.endswith(".py")]
c = [Extension(p.removesuffix(".c").replace("/", "."), [p]) for p in paths if p.endswith(".c")]
setup(
    name="mdgw-compiled",
    packages=[],
    ext_modules=mypycify(python, opt_level="3", debug_level="0", target_dir=build_temp + "/c") + c,
    script_args=["build_ext", "--build-lib", build_lib, "--build-temp", build_temp],
)
"""


def missing_toolchain() -> str | None:
    """Why this machine cannot compile extensions, or None when it can."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc} not found)"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        return f"no Python headers ({include}/Python.h; e.g. apt-get install python3-dev)"
    try:
        # Imported only to learn whether the build tools exist (F401), and only when a
        # build is asked for, so a plain import of mdgw never needs them (PLC0415).
        import mypyc  # noqa: F401, PLC0415
        import setuptools  # type: ignore[import-untyped]  # noqa: F401, PLC0415
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -r requirements-dev.txt)"
    return None


def build(*, quiet: bool = False) -> int:
    def say(text: str) -> None:
        if not quiet:
            print(f"compiled hot path: {text}", file=sys.stderr)

    paths = compiled.source_paths() + compiled.c_source_paths()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        say(
            "mdgw.compiled.MODULES or C_EXTENSIONS names modules that do not exist "
            f"({', '.join(missing)}): update the list"
        )
        return 1
    key = compiled.source_key()
    target = compiled.BUILDS_DIR / key
    if (target / compiled.MANIFEST).is_file():
        say(f"build {key} is current")
        return 0
    why = missing_toolchain()
    if why is not None:
        say(f"{why}: the pure-Python modules will run")
        return 0
    package_dir = compiled.BUILDS_DIR.parent
    services_dir = package_dir.parent
    sources = [str(p.relative_to(services_dir)) for p in paths]
    compiled.BUILDS_DIR.mkdir(exist_ok=True)
    started = time.monotonic()
    say(
        f"compiling {len(compiled.MODULES)} modules with mypyc and "
        f"{len(compiled.C_EXTENSIONS)} C extension(s) into _compiled/{key} ..."
    )
    with tempfile.TemporaryDirectory(prefix=f"{key}-", dir=compiled.BUILDS_DIR) as tmp:
        out, temp = Path(tmp) / "out", Path(tmp) / "temp"
        proc = subprocess.run(
            [sys.executable, "-c", _SETUP, *sources, str(out), str(temp)],
            cwd=services_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            say("mypyc failed (above): the pure-Python modules will run")
            return 1
        if compiled.source_key() != key:
            say("the sources changed while compiling: build discarded, run it again")
            return 1
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        names = (*compiled.MODULES, *compiled.C_EXTENSIONS)
        files = {name: name.replace(".", "/") + suffix for name in names}
        for lib in out.glob(f"*__mypyc{suffix}"):  # mypyc's shared library of the group
            files[lib.name.removesuffix(suffix)] = lib.name
        missing = [f for f in files.values() if not (out / f).is_file()]
        if missing or len(files) != len(names) + 1:
            say(f"the build lacks {missing or 'its group library'}: discarded")
            return 1
        manifest = {"key": key, "mypy": _mypy_version(), "files": files}
        (out / compiled.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if target.exists():  # another build finished first: same sources, same result
            shutil.rmtree(target, ignore_errors=True)
        out.rename(target)
    for old in compiled.BUILDS_DIR.iterdir():
        if old.is_dir() and old.name != key and not old.name.startswith(f"{key}-"):
            shutil.rmtree(old, ignore_errors=True)
    say(f"build {key} done in {time.monotonic() - started:.0f} s")
    return 0


def _mypy_version() -> str:
    # Lazily: mypy is a dev dependency, absent where only the runtime is installed.
    from mypy.version import __version__  # noqa: PLC0415

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdgw.compiled_build", description=__doc__)
    parser.add_argument("--status", action="store_true", help="print which build is in use")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    if args.status:
        print(compiled.ACTIVE)
        return 0
    return build(quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
