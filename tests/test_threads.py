"""`threads = N`: N Python threads per worker, fed by the worker's event loop, so one worker serves N requests
at once (what an I/O-bound app needs). Proved with a barrier inside the app, not with timings."""

from __future__ import annotations

import threading

from liegetest import APPS, http_get


def _parallel_gets(port: int, n: int) -> list:
    results: list = [None] * n

    def get(i: int) -> None:
        try:
            results[i] = http_get(port, "/wait", timeout=60)
        except Exception as e:  # noqa: BLE001 - inspected below
            results[i] = e

    threads = [threading.Thread(target=get, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return results


def test_one_worker_with_four_threads_serves_four_requests_at_once(liege):
    srv = liege("--wsgi-file", APPS / "barrier.py", "--processes", "1", "--threads", "4",
                "--env", "BARRIER_PARTIES=4", workers=1, ready_path="/ping")
    results = _parallel_gets(srv.port, 4)
    bodies = [r.body.decode() for r in results if not isinstance(r, Exception) and r.status == 200]
    assert len(bodies) == 4, f"expected 4 requests inside the app at once, got {results!r}"
    pids = {b.split()[0] for b in bodies}
    thread_ids = {b.split()[1] for b in bodies}
    assert len(pids) == 1, "one worker process served all four"
    assert len(thread_ids) == 4, "each request ran on its own Python thread"
    assert all(b.endswith("multithread=True") for b in bodies)


def test_without_threads_a_worker_runs_one_request_at_a_time(liege):
    # Two parties but one thread in one worker: the barrier can never open, every request gets 503 after the
    # barrier's timeout instead of hanging forever (the app bounds it).
    srv = liege("--wsgi-file", APPS / "barrier.py", "--processes", "1",
                "--env", "BARRIER_PARTIES=2", "--env", "BARRIER_TIMEOUT=2", workers=1, ready_path="/ping")
    results = _parallel_gets(srv.port, 2)
    statuses = sorted(r.status for r in results if not isinstance(r, Exception))
    assert statuses == [503, 503], results
