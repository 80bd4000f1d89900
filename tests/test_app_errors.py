"""Application errors: an exception is a 500 with the traceback in the log and the worker keeps serving; a
chunk that is not bytes is an app error (500 if no header was sent yet), logged clearly."""

from __future__ import annotations

import re

import pytest

from liegetest import APPS, REQUEST_LOG_RE, HTTPConn, http_get, wait_for


@pytest.fixture
def raising(liege):
    # One worker: "the worker keeps serving" means the very same process answers the next request.
    return liege("--wsgi-file", APPS / "raising.py", "--processes", "1", workers=1)


@pytest.fixture
def strapp(liege):
    return liege("--wsgi-file", APPS / "str_chunk.py", "--processes", "1", workers=1)


def wait_type_error_logged(srv, mark):
    """A log line (not a request log line) that talks about str/bytes: the app error was logged clearly."""
    def find():
        for ln in srv.logs_since(mark).splitlines():
            if re.search(r"\b(str|bytes)\b", ln) and not REQUEST_LOG_RE.search(ln) and " => generated " not in ln:
                return ln
    try:
        return wait_for(find, 10, "a log line about the non-bytes chunk")
    except TimeoutError:
        pytest.fail(f"no log line mentions str/bytes; log since the request:\n{srv.logs_since(mark)}",
                    pytrace=False)


def same_worker_still_serves(srv, before):
    r = http_get(srv.port, "/")
    assert r.status == 200 and r.body == f"ok {before[0]}".encode(), f"next request: {r!r}"
    assert srv.worker_pids() == before


@pytest.mark.parametrize("route", ["raise", "raise-after-start", "raise-in-iter"])
def test_exception_is_500_with_traceback(raising, route):
    before = raising.worker_pids()
    mark = raising.log_mark()
    r = http_get(raising.port, f"/{route}?token=t-{route}")
    assert r.status == 500
    raising.wait_log(r"Traceback \(most recent call last\)", since=mark)
    raising.wait_log(rf"RuntimeError: .*boom-t-{route}", since=mark)
    same_worker_still_serves(raising, before)


def test_exception_after_first_chunk_cuts_the_response(raising):
    before = raising.worker_pids()
    mark = raising.log_mark()
    with HTTPConn.tcp(raising.port) as c:
        c.send(b"GET /raise-late?token=late1 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    if r.status == 200:
        assert not r.complete, f"a response cut by an exception must not look complete: {r!r}"
    else:
        assert r.status == 500
    raising.wait_log(r"RuntimeError: late-boom-late1", since=mark)
    same_worker_still_serves(raising, before)


def test_exception_in_close_is_logged(raising):
    before = raising.worker_pids()
    mark = raising.log_mark()
    r = http_get(raising.port, "/raise-in-close?token=cl1")
    assert r.status == 200 and r.body == b"body-before-close-error"
    raising.wait_log(r"RuntimeError: close-boom-cl1", since=mark)
    same_worker_still_serves(raising, before)


def test_many_exceptions_do_not_kill_the_worker(raising):
    before = raising.worker_pids()
    for i in range(20):
        assert http_get(raising.port, f"/raise?token=m{i}").status == 500
    same_worker_still_serves(raising, before)


@pytest.mark.parametrize("route", ["text-first", "text-list", "text-status"])
def test_str_instead_of_bytes_is_a_500(strapp, route):
    before = strapp.worker_pids()
    mark = strapp.log_mark()
    r = http_get(strapp.port, f"/{route}")
    assert r.status == 500, f"/{route}: {r!r}"
    wait_type_error_logged(strapp, mark)
    same_worker_still_serves(strapp, before)


def test_str_after_bytes_cuts_the_response(strapp):
    before = strapp.worker_pids()
    mark = strapp.log_mark()
    with HTTPConn.tcp(strapp.port) as c:
        c.send(b"GET /text-after-bytes HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    assert b"then a str" not in r.body
    if r.status == 200:
        assert not r.complete, f"a response cut by a str chunk must not look complete: {r!r}"
    else:
        assert r.status == 500
    wait_type_error_logged(strapp, mark)
    same_worker_still_serves(strapp, before)
