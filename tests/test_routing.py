"""uWSGI's internal routing (`route`, `route-host`, `route-if`, `route-label`/`goto`, `error-route-status`,
`final-route`...) on real requests to the echo app, over HTTP and the uwsgi protocol: health checks kept out
of the request log, redirects, rewrites the app sees, status returns, headers, basic auth, conditions on vars
and headers; and route lines liege cannot run refused at startup with their file and line."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from liegetest import APPS, HTTPConn, http_request, uwsgi_request, uwsgi_vars

ROUTES = r"""
route = ^/healthz$ donotlog:
route-user-agent = ^kube-probe donotlog:
route = ^/old/(.*)$ redirect-301:/new/$1
route = ^/moved$ redirect:https://${HTTP_HOST}/elsewhere
route = ^/p/(\d+)$ rewrite:/post?id=$1
route = ^/gone$ return:410
route = ^/deny$ break:403 Go Away
route = ^/drop$ break:
route = ^/admin basicauth:Staff,alice:s3cret
route-if = equal:${HTTP_X_MODE};teapot return:418
route-if-not = empty:${HTTP_X_TAG} addheader:X-Echo-Tag: ${HTTP_X_TAG}
route-host = ^blocked\.example$ return:404
route = ^/jump goto:landing
route = ^/jump return:500
route-label = landing
route = ^/jump addheader:X-Jumped: yes
route-qs = (^|&)debug=1 addvar:DEBUG_FLAG=on
route = ^/log-me log:routed ${PATH_INFO} from ${REMOTE_ADDR}
route = ^/nohdr delheader:X-App
error-route-status = 404 addheader:X-Error-Route: 1
final-route = ^/quiet donotlog:
"""


@pytest.fixture
def routed(liege, tmp_path, short_tmp):
    ini = tmp_path / "routes.ini"
    sock = short_tmp / "routes.sock"
    ini.write_text(f"[uwsgi]\nwsgi-file = {APPS / 'echo.py'}\nsocket = {sock}\n{ROUTES}")
    srv = liege(ini)
    return srv, str(sock)


def get(port, path, headers=(), method="GET"):
    return http_request(port, method, path, headers=list(headers))


def token() -> str:
    return f"t{time.monotonic_ns()}"


def test_donotlog_keeps_health_checks_out_of_the_log(routed):
    srv, _ = routed
    assert get(srv.port, "/healthz").status == 200
    assert get(srv.port, "/ready", [("User-Agent", "kube-probe/1.29")]).status == 200
    assert get(srv.port, "/quiet").status == 200
    marker = token()
    assert get(srv.port, f"/visible?{marker}").status == 200
    srv.wait_log(re.escape(marker))
    logs = srv.logs()
    assert "GET /healthz" not in logs and "GET /ready" not in logs and "GET /quiet" not in logs


def test_redirects(routed):
    srv, _ = routed
    r = get(srv.port, "/old/a/b.html")
    assert r.status == 301 and r.header("Location") == "/new/a/b.html" and r.body == b"Moved Permanently"
    r = get(srv.port, "/moved", [("Host", "example.org")])
    assert r.status == 302 and r.header("Location") == "https://example.org/elsewhere"


def test_rewrite_reaches_the_app(routed):
    srv, _ = routed
    env = get(srv.port, "/p/42?lang=en").json()
    assert env["PATH_INFO"] == "/post" and env["QUERY_STRING"] == "id=42&lang=en"
    assert env["REQUEST_URI"] == "/p/42?lang=en"


def test_return_break_and_drop(routed):
    srv, _ = routed
    r = get(srv.port, "/gone")
    assert (r.status, r.body) == (410, b"Gone")
    r = get(srv.port, "/deny")
    assert r.status == 403 and r.reason == "Go Away"
    with HTTPConn.tcp(srv.port) as conn:
        conn.send(b"GET /drop HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.is_closed_by_peer()
    r = get(srv.port, "/x", [("X-Mode", "teapot")])
    assert r.status == 418
    r = get(srv.port, "/x", [("Host", "blocked.example")])
    assert r.status == 404


def test_basicauth(routed):
    srv, _ = routed
    r = get(srv.port, "/admin/panel")
    assert r.status == 401 and r.header("WWW-Authenticate") == 'Basic realm="Staff"'
    wrong = base64.b64encode(b"alice:nope").decode()
    assert get(srv.port, "/admin/panel", [("Authorization", f"Basic {wrong}")]).status == 401
    good = base64.b64encode(b"alice:s3cret").decode()
    env = get(srv.port, "/admin/panel", [("Authorization", f"Basic {good}")]).json()
    assert env["REMOTE_USER"] == "alice"


def test_headers_vars_goto_and_log(routed):
    srv, _ = routed
    r = get(srv.port, "/x", [("X-Tag", "blue")])
    assert r.header("X-Echo-Tag") == "blue"
    assert get(srv.port, "/x").header("X-Echo-Tag") is None
    r = get(srv.port, "/jump")
    assert r.status == 200 and r.header("X-Jumped") == "yes"
    assert get(srv.port, "/vars?debug=1").json()["DEBUG_FLAG"] == "on"
    assert get(srv.port, "/log-me").status == 200
    srv.wait_log(r"routed /log-me from 127\.0\.0\.1")


def test_error_route_status(routed):
    srv, _ = routed
    # echo answers every path with 200; the status route fires on a route-made 404.
    r = get(srv.port, "/x", [("Host", "blocked.example")])
    assert r.status == 404
    assert get(srv.port, "/fine").header("X-Error-Route") is None


def test_over_the_uwsgi_protocol(routed):
    _, sock = routed
    r = uwsgi_request(sock, uwsgi_vars(path="/old/z"))
    assert r.status == 301 and r.header("Location") == "/new/z"
    env = uwsgi_request(sock, uwsgi_vars(path="/p/7")).json()
    assert env["PATH_INFO"] == "/post" and env["QUERY_STRING"] == "id=7"
    r = uwsgi_request(sock, uwsgi_vars(path="/admin"))
    assert r.status == 401


def test_static_action(liege, tmp_path):
    (tmp_path / "robots.txt").write_text("User-agent: *\n")
    srv = liege("--wsgi-file", APPS / "echo.py", "--route", f"^/robots\\.txt$ static:{tmp_path / 'robots.txt'}")
    r = get(srv.port, "/robots.txt")
    assert r.status == 200 and r.body == b"User-agent: *\n" and r.header("Content-Type").startswith("text/plain")


@pytest.mark.parametrize("line, message", [
    ("route = ^/x cache:key=x", r"routes\.ini:3: route = \^/x cache:key=x: the 'cache' action is not supported"),
    ("route = ^/x uwsgi:127.0.0.1:3031,0,0", "does not proxy"),
    ("route = (?<=a)b donotlog:", "look-around"),
    ("route-if = nosuch:x donotlog:", "unknown route condition 'nosuch'"),
    ("route-run = goto:nowhere", "no route-label 'nowhere'"),
    ("route = ^/x frob:", "unknown route action 'frob'"),
    ("route-run = harakiri:60", "per-request harakiri"),
])
def test_unsupported_routes_fail_at_startup(liege, tmp_path, line, message):
    ini = tmp_path / "routes.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {APPS / 'echo.py'}\n{line}\n")
    srv = liege(ini, ready=False)
    assert srv.wait_exit() != 0
    assert re.search(message, srv.logs()), srv.logs()
