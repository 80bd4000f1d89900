"""The uwsgi binary protocol on `socket =` (what nginx's uwsgi_pass speaks), on a unix path and on TCP."""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
import time

import pytest

from liegetest import (APPS, big_payload, free_port, http_get, uwsgi_connect, uwsgi_packet, uwsgi_request,
                       uwsgi_vars, wait_for)


@pytest.fixture
def unix_srv(liege, short_tmp):
    sock = short_tmp / "app.sock"
    srv = liege("--socket", sock, "--wsgi-file", APPS / "echo.py", "--processes", "2", http=False,
                uwsgi_addr=str(sock), workers=2)
    srv.sock = str(sock)
    return srv


@pytest.fixture
def tcp_srv(liege):
    port = free_port()
    srv = liege("--socket", f"127.0.0.1:{port}", "--wsgi-file", APPS / "echo.py", http=False,
                uwsgi_addr=("127.0.0.1", port), workers=1)
    srv.addr = ("127.0.0.1", port)
    return srv


def echo_env(addr, **kw):
    body = kw.pop("body", b"")
    r = uwsgi_request(addr, uwsgi_vars(body=body, **kw), body)
    assert r.status == 200, r
    return r.json()


def test_unix_socket_request(unix_srv):
    assert stat.S_ISSOCK(os.stat(unix_srv.sock).st_mode)
    env = echo_env(unix_srv.sock, method="GET", path="/a%20b", query="x=1",
                   headers={"X-Custom": "yes", "User-Agent": "t"})
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a b"
    assert env["QUERY_STRING"] == "x=1"
    assert env["REQUEST_URI"] == "/a%20b?x=1"
    assert env["HTTP_X_CUSTOM"] == "yes"
    assert env["HTTP_HOST"] == "localhost"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.url_scheme"] == "http"


def test_tcp_socket_post_body(tcp_srv):
    body = b"field=value&other=\xff\x00" * 1000
    env = echo_env(tcp_srv.addr, method="POST", path="/post", body=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert env["_body"].encode("latin-1") == body
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env


def test_response_is_raw_http(tcp_srv):
    with uwsgi_connect(tcp_srv.addr) as c:
        c.send(uwsgi_packet(uwsgi_vars(path="/__fixed__")))
        raw = c.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ") or raw.startswith(b"HTTP/1.0 200 "), raw[:100]
    assert raw.endswith(b"0123456789" * 100)


def test_large_streamed_response(unix_srv):
    size = 8 * 1024 * 1024 + 7
    r = uwsgi_request(unix_srv.sock, uwsgi_vars(path="/__big__", query=f"size={size}"), timeout=60)
    assert r.status == 200 and r.complete
    assert r.body == big_payload(size)


def test_magic_vars_that_load_code_are_ignored(tcp_srv, tmp_path):
    evil = tmp_path / "evil.py"
    marker = tmp_path / "evil-ran"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                    "def application(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                    "    return [b'EVIL']\n")
    v = uwsgi_vars(path="/magic")
    v.update({"UWSGI_FILE": str(evil), "UWSGI_SCRIPT": "evil", "UWSGI_MODULE": "evil", "UWSGI_CALLABLE": "application",
              "UWSGI_PYHOME": str(tmp_path), "UWSGI_CHDIR": str(tmp_path), "UWSGI_APPID": "evil"})
    r = uwsgi_request(tcp_srv.addr, v)
    assert r.status == 200 and b"EVIL" not in r.body
    assert r.json()["PATH_INFO"] == "/magic"
    assert not marker.exists(), "a UWSGI_* var made liege load code"


@pytest.mark.parametrize("name,data", [
    pytest.param("datasize-larger-than-sent", struct.pack("<BHB", 0, 500, 0) + b"\x03\x00abc\x01\x00x",
                 id="datasize-larger-than-sent"),
    pytest.param("var-length-past-end", struct.pack("<BHB", 0, 8, 0) + b"\xff\x00abcdef", id="var-length-past-end"),
    pytest.param("only-half-a-header", b"\x00\x10", id="only-half-a-header"),
    pytest.param("key-without-value", struct.pack("<BHB", 0, 5, 0) + b"\x03\x00abc", id="key-without-value"),
])
def test_malformed_packets_close_and_worker_lives(tcp_srv, name, data):
    before = tcp_srv.worker_pids()
    with uwsgi_connect(tcp_srv.addr, timeout=10) as c:
        c.send(data)
        c.shutdown_write()
        rest = c.read_to_eof()
    # Either nothing, or an HTTP error: never the app's answer.
    assert rest == b"" or rest.startswith(b"HTTP/1.") and rest[9:10] in (b"4", b"5"), rest[:200]
    env = echo_env(tcp_srv.addr, path="/after")
    assert env["PATH_INFO"] == "/after"
    assert tcp_srv.worker_pids() == before


def test_packet_sent_byte_by_byte(tcp_srv):
    body = b"slow body"
    data = uwsgi_packet(uwsgi_vars(method="POST", path="/slow", body=body)) + body
    with uwsgi_connect(tcp_srv.addr) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        r = c.read_response()
    assert r.status == 200 and r.json()["_body"] == "slow body"


def test_port_only_address_listens(liege):
    # `socket = :PORT` means all interfaces, as in uWSGI; we only ever connect through 127.0.0.1.
    port = free_port()
    srv = liege("--socket", f":{port}", "--wsgi-file", APPS / "echo.py", http=False,
                uwsgi_addr=("127.0.0.1", port))
    assert echo_env(("127.0.0.1", port), path="/any")["PATH_INFO"] == "/any"
    assert srv.alive()


def test_http_and_uwsgi_sockets_together(liege, short_tmp):
    sock = short_tmp / "both.sock"
    srv = liege("--socket", sock, "--wsgi-file", APPS / "echo.py", workers=1)
    assert http_get(srv.port, "/h").json()["PATH_INFO"] == "/h"
    assert echo_env(str(sock), path="/u")["PATH_INFO"] == "/u"


def test_chmod_socket(liege, short_tmp):
    sock = short_tmp / "mode.sock"
    liege("--socket", sock, "--chmod-socket", "660", "--wsgi-file", APPS / "echo.py", http=False,
          uwsgi_addr=str(sock))
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    sock2 = short_tmp / "mode2.sock"
    liege("--socket", sock2, "--chmod-socket", "--wsgi-file", APPS / "echo.py", http=False,
          uwsgi_addr=str(sock2))
    assert stat.S_IMODE(os.stat(sock2).st_mode) == 0o666, "bare chmod-socket means 666, as in uWSGI"


def test_stale_socket_file_is_replaced(liege, short_tmp):
    import socket as pysocket
    sock = short_tmp / "stale.sock"
    s = pysocket.socket(pysocket.AF_UNIX)
    s.bind(str(sock))
    s.close()  # leaves a socket file nobody listens on, as a crashed server would
    liege("--socket", sock, "--wsgi-file", APPS / "echo.py", http=False, uwsgi_addr=str(sock))
    assert echo_env(str(sock), path="/fresh")["PATH_INFO"] == "/fresh"


def body_read_sizes(liege, tmp_path, *options) -> list[int]:
    """The sizes the worker asks recvfrom(2) for while it reads a 1 MiB uwsgi request body (strace on it)."""
    port = free_port()
    srv = liege("--socket", f"127.0.0.1:{port}", "--wsgi-file", APPS / "echo.py", "--processes", "1", *options,
                http=False, uwsgi_addr=("127.0.0.1", port), workers=1)
    (worker,) = srv.worker_pids()
    trace = tmp_path / f"strace-{port}"
    tracer = subprocess.Popen(["strace", "-qq", "-p", str(worker), "-e", "trace=recvfrom", "-o", trace],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: trace.exists(), 10, "strace to attach")
        time.sleep(0.3)
        body = big_payload(1024 * 1024)
        env = echo_env(("127.0.0.1", port), method="POST", path="/upload", body=body)
        assert env["_body_len"] == len(body) and env["_body"].encode("latin-1") == body
    finally:
        tracer.terminate()
        tracer.wait(10)
    asked = re.findall(r"^recvfrom\(\d+, .*, (\d+), 0, NULL, NULL\) = \d+$", trace.read_text(), re.M)
    return [int(size) for size in asked]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the worker's reads")
def test_post_buffering_bufsize_is_the_size_of_the_body_reads(liege, tmp_path):
    """post-buffering-bufsize: a body is read from the socket in reads of that many bytes (uWSGI's post-buffering
    read buffer); by default 8192, raised to post-buffering when that is larger."""
    sized = body_read_sizes(liege, tmp_path, "--post-buffering", "4096", "--post-buffering-bufsize", "16384")
    assert sized and max(sized) == 16384 and sized.count(16384) >= 32, sized
    default = body_read_sizes(liege, tmp_path, "--post-buffering", "4096")
    assert default and max(default) == 8192 and default.count(8192) >= 64, default
    raised = body_read_sizes(liege, tmp_path, "--post-buffering", "65536", "--post-buffering-bufsize", "4096")
    assert raised and max(raised) == 65536, raised
