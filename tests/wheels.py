"""liege's wheels (the extension-module build, `pip install liege`) for the tests, one per CPython minor.

`maturin build` compiles `crates/liege-py` for one interpreter into `target/wheels/pyXY/`, with its own cargo
target directory (`target/wheel-build/`: the extension build must not link libpython, so sharing the binary's
`target/` would rebuild pyo3 and liege back and forth). A wheel newer than every source is used as it is, and
cargo's cache makes a rebuild incremental, so the tests build on demand, under a lock; `tests/run` builds them before pytest starts so no test waits for a first
compile. The interpreter is this machine's CPython, or trixie's 3.13 run inside its chroot through a wrapper
script: maturin asks it for its sysconfig (the wheel's tag), pyo3 gets the same facts as a config file, and
nothing of the chroot is linked (an extension module links no libpython).

    python tests/wheels.py build [3.11|3.13 ...]   # builds (or refreshes) and prints each wheel's path
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import chroot

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "target" / "wheels"
CARGO_TARGET = REPO / "target" / "wheel-build"


class WheelUnavailable(RuntimeError):
    """maturin or the interpreter is missing; the message says which (tests skip or fail with it)."""


def host_python() -> Path:
    """The CPython the test venv was made from (this machine's 3.11)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def host_version() -> str:
    """`major.minor` of host_python()."""
    return subprocess.run([host_python(), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def maturin() -> Path:
    for candidate in (Path(sys.executable).parent / "maturin", REPO / ".venv" / "bin" / "maturin"):
        if candidate.exists():
            return candidate
    found = shutil.which("maturin")
    if found is None:
        raise WheelUnavailable("maturin is not installed (it is in tests/requirements.txt)")
    return Path(found)


def trixie_python(root: Path | None = None) -> Path:
    """A wrapper that runs the trixie chroot's python3.13 with the checkout visible (for maturin/pyo3)."""
    root = root or chroot.ready(*chroot.TRIXIE_PYTHON)
    if root is None:
        raise WheelUnavailable("no trixie chroot (tests/run prepares it: tests/chroot.py prepare trixie ...)")
    wrapper = OUT / "python3.13-trixie"
    OUT.mkdir(parents=True, exist_ok=True)
    return chroot.wrapper(wrapper, root, "/usr/bin/python3.13", binds=[REPO])


def interpreter_for(version: str) -> Path:
    if version == host_version():
        return host_python()
    if version == "3.13":
        return trixie_python()
    raise WheelUnavailable(f"no CPython {version} on this machine")


PYO3_CONFIG_SCRIPT = """\
import sys, sysconfig
v = sysconfig.get_config_var
print("implementation=CPython")
print("version=%d.%d" % sys.version_info[:2])
print("shared=%s" % ("true" if v("Py_ENABLE_SHARED") else "false"))
print("abi3=false")
print("lib_name=python%d.%d%s" % (sys.version_info[0], sys.version_info[1], getattr(sys, "abiflags", "")))
print("lib_dir=%s" % v("LIBDIR"))
print("pointer_width=%d" % (8 * v("SIZEOF_VOID_P")))
print("build_flags=%s" % ("Py_DEBUG" if v("Py_DEBUG") else ""))
print("suppress_build_script_link_lines=false")
"""


def pyo3_config(python: Path, version: str) -> Path:
    """A pyo3 config file (PYO3_CONFIG_FILE) describing `python`, from its own sysconfig."""
    done = subprocess.run([python, "-c", PYO3_CONFIG_SCRIPT], capture_output=True, text=True, timeout=120,
                          cwd=REPO, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise WheelUnavailable(f"cannot read the sysconfig of {python}: {done.stderr}")
    path = OUT / f"pyo3-config-{version}.txt"
    path.write_text(done.stdout)
    return path


SOURCES = ["src", "crates", "python", "web", "build.rs", "Cargo.toml", "Cargo.lock", "pyproject.toml"]


def newest_source() -> float:
    """The newest modification time of anything the wheel is built from: a wheel newer than it is current,
    and is used without asking cargo (which would take a while even to find nothing to do)."""
    newest = 0.0
    for name in SOURCES:
        path = REPO / name
        paths = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        for item in paths:
            if "target" not in item.relative_to(REPO).parts:
                newest = max(newest, item.stat().st_mtime)
    return newest


def wheel(version: str, timeout: float = 1800) -> Path:
    """The liege wheel for CPython `version` (`3.11`): the one built before if no source changed since, else
    built now (into a scratch directory, so an interrupted build never leaves a half wheel)."""
    python = interpreter_for(version)
    out = OUT / f"py{version.replace('.', '')}"
    OUT.mkdir(parents=True, exist_ok=True)
    # One cargo target directory for every minor: the dependencies are built once; a change of minor rebuilds
    # only pyo3 and liege (its configuration differs), and a wheel newer than the sources is not rebuilt.
    env = dict(os.environ, CARGO_TARGET_DIR=str(CARGO_TARGET))
    env.pop("PYO3_PYTHON", None)
    if python != host_python():
        # maturin reads the wrapper's sysconfig (for the wheel's tag) by running it, but hands pyo3 the
        # `sys.executable` it reports, a path that exists only inside the chroot: pyo3 gets the same facts as
        # a config file instead, and never runs or links the interpreter (an extension links no libpython).
        env["PYO3_CONFIG_FILE"] = str(pyo3_config(python, version))
    with open(OUT / ".build.lock", "w") as lock:  # one build at a time: they share the cargo target
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = sorted(out.glob("liege-*.whl"))
        if len(built) == 1 and built[0].stat().st_mtime > newest_source():
            return built[0]
        scratch = out.with_name(out.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        argv = [str(maturin()), "build", "--interpreter", str(python), "--out", str(scratch)]
        done = subprocess.run(["nice", "-n", "10", *argv], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise WheelUnavailable(f"maturin build for Python {version} failed ({done.returncode}):\n{tail}")
        wheels = sorted(scratch.glob("liege-*.whl"))
        if len(wheels) != 1:
            raise WheelUnavailable(f"maturin built {wheels} into {scratch}, expected one wheel")
        shutil.rmtree(out, ignore_errors=True)
        scratch.rename(out)
        return out / wheels[0].name


def main(argv: list[str]) -> int:
    if argv and argv[0] == "build":
        status = 0
        for version in argv[1:] or ["3.11", "3.13"]:
            try:
                print(wheel(version))
            except (WheelUnavailable, subprocess.SubprocessError) as err:
                print(f"tests/wheels.py: {err}", file=sys.stderr)
                status = 1
        return status
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
