"""Static files (`static-map`, `static-map2`, `check-static`, `static-index`, `static-expires*`, `static-gzip*`,
`static-safe`, `static-skip-ext`, `honour-range`, `add-header`/`del-header`) served by liege's event loop,
over HTTP (a browser-like client: conditional requests, ranges, gzip) and the uwsgi protocol, directly and
behind real nginx (`uwsgi_pass`).

Each response is checked against the file on disk; escape attempts must never return the secret file's bytes
(they fall through to the echo app, as in uWSGI)."""

from __future__ import annotations

import email.utils
import gzip
import http.client
import os
import re
import time
from pathlib import Path

import pytest

from liegetest import APPS, HTTPConn, http_get, http_request, register_for_report, uwsgi_request, uwsgi_vars

SECRET = b"TOPSECRET-do-not-serve\n"
CSS = b"body { color: #123456; }\n" * 40


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    static = root / "static"
    (static / "sub").mkdir(parents=True)
    (static / "empty").mkdir()
    (static / "app.css").write_bytes(CSS)
    (static / "sub" / "index.html").write_bytes(b"<h1>index</h1>\n")
    (static / "big.bin").write_bytes(os.urandom(1 << 20))
    js = b"console.log('hello');\n" * 100
    (static / "app.js").write_bytes(js)
    (static / "app.js.gz").write_bytes(gzip.compress(js))
    (static / "notes.py").write_bytes(b"print('source')\n")
    (static / "README").write_bytes(b"no extension\n")
    (root / "secret").write_bytes(SECRET)
    (static / "link-out").symlink_to(root / "secret")
    outside = root / "shared"
    outside.mkdir()
    (outside / "logo.txt").write_bytes(b"shared logo\n")
    (static / "logo.txt").symlink_to(outside / "logo.txt")
    return root


def static_args(site: Path, *extra: str) -> list[str]:
    return ["--wsgi-file", str(APPS / "echo.py"),
            "--static-map", f"/static={site / 'static'}",
            "--static-index", "index.html",
            "--static-expires-uri", r"^/static/.*\.css$ 3600",
            "--static-gzip-all",
            "--static-safe", str(site / "shared"),
            "--static-skip-ext", ".py",
            "--honour-range",
            "--add-header", "X-Content-Type-Options: nosniff",
            *extra]


@pytest.fixture
def srv(liege, site):
    return liege(*static_args(site))


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_file_with_type_length_dates_and_added_header(srv, site):
    status, headers, body = get(srv.port, "/static/app.css")
    assert status == 200 and body == CSS
    assert headers["content-type"] == "text/css"
    assert headers["content-length"] == str(len(CSS))
    mtime = (site / "static" / "app.css").stat().st_mtime
    assert email.utils.parsedate_to_datetime(headers["last-modified"]).timestamp() == int(mtime)
    expires = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
    assert 3500 < expires - time.time() < 3700
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["accept-ranges"] == "bytes"
    # Not Python: the echo app's pid marker is absent, and the request is in the log.
    srv.wait_log(r"GET /static/app\.css => generated \d+ bytes")


def test_conditional_get_and_head(srv):
    _, headers, _ = get(srv.port, "/static/app.css")
    status, _, body = get(srv.port, "/static/app.css", {"If-Modified-Since": headers["last-modified"]})
    assert (status, body) == (304, b"")
    status, _, body = get(srv.port, "/static/app.css", {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert (status, body) == (200, CSS)
    status, head_headers, body = get(srv.port, "/static/app.css", method="HEAD")
    assert (status, body) == (200, b"")
    assert head_headers["content-length"] == str(len(CSS))


def test_ranges(srv, site):
    big = (site / "static" / "big.bin").read_bytes()
    status, headers, body = get(srv.port, "/static/big.bin", {"Range": "bytes=100-199"})
    assert (status, body) == (206, big[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(big)}"
    status, _, body = get(srv.port, "/static/big.bin", {"Range": "bytes=-10"})
    assert (status, body) == (206, big[-10:])
    status, headers, _ = get(srv.port, "/static/big.bin", {"Range": f"bytes={len(big)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(big)}"
    status, _, body = get(srv.port, "/static/big.bin")
    assert status == 200 and body == big


def test_precompressed_gzip(srv, site):
    status, headers, body = get(srv.port, "/static/app.js", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (site / "static" / "app.js").read_bytes()
    assert headers["content-type"] in ("text/javascript", "application/javascript")
    status, headers, body = get(srv.port, "/static/app.js")
    assert "content-encoding" not in headers and body == (site / "static" / "app.js").read_bytes()


@pytest.mark.parametrize("path", ["/static/../secret", "/static/%2e%2e/secret", "/static/..%2fsecret",
                                  "/static/%2e%2e%2fsecret", "/static/link-out", "/static/sub/../../secret",
                                  "/static/app.css%00", "/static/notes.py"])
def test_escapes_fall_through_to_the_app(srv, path):
    conn = HTTPConn.tcp(srv.port)
    with conn:
        resp = conn.request("GET", path, [("Connection", "close")])
    assert SECRET not in resp.body and b"print('source')" not in resp.body
    # The app answered (echo JSON), or liege refused the request line outright.
    assert resp.status in (200, 400, 404), resp
    if resp.status == 200:
        assert "PATH_INFO" in resp.json()


def test_static_safe_allows_a_symlink_target(srv):
    status, headers, body = get(srv.port, "/static/logo.txt")
    assert (status, body) == (200, b"shared logo\n")
    assert headers["content-type"].startswith("text/plain")


def test_index_and_directories_without_one(srv):
    status, headers, body = get(srv.port, "/static/sub/")
    assert (status, body) == (200, b"<h1>index</h1>\n")
    assert headers["content-type"] == "text/html"
    status, _, body = get(srv.port, "/static/empty/")
    assert status == 200 and json_path(body) == "/static/empty/"
    status, _, body = get(srv.port, "/static/missing.css")
    assert status == 200 and json_path(body) == "/static/missing.css"


def json_path(body: bytes) -> str:
    import json
    return json.loads(body)["PATH_INFO"]


def test_keepalive_static_then_app(srv):
    with HTTPConn.tcp(srv.port) as conn:
        first = conn.request("GET", "/static/app.css")
        second = conn.request("GET", "/app")
        third = conn.request("GET", "/static/sub/")
    assert first.body == CSS and second.json()["PATH_INFO"] == "/app" and third.body == b"<h1>index</h1>\n"


def test_stats_count_static_requests(liege, site):
    from liegetest import free_port
    stats_port = free_port()
    srv = liege(*static_args(site, "--stats", f"127.0.0.1:{stats_port}", "--stats-http"))
    for _ in range(3):
        assert get(srv.port, "/static/app.css")[0] == 200
    import json
    import urllib.request

    def served():
        data = json.load(urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/", timeout=5))
        return sum(w["requests"] for w in data["workers"]) >= 4 and data
    from liegetest import wait_for
    data = wait_for(served, 10, "static requests in the stats")
    assert sum(w["tx"] for w in data["workers"]) >= 3 * len(CSS)


def test_uwsgi_protocol(liege, site, short_tmp):
    sock = short_tmp / "static.sock"
    srv = liege(*static_args(site), "--socket", sock, http=False, uwsgi_addr=str(sock))
    resp = uwsgi_request(str(sock), uwsgi_vars(path="/static/app.css"))
    assert resp.status == 200 and resp.body == CSS
    assert resp.header("Content-Type") == "text/css"
    big = (site / "static" / "big.bin").read_bytes()
    resp = uwsgi_request(str(sock), uwsgi_vars(path="/static/big.bin"))
    assert resp.body == big
    resp = uwsgi_request(str(sock), uwsgi_vars(path="/static/big.bin", headers={"Range": "bytes=10-19"}))
    assert resp.status == 206 and resp.body == big[10:20]
    resp = uwsgi_request(str(sock), uwsgi_vars(path="/static/../secret"))
    assert SECRET not in resp.body
    srv.wait_log(r"GET /static/big\.bin => generated 10 bytes")


def test_map2_and_check_static(liege, site):
    srv = liege("--wsgi-file", APPS / "echo.py", "--static-map2", f"/static={site}",
                "--check-static", str(site / "static" / "sub"))
    status, _, body = get(srv.port, "/static/app.css")
    assert (status, body) == (200, CSS)
    status, _, body = get(srv.port, "/index.html")
    assert (status, body) == (200, b"<h1>index</h1>\n")
    # map2 looks up the whole path: /static/secret is <site>/static/secret, which does not exist.
    status, _, body = get(srv.port, "/static/secret")
    assert SECRET not in body


def test_ini_like_the_wild(liege, site, tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(f"""[uwsgi]
wsgi-file = {APPS / 'echo.py'}
static-map = /static={site / 'static'}
static-expires = /* 86400
offload-threads = 4
static-gzip-all = true
add-header = Connection: close
""")
    srv = liege(ini)
    status, headers, body = get(srv.port, "/static/app.css")
    assert (status, body) == (200, CSS)
    assert "expires" in headers and headers["connection"] == "close"


def test_bad_static_options_fail_at_startup(liege, tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {APPS / 'echo.py'}\nstatic-expires = (unclosed 60\n")
    srv = liege(ini, ready=False)
    assert srv.wait_exit() != 0
    assert re.search(r"bad\.ini:3: static-expires = \(unclosed 60: invalid regex", srv.logs()), srv.logs()


@pytest.mark.nginx
def test_through_nginx(liege, site, short_tmp, tmp_path, request):
    from test_nginx import Nginx
    sock = short_tmp / "ngx-static.sock"
    liege(*static_args(site), "--socket", sock, http=False, uwsgi_addr=str(sock))
    ngx = Nginx(tmp_path / "nginx", {"/": str(sock)})
    register_for_report(request.node, ngx)
    try:
        ngx.start()
        status, headers, body = get(ngx.port, "/static/app.css")
        assert (status, body) == (200, CSS) and headers["content-type"] == "text/css"
        status, _, body = get(ngx.port, "/static/app.css", {"If-Modified-Since": headers["last-modified"]})
        assert status == 304
        big = (site / "static" / "big.bin").read_bytes()
        status, _, body = get(ngx.port, "/static/big.bin")
        assert (status, body) == (200, big)
        status, _, body = get(ngx.port, "/static/big.bin", {"Range": "bytes=5-9"})
        assert (status, body) == (206, big[5:10])
        status, _, body = get(ngx.port, "/static/%2e%2e/secret")
        assert SECRET not in body
        status, _, body = get(ngx.port, "/app/x")
        assert status == 200 and json_path(body) == "/app/x"
    finally:
        ngx.stop()
