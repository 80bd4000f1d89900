"""cheaper: uWSGI's adaptive worker count, each algorithm with real workers (spare, busyness with its
listen-queue emergency workers, manual with the master FIFO), the RSS limits, and idle mode (`idle`)."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from contextlib import contextmanager

from liegetest import APPS, http_get, wait_for

APP = APPS / "tuning.py"


@contextmanager
def load(port: int, path: str, clients: int, limit: float = 40.0):
    """`clients` threads requesting `path` back to back until the block ends (or `limit` seconds pass)."""
    stop = threading.Event()
    deadline = time.monotonic() + limit

    def run() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                http_get(port, path, timeout=30)
            except Exception:  # noqa: BLE001 - load only; the assertions are on workers and logs
                time.sleep(0.05)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(limit)


def test_spare_spawns_under_load_and_cheaps_the_oldest_when_idle(liege):
    srv = liege("--wsgi-file", APP, "--processes", "3", "--cheaper", "1", "--cheaper-overload", "1",
                workers=1)
    assert len(srv.worker_pids()) == 1, "cheaper starts with its minimum"
    with load(srv.port, "/slow?s=1", clients=4):
        wait_for(lambda: len(srv.worker_pids()) == 3, timeout=30, what="spare to reach processes = 3 under load")
        srv.wait_log(r"cheaper \(spare\): spawning 1 worker")
    wait_for(lambda: len(srv.worker_pids()) == 1, timeout=30, what="spare to cheap idle workers down to 1")
    srv.wait_log(r"cheaper \(spare\): stopping worker \d+ \(pid \d+\), the oldest idle one")
    assert http_get(srv.port, "/").status == 200


def test_busyness_spawns_when_busy_and_cheaps_when_idle(liege):
    srv = liege("--wsgi-file", APP, "--processes", "3", "--cheaper", "1", "--cheaper-algo", "busyness",
                "--cheaper-overload", "1", "--cheaper-busyness-multiplier", "2", "--cheaper-busyness-verbose",
                workers=1)
    srv.wait_log(r"\[busyness\] settings: min=25%, max=50%, overload=1, multiplier=2, respawn penalty=2")
    with load(srv.port, "/slow?s=0.3", clients=3):
        srv.wait_log(r"\[busyness\] 1s average busyness is at \d+%, will spawn 1 new worker", timeout=30)
        wait_for(lambda: len(srv.worker_pids()) >= 2, timeout=30, what="a worker spawned for busyness")
    srv.wait_log(r"\[busyness\] 1s average busyness of \d+ worker\(s\) is at \d+%")  # verbose
    wait_for(lambda: len(srv.worker_pids()) == 1, timeout=40, what="busyness to cheap idle workers down to 1")
    srv.wait_log(r"\[busyness\] 1s average busyness is at \d+%, cheap one of \d+ running workers")


def test_busyness_spawns_emergency_workers_when_the_listen_queue_fills(liege):
    """A busyness period far longer than the test, so only the listen-queue rule can act: one worker stuck in
    a slow request, connections waiting in the kernel's queue."""
    srv = liege("--wsgi-file", APP, "--processes", "3", "--cheaper", "1", "--cheaper-algo", "busyness",
                "--cheaper-overload", "600", "--cheaper-busyness-backlog-alert", "2", workers=1)
    stuck = threading.Thread(target=lambda: http_get(srv.port, "/slow?s=6", timeout=30), daemon=True)
    stuck.start()
    time.sleep(1)  # the worker is inside the slow request: nobody accepts now
    waiting = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(4)]
    try:
        for conn in waiting:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        srv.wait_log(r"\[busyness\] [3-9] requests in listen queue, spawning 1 emergency worker\(s\) \(1\)!",
                     timeout=15)
        wait_for(lambda: len(srv.worker_pids()) >= 2, timeout=15, what="an emergency worker")
        for conn in waiting:
            conn.settimeout(15)
            assert conn.recv(64).startswith(b"HTTP/1.1 200"), "the emergency worker serves the queue"
    finally:
        for conn in waiting:
            conn.close()
        stuck.join(30)


def test_manual_follows_the_master_fifo(liege, tmp_path):
    fifo = tmp_path / "master.fifo"
    srv = liege("--wsgi-file", APP, "--processes", "3", "--cheaper", "1", "--cheaper-algo", "manual",
                "--cheaper-initial", "2", "--master-fifo", fifo, workers=2)

    def send(letter: str) -> None:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, letter.encode())
        finally:
            os.close(fd)

    with load(srv.port, "/slow?s=0.5", clients=3, limit=4):
        time.sleep(3)
    assert len(srv.worker_pids()) == 2, "manual: load alone changes nothing"
    send("+")
    wait_for(lambda: len(srv.worker_pids()) == 3, timeout=15, what="'+' to add a worker")
    send("-")
    wait_for(lambda: len(srv.worker_pids()) == 2, timeout=15, what="'-' to stop the oldest idle worker")
    srv.wait_log(r"cheaper \(manual\): stopping worker 1 ")


def test_rss_soft_limit_stops_spawning(liege):
    """The same load that makes spare spawn (above) spawns nothing while the workers' RSS is over the limit."""
    srv = liege("--wsgi-file", APP, "--processes", "2", "--cheaper", "1", "--cheaper-overload", "1",
                "--cheaper-rss-limit-soft", "1", workers=1)
    with load(srv.port, "/slow?s=1", clients=3, limit=8):
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert len(srv.worker_pids()) == 1, "a spawn over cheaper-rss-limit-soft"
            time.sleep(0.2)
    assert not re.search(r"cheaper \(spare\): spawning", srv.logs())


def workers_rss(srv) -> int:
    total = 0
    for pid in srv.worker_pids():
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def test_rss_hard_limit_cheaps_workers_of_a_memory_hungry_app(liege):
    """Three workers of ~13 MB; one grows by 160 MB: the total passes the hard limit (150 MB), and the master
    stops the oldest idle worker every second while the total stays over it (never the last worker)."""
    hard = 150 << 20
    srv = liege("--wsgi-file", APP, "--processes", "3", "--cheaper", "1", "--cheaper-initial", "3",
                "--cheaper-algo", "manual", "--cheaper-rss-limit-soft", str(100 << 20),
                "--cheaper-rss-limit-hard", str(hard), workers=3)
    time.sleep(2.5)
    assert len(srv.worker_pids()) == 3 and "hard rss" not in srv.logs(), "under the limits: nothing happens"
    assert http_get(srv.port, "/grow?mb=160").status == 200
    srv.wait_log(r"cheaper hard rss memory limit exceeded \(\d+ bytes\), cheap one of 3 workers", timeout=15)
    wait_for(lambda: len(srv.worker_pids()) < 3 and (workers_rss(srv) < hard or len(srv.worker_pids()) == 1),
             timeout=20, what="workers stopped until under the hard limit (or one left)")
    left = len(srv.worker_pids())
    time.sleep(2.5)
    assert len(srv.worker_pids()) == left >= 1, "no stop once under the limit, never the last worker"
    assert http_get(srv.port, "/").status == 200


def test_idle_mode_stops_every_worker_until_a_connection_arrives(liege):
    srv = liege("--wsgi-file", APP, "--processes", "2", "--idle", "2", workers=2)
    srv.wait_log(r"workers have been inactive for more than 2 seconds", timeout=20)
    srv.wait_log(r"cheap mode enabled: waiting for socket connection")
    wait_for(lambda: srv.worker_pids() == [], timeout=10, what="every worker stopped in cheap mode")
    time.sleep(2)
    assert srv.worker_pids() == [], "nothing respawns in cheap mode"
    response = http_get(srv.port, "/", timeout=30)
    assert response.status == 200, "the waiting connection is served by the restarted workers"
    srv.wait_log(r"a connection is waiting: cheap mode ends, starting 2 worker")
    wait_for(lambda: len(srv.worker_pids()) == 2, timeout=10, what="processes workers again")
    assert len(re.findall(r"cheap mode enabled", srv.logs())) == 1
