"""Write timeouts: `so-send-timeout` (and its synonyms `socket-send-timeout`, `so-write-timeout`,
`socket-write-timeout`) and `socket-timeout` bounding a response write that makes no progress.

A client asks for a 64 MiB response and stops reading: once the kernel buffers are full the worker's write
waits, and after the timeout the connection is dropped, logged and counted in the stats' `write_errors`, while
the same (only) worker goes on serving other clients. uWSGI sets SO_SNDTIMEO on TCP sockets only, so a stalled
client on a unix socket waits for `socket-timeout` instead. A generator response holds its worker while it is
written (as in uWSGI), so there the timeout is what frees the worker for the others."""

from __future__ import annotations

import json
import os
import socket
import time

from liegetest import APPS, HTTPConn, http_get, wait_for
from liegetest import read_stats_socket

SIZE = 64 * 1024 * 1024


def stalled_client(connect, route: str = "__bigone__") -> socket.socket:
    """Asks for SIZE bytes with a tiny receive buffer, reads the head, then stops reading."""
    sock = connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /{route}?size={SIZE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.settimeout(10)
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


def drain(sock: socket.socket) -> int:
    """Reads until the server's close (bounded); returns the bytes read."""
    sock.settimeout(20)
    total = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return total
        if not chunk:
            return total
        total += len(chunk)
    raise AssertionError("the server never closed the stalled connection")


def tcp_connect(port: int):
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        return sock
    return connect


def unix_connect(path):
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(os.fspath(path))
        return sock
    return connect


def write_errors(stats_path) -> int:
    doc = json.loads(read_stats_socket(os.fspath(stats_path)))
    return sum(core["write_errors"] for worker in doc["workers"] for core in worker["cores"])


def test_so_send_timeout_drops_a_stalled_tcp_client_and_keeps_serving(liege, short_tmp):
    stats = short_tmp / "stats.sock"
    unix = short_tmp / "http.sock"
    srv = liege("--wsgi-file", APPS / "echo.py", "--processes", "1", "--socket-write-timeout", "2",
                "--http-socket", unix, "--stats", stats, workers=1, ready_path="/__fixed__")
    assert write_errors(stats) == 0
    mark = srv.log_mark()
    over_unix = stalled_client(unix_connect(unix))
    over_tcp = stalled_client(tcp_connect(srv.port))
    stalled_at = time.monotonic()
    # The only worker serves others meanwhile.
    for _ in range(5):
        assert http_get(srv.port, "/__fixed__", timeout=5).status == 200
    line = srv.wait_log(r"response write to 127\.0\.0\.1:\d+ made no progress for 2 s", 15, since=mark)
    dropped_after = time.monotonic() - stalled_at
    assert 1.5 <= dropped_after <= 12, dropped_after
    assert line
    received = drain(over_tcp)
    assert received < SIZE - (1 << 20), "cut, not completed"
    wait_for(lambda: write_errors(stats) == 1, 5, "the write error in the stats")
    # The unix-socket client, stalled as long, is still connected: SO_SNDTIMEO is for TCP sockets (uWSGI's
    # bind_to_tcp); it waits for socket-timeout (60 s) instead.
    time.sleep(max(0.0, 4.0 - (time.monotonic() - stalled_at)))
    assert srv.logs_since(mark).count("made no progress") == 1
    over_unix.settimeout(0.2)
    assert over_unix.recv(4096), "still streaming once read"
    over_unix.close()
    over_tcp.close()
    assert http_get(srv.port, "/__fixed__", timeout=5).status == 200


def test_socket_timeout_bounds_stalled_writes_and_frees_a_held_worker(liege):
    """uWSGI waits `socket-timeout` seconds for a socket to become writable (uwsgi_wait_write_req), whatever the
    socket; liege does the same (here without so-send-timeout). A generator response keeps its worker (one
    here) until it is written, so the other client is answered once the stalled one was cut."""
    srv = liege("--wsgi-file", APPS / "echo.py", "--processes", "1", "--socket-timeout", "2", workers=1,
                ready_path="/__fixed__")
    stalled = stalled_client(tcp_connect(srv.port), route="__big__")
    started = time.monotonic()
    with HTTPConn.tcp(srv.port, timeout=20) as other:
        assert other.request("GET", "/__fixed__").status == 200
        waited = time.monotonic() - started
        assert "made no progress for 2 s" in srv.logs(), "answered only once the stalled write was cut"
        assert 1.5 <= waited <= 15, waited
        assert drain(stalled) < SIZE - (1 << 20)
        stalled.close()
        assert other.request("GET", "/__fixed__").status == 200


def test_without_a_timeout_a_slow_reader_gets_everything(liege):
    """The stall timer only runs while a write waits: a client that reads slowly but steadily is never cut."""
    srv = liege("--wsgi-file", APPS / "echo.py", "--so-send-timeout", "1", "--socket-timeout", "1",
                ready_path="/__fixed__")
    size = 2 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(f"GET /__bigone__?size={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    sock.settimeout(10)
    total = 0
    started = time.monotonic()
    while True:
        chunk = sock.recv(128 * 1024)
        if not chunk:
            break
        total += len(chunk)
        time.sleep(0.4)  # the server's writes wait this long each time, under the 1 s timeouts
    sock.close()
    assert total > size, (total, time.monotonic() - started)
    assert "made no progress" not in srv.logs()
