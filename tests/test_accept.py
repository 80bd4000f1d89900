"""How workers share a listening socket: kept-alive connections spread over the workers, and new connections
(nginx `uwsgi_pass`, `Connection: close`, health checks) are taken at once by whichever worker can.

Behaviour, not timings: the spread is read from the pid each response reports; the new-connection test checks
that every request of a bounded burst is answered and that more than one worker answered them."""

from __future__ import annotations

import collections
import socket
import threading

from liegetest import APPS, HTTPConn, build_request, uwsgi_request, uwsgi_vars


def _pid_of(response) -> int:
    return response.json()["_pid"]


def test_a_burst_of_keepalive_connections_spreads_over_the_workers(serve):
    srv = serve("echo.py", "--processes", "4", workers=4)
    # Open every connection before any request, as a client pool (or wrk) does at start.
    conns = [HTTPConn.tcp(srv.port) for _ in range(12)]
    try:
        owners = collections.Counter()
        for conn in conns:
            conn.send(build_request("GET", "/"))
        for conn in conns:
            owners[_pid_of(conn.read_response())] += 1
        # Each connection stays with its worker: a second request on it is answered by the same pid.
        for conn in conns[:4]:
            conn.send(build_request("GET", "/"))
            assert _pid_of(conn.read_response()) in owners
    finally:
        for conn in conns:
            conn.close()
    assert sum(owners.values()) == 12
    # Without balancing the first worker to wake takes all 12 (or 11 of them). The spread is not exact: with two
    # cores shared by four workers and the client, a paused worker may take a connection nobody else took in time.
    assert len(owners) >= 3, f"12 connections landed on too few workers: {dict(owners)}"
    assert max(owners.values()) <= 8, f"one worker took most of the burst: {dict(owners)}"


def _close_requests(port: int, count: int, errors: list, owners: collections.Counter, lock: threading.Lock):
    for _ in range(count):
        try:
            with HTTPConn.tcp(port) as conn:
                conn.send(build_request("GET", "/", [("Connection", "close")]))
                response = conn.read_response()
                assert response.status == 200, response
                assert conn.is_closed_by_peer(), "the server kept a Connection: close connection open"
                with lock:
                    owners[_pid_of(response)] += 1
        except Exception as err:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(err))


def test_new_connections_from_concurrent_clients_are_all_served_by_several_workers(serve):
    srv = serve("echo.py", "--processes", "4", workers=4)
    owners: collections.Counter = collections.Counter()
    errors: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=_close_requests, args=(srv.port, 50, errors, owners, lock), daemon=True)
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
    assert sum(owners.values()) == 500
    assert len(owners) >= 2, f"every new connection went to one worker: {dict(owners)}"


def test_uwsgi_connections_from_concurrent_clients_are_all_served(liege, tmp_path):
    sock = tmp_path / "app.sock"
    srv = liege("--socket", sock, "--wsgi-file", APPS / "echo.py", "--processes", "4", http=False,
                uwsgi_addr=sock, workers=4)
    owners: collections.Counter = collections.Counter()
    errors: list = []

    def client():
        for _ in range(50):
            try:
                response = uwsgi_request(str(sock), uwsgi_vars("GET", "/"))
                assert response.status == 200, response
                owners[_pid_of(response)] += 1
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(repr(err))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert srv.alive
    assert not errors, errors[:5]
    assert sum(owners.values()) == 500
    assert len(owners) >= 2, f"every uwsgi connection went to one worker: {dict(owners)}"
