"""Master lifecycle limits: each worker exit has a recorded cause in the log, and the worker is replaced."""

from __future__ import annotations

import re

from liegetest import APPS, http_get, wait_for

APP = APPS / "limits.py"


def pid_of(srv) -> int:
    r = http_get(srv.port, "/pid")
    assert r.status == 200, r
    return int(r.body)


def test_max_requests_recycles_the_worker(liege):
    srv = liege("--wsgi-file", APP, "--processes", "1", "--max-requests", "3", workers=1, ready_path="/pid")
    first = srv.worker_pids()
    assert len(first) == 1
    for _ in range(3):
        pid_of(srv)
    srv.wait_log(re.compile(r"worker 1 \(pid %d\) exited with code 0 \(max-requests\); respawning" % first[0]))
    wait_for(lambda: len(srv.worker_pids()) == 1 and srv.worker_pids() != first, what="a new worker")
    assert pid_of(srv) != first[0]


def test_max_requests_delta_staggers_workers(liege):
    # worker 1 recycles after 2 + 1*10 requests, not after 2: it survives 5 requests.
    srv = liege("--wsgi-file", APP, "--processes", "1", "--max-requests", "2", "--max-requests-delta", "10",
                workers=1, ready_path="/pid")
    pids = {pid_of(srv) for _ in range(5)}
    assert len(pids) == 1
    assert "max-requests" not in srv.logs()


def test_max_worker_lifetime_recycles_the_worker(liege):
    srv = liege("--wsgi-file", APP, "--processes", "1", "--max-worker-lifetime", "1", workers=1, ready_path="/pid")
    first = pid_of(srv)
    srv.wait_log(re.compile(r"\(pid %d\).*max-worker-lifetime" % first), timeout=15)
    wait_for(lambda: pid_of(srv) != first, timeout=15, what="a fresh worker after max-worker-lifetime")


def test_reload_on_rss_recycles_a_worker_that_grew(liege):
    srv = liege("--wsgi-file", APP, "--processes", "1", "--reload-on-rss", "64", workers=1, ready_path="/pid")
    first = pid_of(srv)
    r = http_get(srv.port, "/grow?128")
    assert r.status == 200
    # Detected right after the request by the worker itself (or by the master's periodic check).
    srv.wait_log(re.compile(r"RSS (\d+ MB )?over reload-on-rss"), timeout=15)
    srv.wait_log(re.compile(r"\(pid %d\) exited with code 0 \(reload-on-rss\)" % first), timeout=15)
    wait_for(lambda: pid_of(srv) != first, timeout=15, what="a fresh worker after reload-on-rss")


def test_harakiri_logs_the_python_stack_and_replaces_the_worker(liege):
    srv = liege("--wsgi-file", APP, "--processes", "1", "--harakiri", "1", workers=1, ready_path="/pid")
    first = pid_of(srv)
    r = http_get(srv.port, "/sleep", timeout=30)
    assert r.status == 504, f"nothing was sent yet: the client must get a 504, got {r!r}"
    srv.wait_log("HARAKIRI", timeout=15)
    logs = srv.logs()
    assert re.search(r"HARAKIRI: worker 1 \(pid %d\) stuck for [\d.]+ s .* in request \"GET /sleep\"" % first, logs), logs
    # faulthandler's dump of the stuck request's Python stack, naming the app's frame.
    srv.wait_log(re.compile(r'File ".*limits\.py", line \d+ in application'), timeout=10)
    srv.wait_log(re.compile(r"\(pid %d\) killed by signal 9 \(SIGKILL\) \(harakiri\); respawning" % first), timeout=10)
    wait_for(lambda: pid_of(srv) != first, timeout=15, what="the next request served by a fresh worker")


def test_harakiri_verbose_logs_the_request_vars(liege):
    srv = liege("--wsgi-file", APP, "--processes", "1", "--harakiri", "1", "--harakiri-verbose", workers=1,
                ready_path="/pid")
    r = http_get(srv.port, "/sleep?who=verbose", timeout=30)
    assert r.status == 504
    srv.wait_log(re.compile(r"HARAKIRI request vars \(harakiri-verbose\):\nREQUEST_METHOD=GET\nREQUEST_URI=/sleep\?who=verbose"),
                 timeout=10)


def test_a_worker_killed_under_load_loses_only_its_request(liege):
    """SIGKILL one of two workers while a request loop runs: at most the request it was serving fails."""
    import os
    import signal
    import threading
    import time

    srv = liege("--wsgi-file", APP, "--processes", "2", workers=2, ready_path="/pid")
    failures, served = [], [0]
    stop = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline and served[0] < 20_000:
            try:
                r = http_get(srv.port, "/pid", timeout=10)
                served[0] += 1 if r.status == 200 else 0
                if r.status != 200:
                    failures.append(r.status)
            except Exception as e:  # noqa: BLE001 - counted
                failures.append(repr(e))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    wait_for(lambda: served[0] >= 50, what="the loop to run")
    victim = srv.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    srv.wait_log(re.compile(r"\(pid %d\) killed by signal 9 \(SIGKILL\); respawning" % victim))
    wait_for(lambda: len(srv.worker_pids()) == 2 and victim not in srv.worker_pids(), what="the respawn")
    mark = served[0]
    wait_for(lambda: served[0] >= mark + 50, what="more requests after the respawn")
    stop.set()
    t.join(40)
    assert len(failures) <= 1, failures
