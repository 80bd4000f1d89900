"""`pip install liege` into a fresh virtualenv gives a working `liege` command (the extension-module build).

The wheel is the one maturin builds from this checkout for this machine's CPython (tests/wheels.py: cached
under target/, so only the first run compiles). Each test makes a new venv with nothing but pip, installs the
wheel with `--no-index` (liege has no dependencies), and runs what a user would: the seed document's command,
`python -m liege`, a reload, and the errors a user meets when an environment does not fit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import wheels
from conftest import LiegeFactory
from liegetest import REPO, clean_env, free_port, http_get, wait_for
from liegetest import seed_body_counter


@pytest.fixture(scope="session")
def wheel_311() -> Path:
    try:
        return wheels.wheel(wheels.host_version())
    except wheels.WheelUnavailable as err:
        pytest.fail(str(err), pytrace=False)


def make_venv(path: Path, python: Path | str | None = None) -> Path:
    python = python or wheels.host_python()
    subprocess.run([os.fspath(python), "-m", "venv", os.fspath(path)], check=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    return path


def pip_install(venv: Path, *what: str | os.PathLike) -> None:
    done = subprocess.run([os.fspath(venv / "bin" / "python"), "-m", "pip", "install", "--no-index",
                           "--disable-pip-version-check", "-q", *map(os.fspath, what)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def installed(tmp_path, wheel_311) -> Path:
    """A fresh venv with liege installed from the wheel."""
    venv = make_venv(tmp_path / "venv")
    pip_install(venv, wheel_311)
    return venv


@pytest.fixture
def venv_liege(request, tmp_path, installed):
    factory = LiegeFactory(request.node, tmp_path, installed / "bin" / "liege")
    yield factory
    factory.stop_all()


@pytest.fixture
def seed_dir(tmp_path):
    for name in ("simple_app.py", "simple_app.ini"):
        shutil.copy(REPO / "vassals" / name, tmp_path / name)
    return tmp_path


def test_wheel_installs_the_liege_command(installed):
    version = subprocess.run([installed / "bin" / "liege", "--version"], capture_output=True, text=True,
                             timeout=30, env=clean_env())
    assert version.returncode == 0, version.stderr
    assert "extension module" in version.stdout, version.stdout
    assert f"Python {wheels.host_version()}" in version.stdout
    assert os.fspath(installed / "bin" / "python") in version.stdout
    # python -m liege is the same command.
    module = subprocess.run([installed / "bin" / "python", "-m", "liege", "--help"], capture_output=True,
                            text=True, timeout=30, env=clean_env())
    assert module.returncode == 0 and "--http-socket" in module.stdout, module.stderr


def test_seed_command_from_pip_install(venv_liege, seed_dir, seed_lock):
    port = free_port()
    srv = venv_liege("--http-socket", f":{port}", "--wsgi-file", "simple_app.py", "--ini", "simple_app.ini",
                     http=port, cwd=seed_dir, workers=4)
    response = http_get(port, "/")
    assert response.status == 200, response
    seed_body_counter(response.body)
    # The workers are forks of the venv's own interpreter (not a liege binary).
    for pid in srv.worker_pids():
        assert Path(f"/proc/{pid}/exe").resolve() == Path(os.path.realpath(wheels.host_python()))


APP = """\
import os, sys
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s|%s|%s|%s" % (os.environ.get("GREETING"), sys.prefix, sys.argv, sys.path[0])).encode()]
"""


def test_the_app_sees_its_environment_and_reloads(venv_liege, installed, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    srv = venv_liege("--wsgi-file", "app.py", "--env", "GREETING=hi", "--pyargv", "a b", "--processes", "2",
                     workers=2)
    text = http_get(srv.port, "/").text
    greeting, prefix, argv, first = text.split("|")
    assert greeting == "hi"
    assert Path(prefix) == installed
    assert argv.startswith("['liege',")
    assert "'a', 'b'" in text
    # sys.path[0] is the app's directory (from its options), not the console script's bin/.
    assert first == os.fspath(tmp_path), text
    before = set(srv.worker_pids())
    mark = srv.log_mark()
    srv.signal(signal.SIGHUP)
    srv.wait_log("spawned worker", since=mark, timeout=30)
    wait_for(lambda: len(set(srv.worker_pids()) - before) == 2, 30, "two new workers")
    assert http_get(srv.port, "/").status == 200


def test_sigint_is_a_quick_stop_not_a_keyboardinterrupt(venv_liege, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    srv = venv_liege("--wsgi-file", "app.py", workers=1)
    srv.signal(signal.SIGINT)
    assert srv.wait_exit(20) == 0, srv.describe()
    assert "KeyboardInterrupt" not in srv.output()


def test_venv_of_another_python_is_refused_with_both_versions(venv_liege, tmp_path):
    """`virtualenv =` of another Python than the one `python =` names: never a silent mix."""
    other = tmp_path / "other"
    (other / "bin").mkdir(parents=True)
    (other / "bin" / "python").symlink_to("/bin/false")
    (other / "pyvenv.cfg").write_text("home = /opt/python3.99/bin\nversion = 3.99.1\n")
    (tmp_path / "app.py").write_text(APP)
    srv = venv_liege("--wsgi-file", "app.py", "--virtualenv", other,
                     "--python", venv_liege.binary.parent / "python", ready=False)
    assert srv.wait_exit(30) != 0
    log = srv.output()
    assert "made for Python 3.99" in log and f"runs on Python {wheels.host_version()}" in log, log
    assert "-m venv" in log, log


def test_interpreter_without_liege_says_how_to_install_it(venv_liege, tmp_path):
    bare = make_venv(tmp_path / "bare")
    (tmp_path / "app.py").write_text(APP)
    srv = venv_liege("--wsgi-file", "app.py", "--virtualenv", bare, ready=False)
    assert srv.wait_exit(30) == 78
    log = srv.output()
    assert "has no liege runtime" in log, log
    assert f"{bare / 'bin' / 'python'} -m pip install liege==" in log, log


def test_binary_hands_a_foreign_venv_to_its_own_interpreter(liege, installed, tmp_path):
    """The embedded binary with `virtualenv` of its own Python keeps running it itself; `python =` sends the
    vassal to that interpreter (the venv's liege): one command line, either build."""
    (tmp_path / "app.py").write_text(APP)
    srv = liege("--wsgi-file", "app.py", "--python", installed / "bin" / "python", workers=1)
    _, prefix, _, _ = http_get(srv.port, "/").text.split("|")
    assert Path(prefix) == installed
    cmdline = Path(f"/proc/{srv.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0] == os.fspath(installed / "bin" / "python").encode() and cmdline[1] == b"-c", cmdline[:2]


FROM_SOURCE = REPO / "target" / "pip-from-source"


@pytest.fixture(scope="session")
def source_venv(tmp_path_factory) -> Path:
    """A fresh venv where `pip install <checkout>` ran (maturin from PyPI as the build backend): the one
    tests/run made, or with LIEGE_PIP_FROM_SOURCE=1 one made now (it compiles)."""
    if (FROM_SOURCE / "bin" / "liege").exists():
        return FROM_SOURCE
    if os.environ.get("LIEGE_PIP_FROM_SOURCE") != "1":
        message = f"{FROM_SOURCE} is missing (tests/run makes it; or set LIEGE_PIP_FROM_SOURCE=1)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    venv = make_venv(tmp_path_factory.mktemp("from-source") / "venv")
    env = dict(os.environ, CARGO_TARGET_DIR=os.fspath(REPO / "target" / "wheel-build"))
    done = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", REPO], env=env,
                          capture_output=True, text=True, timeout=3000, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


def test_pip_install_from_the_checkout_runs_the_seed_command(request, source_venv, seed_dir, seed_lock, tmp_path):
    """`pip install <checkout>` in a fresh venv gives the `liege` command, and the seed document's command
    serves from it as from uwsgi."""
    version = subprocess.run([source_venv / "bin" / "liege", "--version"], capture_output=True, text=True,
                             timeout=30, env=clean_env())
    assert "extension module" in version.stdout, version
    factory = LiegeFactory(request.node, tmp_path, source_venv / "bin" / "liege")
    try:
        port = free_port()
        factory("--http-socket", f":{port}", "--wsgi-file", "simple_app.py", "--ini", "simple_app.ini",
                http=port, cwd=seed_dir, workers=4)
        response = http_get(port, "/")
        assert response.status == 200, response
        seed_body_counter(response.body)
    finally:
        factory.stop_all()

if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
