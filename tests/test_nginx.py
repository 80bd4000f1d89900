"""Real nginx (Debian's package, installed by tests/run) in front of liege with `uwsgi_pass unix:...`.

nginx runs in the foreground (`daemon off;`) with its own prefix, config, pid, logs and temp paths in a
temporary directory, on 127.0.0.1 only; it is ended with its whole process group at teardown."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from liegetest import (APPS, ConnectionClosed, HTTPConn, big_payload, free_port, group_members, http_get,
                       http_request, register_for_report, wait_for)

pytestmark = pytest.mark.nginx

UWSGI_PARAMS = """\
uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
"""


def nginx_binary() -> str:
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.fail("nginx is not installed (tests/run installs it with apt)", pytrace=False)


class Nginx:
    def __init__(self, workdir: Path, locations: dict[str, str]):
        self.dir = workdir
        self.port = free_port()
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        params = Path("/etc/nginx/uwsgi_params")
        (workdir / "uwsgi_params").write_text(params.read_text() if params.exists() else UWSGI_PARAMS)
        locs = ""
        for prefix, sock in locations.items():
            buffering = "off" if prefix.startswith("/unbuffered") else "on"
            locs += (f"        location {prefix} {{\n"
                     f"            include {workdir}/uwsgi_params;\n"
                     f"            uwsgi_buffering {buffering};\n"
                     f"            uwsgi_pass unix:{sock};\n"
                     f"        }}\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(f"""\
daemon off;
master_process on;
worker_processes 1;
{user}pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/logs/access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
{locs}    }}
}}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        self.stderr = open(self.dir / "logs" / "stderr.log", "wb")
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(self.dir), "-c", str(self.conf),
                                      "-e", str(self.dir / "logs" / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with HTTPConn.tcp(self.port, timeout=2):
                    return True
            except OSError:
                return False
        wait_for(ready, 20, "nginx to listen")
        return self

    def describe(self) -> str:
        return self.logs()

    def logs(self) -> str:
        out = ""
        for name in ("stderr.log", "error.log"):
            p = self.dir / "logs" / name
            if p.exists():
                out += f"--- nginx {name}:\n" + p.read_text(errors="replace")[-4000:]
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        wait_for(lambda: not group_members(self.proc.pid), 10, "nginx's processes to exit")
        self.stderr.close()


@pytest.fixture
def stack(liege, short_tmp, tmp_path, request):
    """liege (echo app and raising app, each on a unix socket) behind one nginx."""
    echo_sock, raise_sock = short_tmp / "echo.sock", short_tmp / "raise.sock"
    echo = liege("--socket", echo_sock, "--wsgi-file", APPS / "echo.py", "--processes", "2", http=False,
                 uwsgi_addr=str(echo_sock), name="echo")
    raising = liege("--socket", raise_sock, "--wsgi-file", APPS / "raising.py", http=False,
                    uwsgi_addr=str(raise_sock), name="raising")
    ngx = Nginx(tmp_path / "nginx", {"/": str(echo_sock), "/unbuffered/": str(echo_sock),
                                     "/raise": str(raise_sock)})
    register_for_report(request.node, ngx)
    try:
        ngx.start()
        yield ngx, echo, raising
    finally:
        ngx.stop()


def env_of(resp):
    assert resp.status == 200, resp
    return resp.json()


def test_get_through_nginx(stack):
    ngx, echo, _ = stack
    env = env_of(http_get(ngx.port, "/some/path%20x?q=1&r=2", headers=[("X-Custom", "abc")]))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/some/path x"
    assert env["QUERY_STRING"] == "q=1&r=2"
    assert env["REQUEST_URI"] == "/some/path%20x?q=1&r=2"
    assert env["HTTP_X_CUSTOM"] == "abc"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(ngx.port)
    assert env["_pid"] in echo.worker_pids()


def test_post_body_through_nginx(stack):
    ngx, _, _ = stack
    small = b"a=1&b=" + b"x" * 100_000
    env = env_of(http_request(ngx.port, "POST", "/form", [("Content-Type", "application/x-www-form-urlencoded")],
                              body=small))
    assert env["_body"].encode() == small
    assert env["CONTENT_LENGTH"] == str(len(small))
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB: nginx spools it to a temp file first
    env = env_of(http_request(ngx.port, "POST", "/upload", body=big, timeout=60))
    assert env["_body_len"] == len(big)
    assert env["_body"].encode("latin-1") == big


def test_chunked_post_through_nginx(stack):
    ngx, _, _ = stack
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"hello ", b"chunked ", b"world")) + b"0\r\n\r\n"
    env = env_of(http_request(ngx.port, "POST", "/chunked", [("Transfer-Encoding", "chunked")], body=body))
    assert env["_body"] == "hello chunked world"


@pytest.mark.parametrize("prefix", ["/", "/unbuffered/"])
def test_large_streamed_response_through_nginx(stack, prefix):
    ngx, _, _ = stack
    size = 30 * 1024 * 1024 + 11
    r = http_get(ngx.port, f"{prefix}__big__?size={size}", timeout=120)
    assert r.status == 200 and r.complete
    assert len(r.body) == size
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(big_payload(size)).digest()


def test_keepalive_through_nginx(stack):
    ngx, _, _ = stack
    with HTTPConn.tcp(ngx.port) as c:
        for i in range(10):
            assert env_of(c.request("GET", f"/k{i}", [("Host", "localhost")]))["PATH_INFO"] == f"/k{i}"
        r = c.request("HEAD", "/__fixed__", [("Host", "localhost")])
        assert r.status == 200 and r.body == b""


def test_500_through_nginx(stack):
    ngx, _, raising = stack
    mark = raising.log_mark()
    r = http_get(ngx.port, "/raise?token=ngx")
    assert r.status == 500
    raising.wait_log(r"RuntimeError: boom-ngx", since=mark)
    raising.wait_log(r"Traceback \(most recent call last\)", since=mark)
    r = http_get(ngx.port, "/raise-ok")
    assert r.status == 200 and r.body.startswith(b"ok ")


def test_client_abort_through_nginx_leaves_liege_serving(stack):
    ngx, echo, _ = stack
    before = echo.worker_pids()
    with HTTPConn.tcp(ngx.port) as c:
        c.send(b"GET /__big__?size=200000000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            head = c.read_head()
            assert head.status == 200
            c._read_exact(1_000_000)
        except ConnectionClosed:
            pass
    wait_for(lambda: http_get(ngx.port, "/__fixed__").status == 200, 20, "liege serving again via nginx")
    assert echo.worker_pids() == before
