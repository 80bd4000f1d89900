"""HTTP/1.x behaviour of `http-socket`: keep-alive, pipelining, chunked request bodies, Expect: 100-continue,
HEAD, HTTP/1.0, response framing, streaming, the request log line, and bad input (each gets a 4xx, the
connection is closed, and the worker lives: a normal request on a new connection succeeds, same workers)."""

from __future__ import annotations

import hashlib
import socket

import pytest

from liegetest import APPS, REQUEST_LOG_RE, HTTPConn, big_payload, build_request, http_get, http_request


@pytest.fixture
def echo(liege):
    return liege("--wsgi-file", APPS / "echo.py", "--processes", "2", workers=2, ready_path="/__fixed__")


def env_of(resp):
    assert resp.status == 200, resp
    return resp.json()


# --- connection handling -----------------------------------------------------------------------------------------


def test_keep_alive(echo):
    with HTTPConn.tcp(echo.port) as c:
        for i in range(5):
            r = c.request("GET", f"/ka/{i}")
            env = env_of(r)
            assert env["PATH_INFO"] == f"/ka/{i}"
            assert (r.header("connection") or "").lower() != "close"


def test_pipelining_two_requests_in_one_write(echo):
    with HTTPConn.tcp(echo.port) as c:
        c.send(build_request("GET", "/first?a=1") + build_request("POST", "/second", body=b"payload"))
        r1, r2 = c.read_response(), c.read_response()
    e1, e2 = env_of(r1), env_of(r2)
    assert (e1["PATH_INFO"], e1["QUERY_STRING"], e1["_body"]) == ("/first", "a=1", "")
    assert (e2["PATH_INFO"], e2["REQUEST_METHOD"], e2["_body"]) == ("/second", "POST", "payload")


def test_pipelining_many_requests(echo):
    paths = [f"/p{i}" for i in range(20)]
    with HTTPConn.tcp(echo.port) as c:
        c.send(b"".join(build_request("GET", p) for p in paths))
        got = [env_of(c.read_response())["PATH_INFO"] for _ in paths]
    assert got == paths


def test_client_connection_close_is_honoured(echo):
    with HTTPConn.tcp(echo.port) as c:
        r = c.request("GET", "/__fixed__", [("Connection", "close")])
        assert r.status == 200 and r.body == b"0123456789" * 100
        assert c.is_closed_by_peer(5)


def test_http10_response(echo):
    with HTTPConn.tcp(echo.port) as c:
        c.send(b"GET /__gen__ HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.header("transfer-encoding") is None, "no chunked encoding in a reply to HTTP/1.0"
        assert r.body == b"".join(b"chunk%d\n" % i for i in range(10))
        assert c.is_closed_by_peer(5), "an HTTP/1.0 request without keep-alive ends the connection"
    env = env_of(http_request(echo.port, "GET", "/v10", version="HTTP/1.0"))
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_http11_generator_is_chunked_and_single_chunk_has_length(echo):
    with HTTPConn.tcp(echo.port) as c:
        r = c.request("GET", "/__gen__")
        assert r.status == 200 and r.chunked and r.complete
        assert r.body == b"".join(b"chunk%d\n" % i for i in range(10))
        r = c.request("GET", "/__single__")
        assert r.header("content-length") == str(len(b"single-chunk-body"))
        assert r.body == b"single-chunk-body"


def test_head(echo):
    with HTTPConn.tcp(echo.port) as c:
        r = c.request("HEAD", "/__fixed__")
        assert r.status == 200 and r.body == b""
        assert r.header("content-length") == "1000"
        r = c.request("GET", "/__fixed__")
        assert r.body == b"0123456789" * 100


# --- request bodies ----------------------------------------------------------------------------------------------


def test_chunked_request_body(echo):
    body = (b"5\r\nhello\r\n"
            b"6;ext=1\r\n world\r\n"
            b"0\r\nX-Trailer: yes\r\n\r\n")
    env = env_of(http_request(echo.port, "POST", "/chunked", [("Transfer-Encoding", "chunked")], body=body))
    assert env["_body"] == "hello world"


def test_large_request_body(echo):
    body = b"0123456789abcdef" * (3 * 65536)  # 3 MiB
    env = env_of(http_request(echo.port, "POST", "/big", [("Content-Type", "application/octet-stream")],
                              body=body, timeout=60))
    assert env["_body_len"] == len(body)
    assert env["_body"].encode() == body
    assert env["CONTENT_LENGTH"] == str(len(body))


def test_large_chunked_request_body(echo):
    part = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for _ in range(20)) + b"0\r\n\r\n"
    env = env_of(http_request(echo.port, "POST", "/bigchunked", [("Transfer-Encoding", "chunked")], body=body,
                              timeout=60))
    assert env["_body_len"] == 20 * 65536


def test_body_over_post_buffering_is_intact(liege):
    # Bodies over post-buffering are spooled to a temporary file: the app must still read every byte.
    srv = liege("--wsgi-file", APPS / "echo.py", "--post-buffering", "4096", ready_path="/__fixed__")
    body = bytes(range(256)) * 4096  # 1 MiB
    env = env_of(http_request(srv.port, "POST", "/spooled", body=body, timeout=60))
    assert env["_body_len"] == len(body)
    assert env["_body"].encode("latin-1") == body


def test_post_buffering_1_with_a_bufsize_spools_every_body_intact(liege):
    # 076/093's `post-buffering = 1` + `post-buffering-bufsize = 32768`: uWSGI spools every body of 1 byte or
    # more, written in 32 KiB chunks; the app reads them all back.
    srv = liege("--wsgi-file", APPS / "echo.py", "--post-buffering", "1", "--post-buffering-bufsize", "32768",
                ready_path="/__fixed__")
    for body in (b"x", bytes(range(256)) * 4096 + b"tail"):
        env = env_of(http_request(srv.port, "POST", "/spooled", body=body, timeout=60))
        assert env["_body"].encode("latin-1") == body


def test_slow_body_does_not_block_the_worker(liege):
    # The body is read before the app runs, without holding the (only) worker: another client is served
    # while the first one is still sending.
    srv = liege("--wsgi-file", APPS / "echo.py", "--processes", "1", workers=1, ready_path="/__fixed__")
    with HTTPConn.tcp(srv.port) as slow:
        slow.send(b"POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        assert http_get(srv.port, "/__fixed__", timeout=10).status == 200
        slow.send(b"world")
        env = env_of(slow.read_response())
    assert env["_body"] == "helloworld"


def test_expect_100_continue(echo):
    with HTTPConn.tcp(echo.port, timeout=10) as c:
        c.send(b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response(stop_at_interim=True)
        assert interim.status == 100, f"expected 100 Continue before sending the body, got {interim!r}"
        c.send(b"hello world")
        env = env_of(c.read_response())
    assert env["_body"] == "hello world"


def test_expect_100_continue_body_sent_without_waiting(echo):
    with HTTPConn.tcp(echo.port) as c:
        c.send(b"POST /expect2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
        env = env_of(c.read_response())
    assert env["_body"] == "hello"


# --- environ details ---------------------------------------------------------------------------------------------


def test_header_names_with_underscore_are_dropped(echo):
    env = env_of(http_request(echo.port, "POST", "/u", [("X_Custom", "1"), ("X-Other", "2"),
                                                       ("Content_Length", "999")], body=b"abc"))
    assert env.get("HTTP_X_OTHER") == "2"
    assert "HTTP_X_CUSTOM" not in env, "a header name with '_' must not reach the environ"
    assert env["CONTENT_LENGTH"] == "3" and env["_body"] == "abc"


def test_http11_without_host_is_400_http10_is_fine(echo):
    # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    with HTTPConn.tcp(echo.port) as c:
        c.send(b"GET /nohost HTTP/1.1\r\n\r\n")
        assert c.read_response().status == 400
    with HTTPConn.tcp(echo.port) as c:
        c.send(b"GET /nohost HTTP/1.0\r\n\r\n")
        env = env_of(c.read_response())
    assert env["PATH_INFO"] == "/nohost" and "HTTP_HOST" not in env
    assert env["SERVER_NAME"], "without Host, SERVER_NAME still comes from the socket"


def test_request_uri_and_query(echo):
    env = env_of(http_get(echo.port, "/a%20b/c?x=1&y=%C3%A9"))
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=%C3%A9"
    assert env["REQUEST_URI"] == "/a%20b/c?x=1&y=%C3%A9", "uWSGI apps rely on REQUEST_URI"


# --- responses ---------------------------------------------------------------------------------------------------


def test_large_streamed_response(echo):
    size = 20 * 1024 * 1024 + 123
    r = http_get(echo.port, f"/__big__?size={size}", timeout=60)
    assert r.status == 200 and r.complete
    assert len(r.body) == size
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(big_payload(size)).digest()


def test_streaming_first_chunk_arrives_while_app_still_runs(liege, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "ready").touch()
    srv = liege("--wsgi-file", APPS / "stream.py", "--env", f"STREAM_GATES={gates}", ready_path="/?gate=ready")
    with HTTPConn.tcp(srv.port, timeout=15) as c:
        c.send(b"GET /?gate=g1 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.read_head()
        assert head.status == 200
        # The app is now blocked until we open the gate: the first chunk must already be here.
        got = c._read_until(b"first\n")
        assert got is not None, "the first chunk never arrived"
        assert b"gate" not in got
        (gates / "g1").touch()
        rest = c._read_until(b"\r\n0\r\n\r\n")
        assert rest is not None and b"gate-open\n" in rest and b"second\n" in rest


def test_streaming_with_sleep(liege):
    srv = liege("--wsgi-file", APPS / "stream.py")
    r = http_get(srv.port, "/")
    assert r.status == 200 and r.body == b"first\nsecond\n"


def test_reason_phrase_is_passed_through(liege, tmp_path):
    app = tmp_path / "reason.py"
    app.write_text("def application(e, sr):\n    sr('299 Custom Reason', [('Content-Type', 'text/plain')])\n"
                   "    return [b'x']\n")
    srv = liege("--wsgi-file", app)
    r = http_get(srv.port, "/")
    assert (r.status, r.reason) == (299, "Custom Reason")


# --- request log -------------------------------------------------------------------------------------------------


def test_request_log_line(echo):
    mark = echo.log_mark()
    http_get(echo.port, "/logged/path?q=1")
    echo.wait_log(r"GET /logged/path\?q=1 => ", since=mark)
    line = next(ln for ln in echo.logs_since(mark).splitlines() if "GET /logged/path?q=1 =>" in ln)
    lm = REQUEST_LOG_RE.search(line)
    assert lm, f"request log line not in the uWSGI-like format: {line!r}"
    assert lm["addr"] == "127.0.0.1"
    assert lm["status"] == "200" and lm["proto"] == "HTTP/1.1"
    assert int(lm["pid"]) in echo.worker_pids()
    assert int(lm["bytes"]) > 0


def test_disable_logging(liege, markers):
    srv = liege("--wsgi-file", APPS / "pep3333.py", "--processes", "1", "--disable-logging",
                "--env", f"PEP3333_MARKERS={markers}", ready_path="/fixed")
    http_get(srv.port, "/fixed?not-logged=1")
    http_get(srv.port, "/errors?token=after")
    srv.wait_log("wsgi-errors-write-after")
    logs = srv.logs()
    assert "not-logged" not in logs, f"disable-logging still logged the request:\n{logs[-2000:]}"
    assert not REQUEST_LOG_RE.search(logs)


# --- bad input -----------------------------------------------------------------------------------------------------

H = b"Host: x\r\n"
BAD_REQUESTS = {
    "garbage-request-line": (b"GARBAGE\r\n\r\n", {400}),
    "request-line-extra-token": (b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", {400}),
    "request-line-no-version": (b"GET /\r\n" + H + b"\r\n", {400}),
    "bad-chunk-size": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                       {400}),
    "chunk-size-overflow": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                            b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", {400, 413}),
    "duplicate-host": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}),
    "content-length-not-a-number": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\nabc", {400}),
    "content-length-conflict": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n"
                                b"abcd", {400}),
    "nul-in-header-value": (b"GET / HTTP/1.1\r\n" + H + b"X-Bad: a\x00b\r\n\r\n", {400}),
    "nul-in-target": (b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", {400}),
    "nul-in-header-name": (b"GET / HTTP/1.1\r\n" + H + b"X-B\x00ad: a\r\n\r\n", {400}),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + H + b"X-Folded: one\r\n two\r\n\r\n", {400}),
    "header-without-colon": (b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", {400}),
    "space-before-colon": (b"GET / HTTP/1.1\r\n" + H + b"X-Space : a\r\n\r\n", {400}),
    "oversized-headers": (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n", {431}),
    "oversized-request-line": (b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\n" + H + b"\r\n", {414, 431}),
    "too-many-headers": (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
                         + b"\r\n", {431}),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_input_gets_4xx_and_worker_lives(echo, name):
    data, codes = BAD_REQUESTS[name]
    before = echo.worker_pids()
    with HTTPConn.tcp(echo.port, timeout=10) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        try:
            r = c.read_response()
        except socket.timeout:
            pytest.fail(f"no response within 10 s to {data[:80]!r}")
        assert r.status in codes, f"{name}: expected {sorted(codes)}, got {r!r}"
        assert c.is_closed_by_peer(5), f"{name}: the connection must be closed after a {r.status}"
    r = http_get(echo.port, "/__fixed__")
    assert r.status == 200 and r.body == b"0123456789" * 100
    assert echo.worker_pids() == before, "a worker was replaced: bad input must not kill it"


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_with_transfer_encoding_is_refused_and_cannot_smuggle(echo, order):
    """CL + TE, the request-smuggling vector, in either order: 400, the connection closed, the app never called,
    and the request hidden in the body never served (RFC 9112 section 6.1 allows rejecting; hyper alone would let
    Transfer-Encoding win, liege sees the dropped Content-Length in the raw head)."""
    smuggled = b"GET /__fixed__ HTTP/1.1\r\n" + H + b"\r\n"
    framing = [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"]
    if order == "te-first":
        framing.reverse()
    data = b"POST / HTTP/1.1\r\n" + H + b"".join(framing) + b"\r\n0\r\n\r\n" + smuggled
    with HTTPConn.tcp(echo.port, timeout=10) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 400, r
        assert (r.header("connection") or "").lower() == "close", r
        assert c.is_closed_by_peer(5), "the connection must close: the smuggled request must never be served"
    assert "both Content-Length and Transfer-Encoding" in echo.logs()


def test_content_length_with_transfer_encoding_behind_pipelined_requests(echo):
    """The refusal lands on the ambiguous request itself: the innocent requests pipelined before it (one with a
    body that looks like an ambiguous head) are answered normally."""
    decoy = b"POST /fake HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = (b"GET /__fixed__ HTTP/1.1\r\n" + H + b"\r\n"
            + b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(decoy) + decoy
            + b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            + b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n")
    with HTTPConn.tcp(echo.port, timeout=10) as c:
        c.send(data)
        assert c.read_response().status == 200
        second = c.read_response()
        assert second.status == 200 and env_of(second)["_body_len"] == len(decoy), second
        third = c.read_response()
        assert third.status == 200 and env_of(third)["_body_len"] == 3, third
        assert c.read_response().status == 400
        assert c.is_closed_by_peer(5)


def test_bad_input_small_buffer_size(liege):
    srv = liege("--wsgi-file", APPS / "echo.py", "--buffer-size", "4096", ready_path="/__fixed__")
    r = http_request(srv.port, "GET", "/", [("X-Big", "a" * 5000)])
    assert r.status == 431
    r = http_request(srv.port, "GET", "/", [("X-Small", "a" * 1000)])
    assert r.status == 200


def test_limit_post(liege):
    srv = liege("--wsgi-file", APPS / "echo.py", "--limit-post", "1000", ready_path="/__fixed__")
    r = http_request(srv.port, "POST", "/", body=b"x" * 1000)
    assert r.status == 200 and env_of(r)["_body_len"] == 1000
    with HTTPConn.tcp(srv.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        r = c.read_response()
        assert r.status == 413
    r = http_request(srv.port, "POST", "/", [("Transfer-Encoding", "chunked")],
                     body=b"".join(b"%x\r\n%s\r\n" % (500, b"y" * 500) for _ in range(4)) + b"0\r\n\r\n")
    assert r.status == 413, "a chunked body over limit-post must be refused too"
    assert http_get(srv.port, "/__fixed__").status == 200


def test_idle_and_partial_connections_do_not_block_others(echo):
    # Connections that send nothing or half a request must not stop other clients being served.
    conns = []
    try:
        for i in range(8):
            c = HTTPConn.tcp(echo.port)
            if i % 2:
                c.send(b"GET /partial HTTP/1.1\r\nHost: x\r\n")
            conns.append(c)
        for _ in range(3):
            assert http_get(echo.port, "/__fixed__", timeout=10).status == 200
    finally:
        for c in conns:
            c.close()
