"""One emperor, two CPythons: this machine's 3.11 and Debian trixie's 3.13 (in a chroot, tests/chroot.py).

Under one emperor: the seed app on 3.11, and a Flask app on 3.13 through `python = <wrapper>` (a script that
runs a 3.13 virtualenv's python inside the chroot, with Flask and liege's wheel for 3.13 installed there; the
wheel is built here by tests/wheels.py). Both serve, both reload on touch, both show in the one API; the
vassals whose interpreter cannot run them (no liege runtime; a 3.11 virtualenv given to 3.13) show why in the
API, naming both versions and the fix. Run with the emperor as the embedded binary and as the `liege`
command of a pip-installed venv (extension module).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import chroot
import wheels
from liegetest import REPO, READY_TIMEOUT, http_get, wait_for
from liegetest import Emperor

FLASK = "Flask==3.1.3"

FLASK_APP = """\
import sys
import flask

app = flask.Flask(__name__)

@app.route("/")
def index():
    return "flask %s on Python %d.%d (%s)" % (flask.__version__ if hasattr(flask, "__version__") else "?",
                                             sys.version_info[0], sys.version_info[1], sys.prefix)
"""


def _trixie_root() -> Path:
    root = chroot.ready(*chroot.TRIXIE_PYTHON)
    if root is None:
        message = "no trixie chroot with CPython 3.13 (tests/run prepares it: tests/chroot.py prepare trixie ...)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return root


@pytest.fixture(scope="module")
def trixie(tmp_path_factory):
    """The chroot, a 3.13 venv in a host directory bound into it (Flask + liege for 3.13), and wrappers."""
    root = _trixie_root()
    try:
        wheel = wheels.wheel("3.13")
    except wheels.WheelUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    base = tmp_path_factory.mktemp("py313")
    venv = base / "venv313"
    binds = [base, REPO]
    done = chroot.run_inside(root, ["/usr/bin/python3.13", "-m", "venv", os.fspath(venv)], binds=binds,
                             capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    # Flask and its dependencies for 3.13, fetched by this machine's pip (the chroot has neither its index
    # configuration nor its certificates), installed offline inside; liege from the wheel.
    deps = wheels.OUT / "deps-py313"
    if not any(deps.glob("flask-*.whl")):
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                  "--only-binary=:all:", "--python-version", "3.13", "--implementation", "cp",
                                  "--abi", "cp313", "--platform", "manylinux_2_17_x86_64", "--platform",
                                  "manylinux2014_x86_64", "-d", deps, FLASK], capture_output=True, text=True,
                                 timeout=300, stdin=subprocess.DEVNULL)
        assert fetched.returncode == 0, fetched.stderr
    done = chroot.run_inside(root, [os.fspath(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                                    "--disable-pip-version-check", "--no-index", "--find-links", os.fspath(deps),
                                    FLASK, os.fspath(wheel)],
                             binds=binds, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {
        "root": root,
        "base": base,
        "venv": venv,
        "binds": binds,
    }


def wrapper_for(trixie, path: Path, exe: str, extra_binds=()) -> Path:
    return chroot.wrapper(path, trixie["root"], exe, binds=[*trixie["binds"], *extra_binds])


@pytest.fixture(scope="module")
def pip_liege(tmp_path_factory) -> Path:
    """The `liege` command of a fresh 3.11 venv with the wheel installed (the extension-module emperor)."""
    venv = tmp_path_factory.mktemp("py311") / "venv"
    subprocess.run([wheels.host_python(), "-m", "venv", venv], check=True, timeout=120)
    done = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-index", "-q",
                           wheels.wheel(wheels.host_version())], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return venv / "bin" / "liege"


@pytest.fixture(params=["binary", "pip"])
def emperor(request, trixie, liege_binary, tmp_path):
    binary = liege_binary if request.param == "binary" else request.getfixturevalue("pip_liege")
    # The emperor's vassal directory must be visible inside the chroot too (the 3.13 vassal's cwd and files).
    root = trixie["base"] / f"emperor-{request.param}-{time.monotonic_ns()}"
    root.mkdir()
    e = Emperor(binary, root, name=f"emperor-{request.param}")
    yield e
    e.kill_all()
    shutil.rmtree(root, ignore_errors=True)


def wait_error(emperor: Emperor, name: str, needle: str) -> str:
    def check():
        v = emperor.vassal(name)
        error = (v or {}).get("last_error") or ""
        return error if needle in error else None
    try:
        return wait_for(check, READY_TIMEOUT, f"vassal {name} reporting {needle!r}", interval=0.1)
    except TimeoutError as err:
        raise TimeoutError(f"{err}; now: {emperor.vassal(name)}\n{emperor.describe()}") from None


def reload_and_wait(emperor: Emperor, name: str, ini: Path) -> None:
    old = emperor.vassal(name)["pid"]
    os.utime(ini, (time.time() + 2, time.time() + 2))
    emperor.wait_state(name, "running", where=lambda v: v["pid"] not in (None, old))


def test_one_emperor_two_pythons(emperor, trixie, tmp_path):
    vassals = emperor.dir
    shutil.copy(REPO / "vassals" / "simple_app.py", vassals / "simple_app.py")
    (vassals / "flask313.py").write_text(FLASK_APP)
    py313 = wrapper_for(trixie, emperor.root / "python3.13-venv", os.fspath(trixie["venv"] / "bin" / "python"))
    bare313 = wrapper_for(trixie, emperor.root / "python3.13-bare", "/usr/bin/python3.13")
    venv311 = trixie["base"] / "venv311"
    if not venv311.exists():
        # --copies: the venv's python must exist inside the chroot too, where /usr/bin/python3.11 does not.
        subprocess.run([wheels.host_python(), "-m", "venv", "--copies", "--without-pip", venv311], check=True,
                       timeout=120)

    (vassals / "seed.ini").write_text("[uwsgi]\nwsgi-file = simple_app.py\nprocesses = 2\n")
    (vassals / "flask313.ini").write_text(f"[uwsgi]\npython = {py313}\nwsgi-file = flask313.py\n"
                                          "callable = app\nprocesses = 2\n")
    (vassals / "nolib.ini").write_text(f"[uwsgi]\npython = {bare313}\nwsgi-file = flask313.py\n")
    (vassals / "wrongvenv.ini").write_text(f"[uwsgi]\npython = {py313}\nvirtualenv = {venv311}\n"
                                           "wsgi-file = flask313.py\ncallable = app\n")
    emperor.start()

    _, seed_port = emperor.wait_serving("seed")
    _, flask_port = emperor.wait_serving("flask313")
    assert http_get(seed_port, "/").body.startswith(b"hello world")
    flask_text = http_get(flask_port, "/").text
    assert "on Python 3.13" in flask_text and os.fspath(trixie["venv"]) in flask_text, flask_text

    # Both in the one API, each with its workers.
    listed = emperor.vassals()
    for name in ("seed", "flask313"):
        assert listed[name]["state"] == "running", listed[name]
        assert len(listed[name]["workers"]) == 2, listed[name]

    # The seed runs on 3.11 (the embedded binary or the pip venv's python), Flask on the chroot's 3.13.
    seed_exe = Path(f"/proc/{listed['seed']['pid']}/exe").resolve()
    flask_exe = Path(f"/proc/{listed['flask313']['pid']}/exe").resolve()
    assert "3.13" not in seed_exe.name, seed_exe
    assert flask_exe.name == "python3.13", flask_exe

    error = wait_error(emperor, "nolib", "has no liege runtime")
    assert "Python 3.13" in error and "Python 3.11" in error and "-m pip install liege==" in error, error
    error = wait_error(emperor, "wrongvenv", "was made for Python 3.11")
    assert "runs on Python 3.13" in error and "-m venv" in error, error

    # Both reload on touch: a new master, serving again.
    reload_and_wait(emperor, "seed", vassals / "seed.ini")
    reload_and_wait(emperor, "flask313", vassals / "flask313.ini")
    assert http_get(emperor.port_of("seed"), "/").status == 200
    assert "on Python 3.13" in http_get(emperor.port_of("flask313"), "/").text
