"""cheaper (uWSGI's `spare` algorithm): start with the minimum, add workers while all are busy, retire the
extra ones once idle."""

from __future__ import annotations

import threading
import time

from liegetest import APPS, http_get, wait_for


def test_cheaper_scales_up_under_load_and_back_down_when_idle(liege):
    srv = liege("--wsgi-file", APPS / "cheap.py", "--processes", "3", "--cheaper", "1", "--idle", "2",
                workers=1)
    assert len(srv.worker_pids()) == 1, "cheaper starts with its minimum"
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 40  # bounded even if the test fails early
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                http_get(srv.port, "/slow", timeout=30)
            except Exception:  # noqa: BLE001 - load only; the assertions are on worker counts
                pass

    clients = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        wait_for(lambda: len(srv.worker_pids()) == 3, timeout=30, what="cheaper to reach processes = 3 under load")
        srv.wait_log("cheaper: all")
    finally:
        stop.set()
        for c in clients:
            c.join(40)
    wait_for(lambda: len(srv.worker_pids()) == 1, timeout=30, what="cheaper to retire idle workers down to 1")
    srv.wait_log("idle for")
    assert http_get(srv.port, "/").status == 200
