"""PEP 3333 through wsgiref.validate: tests/apps/pep3333.py wraps its app in validator(), with WSGIWarning turned
into an error, so any protocol violation by liege shows up as a 500 and an AssertionError in the log."""

from __future__ import annotations

import os
import re
import socket

import pytest

from liegetest import APPS, HTTPConn, http_get, http_request, wait_for

BAD_SIGNS = ("AssertionError", "WSGIWarning", "garbage collected without being closed")


@pytest.fixture
def pep(liege, markers):
    srv = liege("--wsgi-file", APPS / "pep3333.py", "--processes", "2", "--env", f"PEP3333_MARKERS={markers}",
                workers=2, ready_path="/fixed")
    srv.markers = markers
    yield srv
    assert_clean(srv)


@pytest.fixture
def raw(liege, markers):
    """The same app without the validator, so liege sees its real wsgi.file_wrapper objects."""
    srv = liege("--wsgi-file", APPS / "pep3333.py", "--callable", "raw_application", "--processes", "1",
                "--env", f"PEP3333_MARKERS={markers}", workers=1, ready_path="/fixed")
    srv.markers = markers
    return srv


def assert_clean(srv):
    logs = srv.logs()
    for sign in BAD_SIGNS:
        assert sign not in logs, f"the validator complained ({sign}):\n{logs[-4000:]}"


def ok_json(resp):
    assert resp.status == 200, resp
    return resp.json()


def test_environ_keys_and_types(pep):
    with HTTPConn.tcp(pep.port) as c:
        local_port = c.sock.getsockname()[1]
        env = ok_json(c.request("GET", "/environ?x=1&y=%20z", [("Connection", "close")]))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(pep.port)
    assert env["SERVER_NAME"], "SERVER_NAME must not be empty"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is True, "two worker processes: wsgi.multiprocess must be true"
    assert env["wsgi.run_once"] is False
    assert env["http"]["HTTP_HOST"] == "127.0.0.1"


def test_path_info_is_percent_decoded_latin1(pep):
    env = ok_json(http_get(pep.port, "/environ/caf%C3%A9%20x/%7e"))
    # PEP 3333: the decoded bytes, each byte one code point (latin-1).
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9 x/~"
    assert env["REQUEST_URI"] in (None, "/environ/caf%C3%A9%20x/%7e")


def test_content_type_and_length_have_no_http_twins(pep):
    env = ok_json(http_request(pep.port, "POST", "/environ", [("Content-Type", "application/x-test")],
                               body=b"0123456789"))
    assert env["CONTENT_TYPE"] == "application/x-test"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["body"] == "0123456789"
    assert "HTTP_CONTENT_TYPE" not in env["http"] and "HTTP_CONTENT_LENGTH" not in env["http"]


def test_repeated_headers_are_joined(pep):
    env = ok_json(http_request(pep.port, "GET", "/environ", [("X-Multi", "a"), ("X-Multi", "b")]))
    assert env["http"]["HTTP_X_MULTI"] in ("a,b", "a, b")


BODY = b"line one\nline two\n\n\x00\xff binary \r\nlast line without newline"


def test_input_read_is_bounded_by_the_body(pep):
    env = ok_json(http_request(pep.port, "POST", "/read", body=BODY))
    assert env["body"].encode("latin-1") == BODY
    assert env["extra"] == "", "read past the end of the body must return b''"


def test_input_read_in_small_sizes(pep):
    parts = ok_json(http_request(pep.port, "POST", "/read-chunks?n=3", body=BODY))["parts"]
    assert all(1 <= len(p) <= 3 for p in parts)
    assert "".join(parts).encode("latin-1") == BODY


def _lines(body: bytes) -> list[bytes]:
    """What readline() must return: split after each b"\n" only (b"\r" is an ordinary byte)."""
    return [x for x in re.split(b"(?<=\n)", body) if x]


def test_input_readline(pep):
    lines = ok_json(http_request(pep.port, "POST", "/readline", body=BODY))["lines"]
    assert [x.encode("latin-1") for x in lines] == _lines(BODY)


def test_input_readline_with_size(pep):
    lines = [x.encode("latin-1") for x in
             ok_json(http_request(pep.port, "POST", "/readline-size?n=4", body=BODY))["lines"]]
    assert b"".join(lines) == BODY
    assert all(1 <= len(x) <= 4 for x in lines)
    assert all(b"\n" not in x[:-1] for x in lines), "readline(n) returned a chunk spanning a newline"


def test_input_readlines(pep):
    lines = ok_json(http_request(pep.port, "POST", "/readlines", body=BODY))["lines"]
    assert [x.encode("latin-1") for x in lines] == _lines(BODY)


def test_input_readlines_with_hint(pep):
    batches = ok_json(http_request(pep.port, "POST", "/readlines-hint?n=10", body=BODY))["batches"]
    assert b"".join(x.encode("latin-1") for b in batches for x in b) == BODY


def test_input_iteration(pep):
    lines = ok_json(http_request(pep.port, "POST", "/iter", body=BODY))["lines"]
    assert [x.encode("latin-1") for x in lines] == _lines(BODY)


def test_input_iteration_with_chunked_request_body(pep):
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (BODY[:7], BODY[7:30], BODY[30:])) + b"0\r\n\r\n"
    r = http_request(pep.port, "POST", "/iter", [("Transfer-Encoding", "chunked")], body=chunked)
    assert [x.encode("latin-1") for x in ok_json(r)["lines"]] == _lines(BODY)


def test_input_empty_body(pep):
    env = ok_json(http_request(pep.port, "POST", "/readlines", [("Content-Length", "0")]))
    assert env["lines"] == []


def test_wsgi_errors_goes_to_the_log(pep):
    r = http_get(pep.port, "/errors?token=e41")
    assert r.status == 200 and r.body == b"logged"
    for line in ("wsgi-errors-write-e41", "wsgi-errors-writelines-e41-a", "wsgi-errors-writelines-e41-b"):
        pep.wait_log(line)


def test_write_callable(pep):
    r = http_get(pep.port, "/write")
    assert r.status == 200
    assert r.body == b"via-write-1;via-write-2;via-iterable"


def test_close_is_called(pep):
    r = http_get(pep.port, "/close?token=c1")
    assert r.status == 200 and r.body == b"one;two;three"
    wait_for(lambda: (pep.markers / "close-c1").exists(), 10, "close() of the response iterable")


def test_close_is_called_when_the_client_goes_away(pep):
    with HTTPConn.tcp(pep.port) as c:
        c.send(b"GET /close-abort?token=ab1 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.read_head()
        assert head.status == 200
        c._read_exact(100_000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # close() must run even though the response could not be completed.
    wait_for(lambda: (pep.markers / "close-ab1").exists(), 30, "close() after the client disconnected")
    assert http_get(pep.port, "/fixed").status == 200


def test_exc_info_before_body_replaces_the_status(pep):
    r = http_get(pep.port, "/exc-info")
    assert r.status == 500
    assert r.header("x-replaced") == "yes"
    assert r.body == b"replaced-by-exc-info"


def test_exc_info_after_body_started_is_reraised(pep):
    mark = pep.log_mark()
    with HTTPConn.tcp(pep.port) as c:
        c.send(b"GET /exc-info-late HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    assert b"never" not in r.body
    if r.status == 200:
        # Headers were already out: the only honest signal left is a response cut short.
        assert not r.complete, f"a truncated response must not look complete: {r!r}"
    else:
        assert r.status == 500
    pep.wait_log("exc-info-late", since=mark)
    assert http_get(pep.port, "/fixed").status == 200
    logs = pep.logs_since(mark)
    assert "AssertionError" not in logs, logs


def _make_file(markers, name, size):
    data = os.urandom(size)
    (markers / name).write_bytes(data)
    return data


def test_file_wrapper_validated(pep):
    data = _make_file(pep.markers, "f1.bin", 300_001)
    r = http_get(pep.port, "/file-wrapper?name=f1.bin&blksize=4096")
    assert r.status == 200 and r.complete
    assert r.body == data
    r = http_get(pep.port, "/file-wrapper?name=f1.bin&length=1")
    assert r.header("content-length") == str(len(data))
    assert r.body == data


def test_file_wrapper_sendfile_path_closes_the_file(raw):
    data = _make_file(raw.markers, "f2.bin", 1_000_003)
    r = http_get(raw.port, "/file-wrapper?name=f2.bin&length=1&token=fw1")
    assert r.status == 200 and r.complete
    assert r.body == data
    wait_for(lambda: (raw.markers / "fileclose-fw1").exists(), 10, "the file behind wsgi.file_wrapper closed")
    r = http_get(raw.port, "/file-wrapper?name=f2.bin&token=fw2")
    assert r.body == data
    wait_for(lambda: (raw.markers / "fileclose-fw2").exists(), 10, "the file behind wsgi.file_wrapper closed")


def test_file_wrapper_over_object_without_fileno(pep, raw):
    for srv in (pep, raw):
        r = http_get(srv.port, "/file-wrapper-bytesio")
        assert r.status == 200
        assert r.body == b"bytesio-" * 1000


def test_generator_with_empty_chunks(pep):
    with HTTPConn.tcp(pep.port) as c:
        r = c.request("GET", "/generator")
        assert r.status == 200 and r.complete
        assert r.body == b"abc"
        # An empty chunk must not end the chunked body early: the connection is still in sync.
        r2 = c.request("GET", "/fixed")
        assert r2.status == 200 and r2.body == b"f" * 1000


def test_head_has_no_body(pep):
    with HTTPConn.tcp(pep.port) as c:
        r = c.request("HEAD", "/fixed")
        assert r.status == 200
        assert r.header("content-length") == "1000"
        assert r.body == b""
        r2 = c.request("GET", "/fixed")
        assert r2.status == 200 and r2.body == b"f" * 1000, "bytes of the HEAD response leaked into the next"


def test_head_on_generator_response(pep):
    with HTTPConn.tcp(pep.port) as c:
        r = c.request("HEAD", "/generator")
        assert r.status == 200 and r.body == b""
        assert c.read_available(0.3) == b"", "a body was sent in reply to HEAD"
        assert c.request("GET", "/fixed").status == 200


def test_no_content(pep):
    with HTTPConn.tcp(pep.port) as c:
        r = c.request("GET", "/no-content")
        assert r.status == 204 and r.body == b""
        assert r.header("transfer-encoding") is None
        assert c.request("GET", "/fixed").body == b"f" * 1000


def test_repeated_response_headers_are_kept(pep):
    r = http_get(pep.port, "/multi-header")
    assert r.header_all("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_multithread_flag_follows_threads(liege, markers):
    srv = liege("--wsgi-file", APPS / "pep3333.py", "--processes", "1", "--threads", "2",
                "--env", f"PEP3333_MARKERS={markers}", workers=1, ready_path="/fixed")
    env = ok_json(http_get(srv.port, "/environ"))
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False, "one worker process: wsgi.multiprocess must be false"
    assert_clean(srv)
