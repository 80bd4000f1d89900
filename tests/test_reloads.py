"""Reloads without losing a request: touch-reload, chain reload (and its rollback when the new code is
broken), and the master FIFO's one-letter commands."""

from __future__ import annotations

import os
import threading
import time

from liegetest import http_get, wait_for

APP_V = '''import os
VERSION = "{version}"
{extra}
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(VERSION + " " + str(os.getpid())).encode()]
'''


def write_app(path, version: str, extra: str = "") -> None:
    path.write_text(APP_V.format(version=version, extra=extra))
    # A distinct mtime even within one second (the reload reads the source anyway).
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def version_of(port: int) -> str:
    r = http_get(port, "/")
    assert r.status == 200, r
    return r.body.decode().split()[0]


class RequestLoop:
    """Requests in a loop from a thread until stopped (bounded: at most 20,000 requests or 60 s)."""

    def __init__(self, port: int):
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and self.ok + len(self.failures) < 20_000 and time.monotonic() < deadline:
            try:
                r = http_get(self.port, "/", timeout=10)
                if r.status == 200:
                    self.ok += 1
                    self.versions.add(r.body.decode().split()[0])
                else:
                    self.failures.append(f"status {r.status}")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                self.failures.append(repr(e))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(70)


def test_touch_reload_under_load_loses_no_request(liege, tmp_path):
    app, trigger = tmp_path / "app.py", tmp_path / "reload.trigger"
    write_app(app, "v1")
    trigger.write_text("")
    srv = liege("--wsgi-file", app, "--processes", "2", "--touch-reload", trigger, workers=2)
    assert version_of(srv.port) == "v1"
    loop = RequestLoop(srv.port)
    wait_for(lambda: loop.ok >= 20, what="the request loop to run")
    write_app(app, "v2")
    os.utime(trigger, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    wait_for(lambda: "v2" in loop.versions, timeout=20, what="the new version to answer")
    settled = loop.ok
    wait_for(lambda: loop.ok >= settled + 20, what="more requests after the reload")
    loop.stop()
    assert loop.failures == [], loop.failures[:5]
    srv.wait_log("was touched")


def test_chain_reload_replaces_workers_one_at_a_time(liege, tmp_path):
    app, trigger = tmp_path / "app.py", tmp_path / "chain.trigger"
    write_app(app, "v1")
    trigger.write_text("")
    srv = liege("--wsgi-file", app, "--processes", "3", "--lazy-apps", "--touch-chain-reload", trigger, workers=3)
    wait_for(lambda: srv.logs().count("app loaded") == 3, what="all workers to load v1")
    before = set(srv.worker_pids())
    loop = RequestLoop(srv.port)
    write_app(app, "v2")
    os.utime(trigger, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    srv.wait_log("chain reload complete", timeout=30)
    wait_for(lambda: len(srv.worker_pids()) == 3 and not (set(srv.worker_pids()) & before), timeout=20,
             what="all three workers replaced")
    loop.stop()
    assert loop.failures == [], loop.failures[:5]
    assert version_of(srv.port) == "v2"


def test_chain_reload_with_broken_code_keeps_the_old_workers(liege, tmp_path):
    app, trigger = tmp_path / "app.py", tmp_path / "chain.trigger"
    write_app(app, "v1")
    trigger.write_text("")
    srv = liege("--wsgi-file", app, "--processes", "2", "--lazy-apps", "--touch-chain-reload", trigger, workers=2)
    # lazy-apps: each worker imports the app itself; both must have v1 loaded before the file breaks.
    wait_for(lambda: srv.logs().count("app loaded") == 2, what="both workers to load v1")
    before = sorted(srv.worker_pids())
    write_app(app, "v2", extra='raise RuntimeError("broken deploy")')
    os.utime(trigger, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    srv.wait_log("chain reload stopped", timeout=30)
    assert "broken deploy" in srv.logs()
    for _ in range(10):
        assert version_of(srv.port) == "v1"
    assert sorted(srv.worker_pids()) == before, "the old workers must keep serving, untouched"


def test_master_fifo_commands(liege, tmp_path):
    app, fifo = tmp_path / "app.py", tmp_path / "master.fifo"
    write_app(app, "v1")
    srv = liege("--wsgi-file", app, "--processes", "3", "--master-fifo", fifo, workers=3)

    def send(letter: str) -> None:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, letter.encode())
        finally:
            os.close(fd)

    send("-")
    wait_for(lambda: len(srv.worker_pids()) == 2, timeout=15, what="one worker less after '-'")
    send("+")
    wait_for(lambda: len(srv.worker_pids()) == 3, timeout=15, what="back to three after '+'")
    write_app(app, "v2")
    send("r")
    wait_for(lambda: version_of(srv.port) == "v2", timeout=20, what="'r' to reload the app")
    send("q")
    assert srv.wait_exit(30) == 0
