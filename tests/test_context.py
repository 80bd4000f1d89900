"""Responses are iterated on the thread that called the app, in the request's context (issue 10).

Per-request state that frameworks keep in a `contextvars.ContextVar` or a `threading.local` (Flask's
`stream_with_context`, Bottle's thread-local request/response, Django's `translation.activate`, Werkzeug's
`Local`) is set in the app call and read while the generator runs and in `close()`. Each case runs with
`threads = 1` (the app inline on the event loop) and `threads = 4`, over HTTP and over the uwsgi protocol.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid

import pytest

from liegetest import (APPS, HTTPConn, free_port, http_get, uwsgi_packet, uwsgi_request, uwsgi_vars,
                       wait_for)

THREADS = [pytest.param(1, id="threads1"), pytest.param(4, id="threads4")]
PROTOCOLS = ["http", "uwsgi"]


class Server:
    """One liege serving an app on an HTTP port and a uwsgi TCP socket."""

    def __init__(self, srv, uwsgi_port: int):
        self.srv = srv
        self.port = srv.port
        self.uwsgi_port = uwsgi_port

    def get(self, protocol: str, path: str, query: str = "", timeout: float = 30):
        if protocol == "http":
            return http_get(self.port, path + ("?" + query if query else ""), timeout=timeout)
        return uwsgi_request(("127.0.0.1", self.uwsgi_port), uwsgi_vars(path=path, query=query), timeout=timeout)


def start(liege, app_args, threads: int, processes: int = 1, ready_path: str = "/", extra=()) -> Server:
    uwsgi_port = free_port()
    srv = liege(*app_args, "--processes", str(processes), "--threads", str(threads),
                "--socket", f"127.0.0.1:{uwsgi_port}", *extra, workers=processes, ready_path=ready_path)
    return Server(srv, uwsgi_port)


def framework(venv_dir, module: str) -> list:
    return ["--virtualenv", venv_dir, "--pythonpath", APPS, "--module", module]


@pytest.fixture
def context_dir(tmp_path):
    d = tmp_path / "closed"
    d.mkdir()
    return d


def plain_server(liege, context_dir, threads: int, processes: int = 1, extra=()) -> Server:
    return start(liege, ["--wsgi-file", APPS / "context_plain.py", "--env", f"CONTEXT_DIR={context_dir}"],
                 threads, processes, ready_path="/peek", extra=extra)


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response.body.decode().splitlines()]


def closed_record(context_dir, rid: str) -> dict:
    path = context_dir / f"{rid}.json"
    wait_for(path.exists, timeout=15, what=f"close() of request {rid}")
    return json.loads(path.read_text())


# --- frameworks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
def test_flask_stream_with_context_sends_the_whole_body(liege, venv_dir, threads):
    server = start(liege, framework(venv_dir, "context_flask:app"), threads, ready_path="/stream?id=ready")
    for protocol in PROTOCOLS:
        rid = f"{protocol}-{uuid.uuid4().hex[:8]}"
        r = server.get(protocol, "/stream", f"id={rid}")
        assert r.status == 200 and r.complete, r
        expected = f"start {rid}\n" + "".join(f"{i} {rid} {rid} context_flask\n" for i in range(3)) + "end\n"
        assert r.text == expected
    assert "LookupError" not in server.srv.logs()
    assert "Traceback" not in server.srv.logs()


@pytest.mark.parametrize("threads", THREADS)
def test_bottle_generator_of_str_sends_the_whole_body(liege, venv_dir, threads):
    server = start(liege, framework(venv_dir, "context_bottle:app"), threads, ready_path="/gen?id=ready")
    for protocol in PROTOCOLS:
        rid = f"{protocol}-{uuid.uuid4().hex[:8]}"
        r = server.get(protocol, "/gen", f"id={rid}")
        assert r.status == 200 and r.complete, r
        assert r.text == f"a {rid}\nb {rid}\nc\n"
    assert "Request context not initialized" not in server.srv.logs()


@pytest.mark.parametrize("threads", THREADS)
def test_django_streaming_response_speaks_the_activated_language(liege, venv_dir, threads):
    server = start(liege, framework(venv_dir, "context_django:application"), threads, ready_path="/language/")
    for protocol in PROTOCOLS:
        r = server.get(protocol, "/stream/", "lang=de")
        assert r.status == 200 and r.complete, r
        assert r.text == "Ja\nNein\nde\n"
    # The activation belonged to those requests: the next ones (on any thread) are back to the default.
    for protocol in PROTOCOLS:
        for _ in range(4):
            assert server.get(protocol, "/language/").text == "en-us\n"


# --- ContextVar, threading.local, Werkzeug Local -------------------------------------------------------------


@pytest.mark.parametrize("threads", THREADS)
def test_state_set_in_the_call_is_seen_by_the_generator_and_close(liege, context_dir, threads):
    server = plain_server(liege, context_dir, threads)
    for protocol in PROTOCOLS:
        rid = f"{protocol}-{uuid.uuid4().hex[:8]}"
        r = server.get(protocol, "/ctx", f"id={rid}&n=3&delay=0.005")
        assert r.status == 200 and r.complete, r
        seen = lines(r)
        assert [s["where"] for s in seen] == ["call", "generator", "generator", "generator"]
        closed = closed_record(context_dir, rid)
        for s in seen + [closed]:
            assert (s["contextvar"], s["threading_local"], s["werkzeug_local"], s["werkzeug_proxy"]) == (rid,) * 4, s
            assert s["thread"] == seen[0]["thread"], "call, iteration and close() run on one thread"


@pytest.mark.parametrize("threads", THREADS)
def test_a_contextvar_set_by_one_request_does_not_leak_into_the_next(liege, context_dir, threads):
    server = plain_server(liege, context_dir, threads)
    for i in range(8):
        r = server.get("http", "/ctx", f"id=leak{i}&n=1")
        assert r.status == 200 and r.complete
        peek = server.get("http", "/peek").json()
        assert peek["contextvar"] is None and peek["werkzeug_local"] is None, peek


@pytest.mark.parametrize("threads", THREADS)
def test_close_runs_in_the_call_context_when_the_client_goes_away(liege, context_dir, threads):
    server = plain_server(liege, context_dir, threads)
    rid = f"gone-{uuid.uuid4().hex[:8]}"
    with HTTPConn.tcp(server.port) as conn:
        conn.send(f"GET /ctx?id={rid}&n=2000&delay=0.005 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = conn.read_head()
        assert head.status == 200
    closed = closed_record(context_dir, rid)
    assert (closed["contextvar"], closed["threading_local"], closed["werkzeug_local"]) == (rid,) * 3, closed
    assert closed["thread"] == closed["call_thread"]
    # The worker goes on serving.
    assert http_get(server.port, "/peek").status == 200


@pytest.mark.parametrize("threads,processes", [pytest.param(4, 2, id="threads4"), pytest.param(1, 3, id="threads1")])
def test_concurrent_requests_never_see_each_others_state(liege, context_dir, threads, processes):
    server = plain_server(liege, context_dir, threads, processes)
    count = 32
    results: dict[str, object] = {}

    def fetch(i: int) -> None:
        rid = f"c{i}-{uuid.uuid4().hex[:6]}"
        protocol = PROTOCOLS[i % 2]
        try:
            results[rid] = server.get(protocol, "/ctx", f"id={rid}&n=4&delay=0.01", timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            results[rid] = e

    workers = [threading.Thread(target=fetch, args=(i,), daemon=True) for i in range(count)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(90)
    assert len(results) == count
    for rid, r in results.items():
        assert not isinstance(r, Exception) and r.status == 200 and r.complete, (rid, r)
        for s in lines(r) + [closed_record(context_dir, rid)]:
            assert (s["contextvar"], s["threading_local"], s["werkzeug_local"], s["werkzeug_proxy"]) == (rid,) * 4, \
                (rid, s)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_that_does_not_read_stops_the_iteration(liege, context_dir, threads, protocol):
    """A fast generator and a client that stops reading: liege stops pulling (bounded memory), and resumes."""
    server = plain_server(liege, context_dir, threads)
    rid = f"flood-{protocol}-{uuid.uuid4().hex[:6]}"
    if protocol == "http":
        port, request = server.port, f"GET /flood?id={rid} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    else:
        port, request = server.uwsgi_port, uwsgi_packet(uwsgi_vars(path="/flood", query=f"id={rid}"))
    count_file = context_dir / f"{rid}.count"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(30)
        sock.sendall(request)
        received = len(sock.recv(1024))
        wait_for(count_file.exists, timeout=15, what="the generator to start")

        def produced() -> int:
            text = count_file.read_text()
            return int(text) if text else 0

        # Stalled: the count stops growing while nothing is read, far below the 2,048 chunks (128 MiB).
        before = -1
        for _ in range(20):
            time.sleep(0.25)
            now = produced()
            if now == before:
                break
            before = now
        assert now == before, "the generator kept being pulled while the client read nothing"
        assert now * 65536 < 64 * 1024 * 1024, f"{now} chunks buffered for a client that reads nothing"
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if received >= 2048 * 65536:
                break
    assert received >= 2048 * 65536
    assert produced() == 2048


# --- chunk timing, harakiri ------------------------------------------------------------------------------------


def arrival_times(sock: socket.socket, request: bytes, markers: list[bytes], timeout: float = 15) -> dict:
    """Sends `request` and notes when each marker first appears in what comes back."""
    sock.settimeout(timeout)
    sock.sendall(request)
    received, times = b"", {}
    deadline = time.monotonic() + timeout
    while len(times) < len(markers) and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        received += data
        now = time.monotonic()
        for marker in markers:
            if marker not in times and marker in received:
                times[marker] = now
    assert len(times) == len(markers), f"got {received!r}"
    return times


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_chunk_reaches_the_client_before_the_generator_sleeps(liege, context_dir, threads, protocol):
    """The generator yields, sleeps 0.3 s, yields: the first chunk must not wait for the sleep."""
    server = plain_server(liege, context_dir, threads)
    if protocol == "http":
        port, request = server.port, b"GET /sleepy HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        port, request = server.uwsgi_port, uwsgi_packet(uwsgi_vars(path="/sleepy"))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        times = arrival_times(sock, request, [b"first\n", b"second\n"])
    gap = times[b"second\n"] - times[b"first\n"]
    assert gap >= 0.2, f"the first chunk arrived only {gap:.3f} s before the second"


def test_harakiri_covers_the_whole_iteration(liege, context_dir):
    """A generator stuck after its first chunk: the worker is killed at the limit, the client sees a truncated
    response (no final chunk), and a fresh worker serves the next request."""
    server = plain_server(liege, context_dir, 1, extra=("--harakiri", "1"))
    first_pid = server.srv.worker_pids()
    with HTTPConn.tcp(server.port, timeout=30) as conn:
        conn.send(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        r = conn.read_response()
    assert r.status == 200 and not r.complete, r
    assert b"started" in r.body and b"never" not in r.body
    server.srv.wait_log(re.compile(r'HARAKIRI: worker 1 .* in request "GET /hang"'), timeout=15)
    wait_for(lambda: server.srv.worker_pids() not in ([], first_pid), timeout=20, what="a fresh worker")
    wait_for(lambda: http_get(server.port, "/peek").status == 200, timeout=20, what="the fresh worker")
