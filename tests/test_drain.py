"""A reload costs no request, kept-alive clients included.

The clients here are Python's `http.client.HTTPConnection`, used as many programs use it: one connection kept
alive, requests one after another, no retry. Such a client fails a request when the server closes an idle
connection just as the request is sent. A draining worker answers every request already sent on its
connections, puts `Connection: close` on each connection's last response (the client then reconnects, to a live
worker), and closes only connections that stay idle for the whole drain grace. Each reload path is checked:
touch, chain reload, SIGHUP, `max-requests` recycling; GETs and POSTs."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest

from liegetest import HTTPConn, build_request, wait_for

APP = '''import os
VERSION = "{version}"
def application(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %d %d" % (VERSION, os.getpid(), len(body))).encode()]
'''


def write_app(path, version: str) -> None:
    path.write_text(APP.format(version=version))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def touch(path) -> None:
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))


class KeepAliveClients:
    """`count` threads, each with one kept-alive `http.client` connection, sending requests until stopped
    (bounded: 20,000 requests or 90 s per thread). Every failure is kept with its cause."""

    def __init__(self, port: int, count: int = 4, method: str = "GET"):
        self.port = port
        self.method = method
        self.ok = 0
        self.closes = 0
        self.pids: set[int] = set()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        deadline = time.monotonic() + 90
        sent = 0
        try:
            while not self._stop.is_set() and sent < 20_000 and time.monotonic() < deadline:
                sent += 1
                body = b"x" * 100 if self.method == "POST" else None
                try:
                    conn.request(self.method, "/", body=body)
                    response = conn.getresponse()
                    data = response.read()
                    with self._lock:
                        if response.status == 200:
                            self.ok += 1
                            self.pids.add(int(data.split()[1]))
                        else:
                            self.failures.append(f"status {response.status}")
                        if (response.getheader("Connection") or "").lower() == "close":
                            self.closes += 1
                except Exception as err:  # noqa: BLE001 - every failure is counted, none retried
                    with self._lock:
                        self.failures.append(repr(err))
                    conn.close()
        finally:
            conn.close()

    def wait_requests(self, more: int, timeout: float = 30) -> None:
        target = self.ok + more
        wait_for(lambda: self.ok >= target, timeout=timeout, what=f"{more} more requests")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(100)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_touch_reload_and_sighup_lose_no_kept_alive_request(liege, tmp_path, method):
    app, trigger = tmp_path / "app.py", tmp_path / "reload.trigger"
    write_app(app, "v1")
    trigger.write_text("")
    srv = liege("--wsgi-file", app, "--processes", "2", "--touch-reload", trigger, workers=2)
    clients = KeepAliveClients(srv.port, method=method)
    try:
        clients.wait_requests(50)
        first = set(srv.worker_pids())
        touch(trigger)
        wait_for(lambda: not (set(srv.worker_pids()) & first), timeout=30, what="the touch reload")
        clients.wait_requests(50)
        second = set(srv.worker_pids())
        srv.signal(signal.SIGHUP)
        wait_for(lambda: not (set(srv.worker_pids()) & second), timeout=30, what="the SIGHUP reload")
        clients.wait_requests(50)
    finally:
        clients.stop()
    assert clients.failures == [], clients.failures[:5]
    assert clients.closes >= 1, "the drained connections' last responses must say Connection: close"
    assert len(clients.pids) > 2, "requests were served by the old and the new workers"


def test_chain_reload_loses_no_kept_alive_request(liege, tmp_path):
    app, trigger = tmp_path / "app.py", tmp_path / "chain.trigger"
    write_app(app, "v1")
    trigger.write_text("")
    srv = liege("--wsgi-file", app, "--processes", "3", "--lazy-apps", "--touch-chain-reload", trigger, workers=3)
    wait_for(lambda: srv.logs().count("app loaded") == 3, what="all workers to load v1")
    before = set(srv.worker_pids())
    clients = KeepAliveClients(srv.port)
    try:
        clients.wait_requests(50)
        write_app(app, "v2")
        touch(trigger)
        srv.wait_log("chain reload complete", timeout=60)
        wait_for(lambda: len(srv.worker_pids()) == 3 and not (set(srv.worker_pids()) & before), timeout=30,
                 what="all three workers replaced")
        clients.wait_requests(50)
    finally:
        clients.stop()
    assert clients.failures == [], clients.failures[:5]


def test_max_requests_recycling_loses_no_kept_alive_request(liege, tmp_path):
    app = tmp_path / "app.py"
    write_app(app, "v1")
    srv = liege("--wsgi-file", app, "--processes", "2", "--max-requests", "40", workers=2)
    clients = KeepAliveClients(srv.port)
    try:
        # 600 requests over workers recycled every 40: about 15 recycles, each with kept-alive connections.
        clients.wait_requests(600, timeout=90)
    finally:
        clients.stop()
    assert clients.failures == [], clients.failures[:5]
    assert len(clients.pids) >= 6, f"the workers were recycled: {sorted(clients.pids)}"


def test_an_idle_connection_of_a_draining_worker_answers_its_next_request_then_closes(liege, tmp_path):
    app = tmp_path / "app.py"
    write_app(app, "v1")
    srv = liege("--wsgi-file", app, "--processes", "1", workers=1)
    with HTTPConn.tcp(srv.port) as conn:
        conn.send(build_request("GET", "/"))
        old_pid = int(conn.read_response().body.split()[1])
        srv.signal(signal.SIGHUP)
        # Until the old worker drains its answers are ordinary; from then on the next one says close. None fails.
        deadline = time.monotonic() + 20
        while True:
            conn.send(build_request("GET", "/"))
            response = conn.read_response()
            assert response.status == 200 and int(response.body.split()[1]) == old_pid, response
            if (response.header("connection") or "").lower() == "close":
                break
            assert time.monotonic() < deadline, "the old worker never announced the close"
            time.sleep(0.01)
        assert conn.is_closed_by_peer(5)
