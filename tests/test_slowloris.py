"""Slowloris: a thousand idle or half-sent connections must not stop a 2-worker app from serving others."""

from __future__ import annotations

import resource
import socket

from liegetest import APPS, http_get, wait_for

IDLE = 1000


def test_a_thousand_idle_connections_do_not_block_new_requests(liege):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE + 1024), hard))
    srv = liege("--wsgi-file", APPS / "echo.py", "--processes", "2", workers=2, ready_path="/__fixed__")
    sockets: list[socket.socket] = []
    try:
        for i in range(IDLE):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            if i % 2:
                # Half a request head, never finished (the classic slowloris).
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(s)
        for _ in range(20):
            r = http_get(srv.port, "/__fixed__", timeout=10)
            assert r.status == 200 and r.body == b"0123456789" * 100
        assert len(srv.worker_pids()) == 2
    finally:
        for s in sockets:
            s.close()
    wait_for(lambda: http_get(srv.port, "/__fixed__").status == 200, what="serving after the idle clients left")
