"""The seed document's command, with liege in place of uwsgi, on the Python 3 port of its app:

    liege --http-socket :PORT --wsgi-file simple_app.py --ini simple_app.ini

run in a temporary copy of vassals/simple_app.{py,ini} (socket = /tmp/%n.sock, processes = 4, master = 1).
"""

from __future__ import annotations

import os
import re
import shutil
import stat

import pytest

from liegetest import (REPO, free_port, seed_body_counter, http_get, http_request, uwsgi_request, uwsgi_vars, wait_for,
                       HTTPConn)

SEED_SOCK = "/tmp/simple_app.sock"


@pytest.fixture
def seed_dir(tmp_path):
    for name in ("simple_app.py", "simple_app.ini"):
        src = REPO / "vassals" / name
        if not src.exists():
            pytest.fail(f"{src} is missing (the seed app port belongs in vassals/)", pytrace=False)
        shutil.copy(src, tmp_path / name)
    return tmp_path


@pytest.fixture
def seed_server(liege, seed_dir, seed_lock):
    port = free_port()
    srv = liege("--http-socket", f":{port}", "--wsgi-file", "simple_app.py", "--ini", "simple_app.ini",
                http=port, cwd=seed_dir, workers=4)
    return srv


def test_seed_ini_is_the_seed(seed_dir):
    lines = [ln.strip() for ln in (seed_dir / "simple_app.ini").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith((";", "#"))]
    assert lines[0] == "[uwsgi]"
    assert set(lines[1:]) >= {"socket = /tmp/%n.sock", "processes = 4", "master = 1"}


def test_seed_command_serves_exact_body(seed_server):
    r = http_get(seed_server.port, "/")
    assert r.status == 200
    assert r.header("content-type") == "text/plain"
    seed_body_counter(r.body)


def test_seed_body_over_http10_and_keepalive(seed_server):
    r = http_request(seed_server.port, "GET", "/", version="HTTP/1.0")
    assert r.status == 200 and r.version in ("HTTP/1.0", "HTTP/1.1")
    assert r.header("transfer-encoding") is None, "chunked encoding is not allowed in a reply to HTTP/1.0"
    seed_body_counter(r.body)
    with HTTPConn.tcp(seed_server.port) as c:
        for _ in range(5):
            r = c.request("GET", "/")
            assert r.status == 200 and r.complete
            seed_body_counter(r.body)


def test_seed_has_four_workers_under_a_master(seed_server):
    workers = seed_server.worker_pids()
    assert len(workers) == 4, f"expected 4 workers, found {workers}"
    assert seed_server.pid not in workers


def test_seed_post_fork_hook_ran_in_each_worker(seed_server):
    workers = set(seed_server.worker_pids())

    def printed():
        out = seed_server.output()
        pids = {int(x) for x in re.findall(r"^(\d+)\s*$", out, re.M)}
        return out.count("nuovo uwsgi_server") >= 4 and workers <= pids and (out, pids)

    try:
        out, pids = wait_for(printed, 15, "each worker to print 'nuovo uwsgi_server' and its pid")
    except TimeoutError:
        pytest.fail(f"the hook's prints did not show up for all 4 workers {sorted(workers)}; output so far:\n"
                    f"{seed_server.output()[-3000:]}", pytrace=False)
    assert out.count("nuovo uwsgi_server") == 4, "the hook ran more often than there are workers"
    assert pids == workers, f"printed pids {sorted(pids)} are not the worker pids {sorted(workers)}"
    assert "uWSGI version:" in out, "the app's import-time print is missing"


def test_seed_unix_socket_speaks_uwsgi(seed_server):
    st = os.stat(SEED_SOCK)
    assert stat.S_ISSOCK(st.st_mode)
    r = uwsgi_request(SEED_SOCK, uwsgi_vars("GET", "/"))
    assert r.status == 200
    seed_body_counter(r.body)


def test_seed_options_merge_in_order(liege, seed_dir, seed_lock):
    # Options merge in order: --processes after --ini overrides the ini's 4. With one worker, the app's
    # counter goes up by one on every request (the readiness probe may already have used some values).
    port = free_port()
    srv = liege("--http-socket", f":{port}", "--wsgi-file", "simple_app.py", "--ini", "simple_app.ini",
                "--processes", "1", http=port, cwd=seed_dir, workers=1)
    counters = [seed_body_counter(http_get(srv.port, "/").body) for _ in range(4)]
    assert counters == list(range(counters[0], counters[0] + 4))
