"""Fixtures for liege's integration tests (real processes on 127.0.0.1 and unix sockets in temp dirs).

- `liege_binary`: the binary under test (env LIEGE_BIN, else target/release/liege); fails, never skips, if absent.
- `liege`: a factory that starts `liege ARGS...` (optionally adding `--http-socket 127.0.0.1:PORT`), waits until
  it answers, and ends its whole process group at teardown, even when the test failed.
- `serve`: shorthand for the common case "this app file / module with these options".
- `venv_python`: the test virtualenv (REPO/.venv) that framework apps load through `virtualenv =`.
On failure, each liege started by the test adds its stderr/stdout tail to the report.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from liegetest import (APPS, EMPEROR_APP, REPO, VENV, Emperor, Liege, free_port, liege_bin,  # noqa: E402
                       register_for_report)


def pytest_configure(config):
    config.addinivalue_line("markers", "nginx: needs the nginx binary (installed by tests/run)")


@pytest.fixture(scope="session")
def liege_binary() -> Path:
    b = liege_bin()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail(f"liege binary not found at {b}: run `cargo build --release` (tests/run does) "
                    f"or set LIEGE_BIN", pytrace=False)
    return b


@pytest.fixture(scope="session")
def venv_dir() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{VENV} is missing: tests/run creates it", pytrace=False)
    return VENV


class LiegeFactory:
    def __init__(self, node, workdir: Path, binary: Path):
        self.node = node
        self.workdir = workdir
        self.binary = binary
        self.instances: list[Liege] = []

    def __call__(self, *args, http: bool = True, ready: bool = True, workers: int | None = None,
                 cwd=None, env: dict[str, str] | None = None, uwsgi_addr=None, name: str | None = None,
                 ready_path: str = "/", start: bool = True) -> Liege:
        """Starts liege with args. http=True adds `--http-socket 127.0.0.1:<free port>` (instance.port);
        ready=True waits for a response (on HTTP, else on uwsgi_addr) and for `workers` workers if given."""
        argv = [os.fspath(a) for a in args]
        port = None
        if http is True:
            port = free_port()
            argv = ["--http-socket", f"127.0.0.1:{port}", *argv]
        elif isinstance(http, int) and http is not False:
            port = http
        name = name or f"liege{len(self.instances)}"
        inst = Liege(argv, cwd=cwd or self.workdir, logdir=self.workdir / "logs", env=env, http_port=port,
                     uwsgi_addr=uwsgi_addr, name=name, binary=self.binary)
        self.instances.append(inst)
        register_for_report(self.node, inst)
        if start:
            inst.start()
            if ready:
                inst.wait_ready(workers=workers, path=ready_path)
        return inst

    def stop_all(self) -> None:
        for inst in reversed(self.instances):
            inst.stop()


@pytest.fixture
def liege(request, tmp_path, liege_binary):
    factory = LiegeFactory(request.node, tmp_path, liege_binary)
    yield factory
    factory.stop_all()


@pytest.fixture
def serve(liege, tmp_path):
    """serve("echo.py", "--processes", "2") -> a ready Liege serving tests/apps/echo.py over HTTP.

    The first argument is a file in tests/apps (served with --wsgi-file) or "module:callable" (with --module and
    --pythonpath tests/apps)."""
    def _serve(app: str, *extra, **kw) -> Liege:
        if app.endswith(".py"):
            args = ["--wsgi-file", APPS / app]
        else:
            args = ["--pythonpath", APPS, "--module", app]
        return liege(*args, *extra, **kw)
    return _serve


@pytest.fixture
def markers(tmp_path) -> Path:
    """A directory where apps leave marker files (close() called, hooks ran, ...)."""
    d = tmp_path / "markers"
    d.mkdir()
    return d


@pytest.fixture
def seed_lock():
    """The seed ini puts its uwsgi socket at /tmp/simple_app.sock: one test at a time across xdist workers."""
    with open("/tmp/liege-tests-simple_app.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def short_tmp():
    """A short directory for unix sockets (sun_path is limited to 108 bytes; pytest's tmp_path can be long)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="liege-t-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        instances = list(getattr(item, "_liege_instances", []))
        instances += [v for v in getattr(item, "funcargs", {}).values()
                      if isinstance(v, Liege) and v not in instances]
        for inst in instances:
            title = f"liege {inst.name}" if isinstance(inst, Liege) else type(inst).__name__
            report.sections.append((f"{title} ({report.when})", inst.describe()))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


# The emperor fixtures (tests/liegetest.py `Emperor`): every process an emperor started ends with the test.
@pytest.fixture
def emperor_factory(request, tmp_path, liege_binary):
    made: list[Emperor] = []

    def make(*, start: bool = True, root: Path | None = None, name: str | None = None, **kw) -> Emperor:
        if root is None:
            root = tmp_path / f"e{len(made)}"
            root.mkdir()
        e = Emperor(liege_binary, root, name=name or f"emperor{len(made)}", **kw)
        (e.dir / "app.py").write_text(EMPEROR_APP)
        made.append(e)
        register_for_report(request.node, e)
        if start:
            e.start()
        return e

    yield make
    for e in made:
        e.kill_all()
    # SIGKILL is delivered asynchronously: a killed process may still be listed for a moment (under load, 50
    # vassals' worth of them); only one still there after a few seconds survived.
    deadline = time.monotonic() + 5
    leftovers = [pid for e in made for pid in e.vassal_processes()]
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = [pid for e in made for pid in e.vassal_processes()]
    assert not leftovers, f"vassal processes survived the test: {leftovers}"


@pytest.fixture
def emperor(emperor_factory) -> Emperor:
    return emperor_factory()
