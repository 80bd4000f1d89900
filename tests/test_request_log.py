"""The request log: `logformat` templates (uWSGI's variables), `log-format = json`, and the conditions
`log-4xx` / `log-5xx` / `log-slow`, which log matching requests even under `disable-logging` (uWSGI's
log_request() in core/logging.c), over HTTP and over the uwsgi protocol.

Lines are found by a unique token in their URI; with one worker, lines are written in request order, so once
the last request's line is there, an earlier request that was to be logged is there too.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from liegetest import APPS, HTTPConn, build_request, http_request, uwsgi_connect, uwsgi_packet, uwsgi_vars

FIELDS = ["addr", "method", "uri", "proto", "status", "rsize", "hsize", "size", "msecs", "micros", "wid",
          "pid", "ltime", "uagent", "referer", "host", "var.HTTP_X_REQUEST_ID", "var.REMOTE_USER",
          "var.QUERY_STRING", "var.PATH_INFO", "time", "epoch", "ctime", "cl", "headers", "user", "tmsecs",
          "tmicros", "secs", "vars", "pktsize", "modifier1", "modifier2", "switches", "core"]
TEMPLATE = "RL|" + "|".join(f"%({f})" for f in FIELDS)


def token() -> str:
    return f"t{time.monotonic_ns()}"


def line_with(srv, text: str, prefix: str = "") -> str:
    rx = re.compile(rf"^{re.escape(prefix)}.*{re.escape(text)}.*$", re.M)
    return srv.wait_log(rx).group(0)


def fields_of(line: str) -> dict[str, str]:
    values = line.split("|")[1:]
    assert len(values) == len(FIELDS), line
    return dict(zip(FIELDS, values))


def uwsgi_exchange(addr, variables, modifier2: int = 0) -> tuple[int, bytes]:
    with uwsgi_connect(addr) as c:
        c.send(uwsgi_packet(variables, modifier2=modifier2))
        r = c.read_response(variables.get("REQUEST_METHOD", "GET"))
        return r.status, r.body


def check_common(f: dict[str, str], *, body: bytes, status: int) -> None:
    assert f["status"] == str(status)
    assert f["proto"] == "HTTP/1.1"
    assert f["addr"] == "127.0.0.1"
    assert f["method"] == "GET"
    pid = re.search(rb"pid (\d+)", body).group(1).decode()
    assert f["pid"] == pid and f["wid"] == "1"
    assert int(f["rsize"]) == len(body)
    assert int(f["hsize"]) > 0 and int(f["size"]) == int(f["rsize"]) + int(f["hsize"])
    assert int(f["micros"]) // 1000 == int(f["msecs"])
    assert abs(float(f["secs"]) - int(f["micros"]) / 1e6) < 1e-5
    start = int(f["time"])
    assert abs(start - time.time()) < 60 and int(f["epoch"]) >= start
    assert int(f["tmsecs"]) // 1000 == start and int(f["tmicros"]) // 1000 == int(f["tmsecs"])
    assert f["ctime"] == time.ctime(start)
    assert f["ltime"] == time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(start))
    assert f["cl"] == "0"
    assert int(f["headers"]) >= 2  # Content-Type, Content-Length
    assert int(f["vars"]) > 0 and int(f["pktsize"]) > 0
    assert f["modifier1"] == "0" and f["switches"] == "0" and f["core"] == "0"


def test_template_variables_over_http(liege):
    srv = liege("--wsgi-file", APPS / "statuses.py", "--logformat", TEMPLATE, workers=1)
    t = token()
    r = http_request(srv.port, "GET", f"/status/404?token={t}", headers=[
        ("Host", "app.example:8080"), ("User-Agent", f"lt-agent/1.0 ({t})"),
        ("Referer", f"http://ref.example/{t}"), ("X-Request-Id", f"rid-{t}")])
    assert r.status == 404
    f = fields_of(line_with(srv, f"token={t}", "RL|"))
    check_common(f, body=r.body, status=404)
    assert f["uri"] == f"/status/404?token={t}"
    assert f["uagent"] == f"lt-agent/1.0 ({t})"
    assert f["referer"] == f"http://ref.example/{t}"
    assert f["host"] == "app.example:8080"
    assert f["var.HTTP_X_REQUEST_ID"] == f"rid-{t}"
    assert f["var.QUERY_STRING"] == f"token={t}"
    assert f["var.PATH_INFO"] == "/status/404"
    # Empty or absent values are "-", as in uWSGI.
    assert f["var.REMOTE_USER"] == "-" and f["user"] == "-"
    assert f["modifier2"] == "0"

    # A 500 without User-Agent nor Referer.
    t = token()
    r = http_request(srv.port, "GET", f"/status/500?token={t}")
    assert r.status == 500
    f = fields_of(line_with(srv, f"token={t}", "RL|"))
    check_common(f, body=r.body, status=500)
    assert f["uagent"] == "-" and f["referer"] == "-" and f["var.HTTP_X_REQUEST_ID"] == "-"
    assert f["host"] == "127.0.0.1"


def test_template_variables_over_uwsgi(liege, short_tmp):
    sock = short_tmp / "app.sock"
    srv = liege("--socket", sock, "--wsgi-file", APPS / "statuses.py", "--logformat", TEMPLATE, http=False,
                uwsgi_addr=str(sock), workers=1)
    t = token()
    variables = uwsgi_vars(path="/status/500", query=f"token={t}", headers={
        "User-Agent": f"lt-agent/2.0 ({t})", "Referer": f"http://ref.example/{t}", "X-Request-Id": f"rid-{t}"})
    variables["REMOTE_USER"] = "alice"
    variables["HTTP_HOST"] = "app.example"
    packet = uwsgi_packet(variables, modifier2=7)
    status, body = uwsgi_exchange(str(sock), variables, modifier2=7)
    assert status == 500
    f = fields_of(line_with(srv, f"token={t}", "RL|"))
    check_common(f, body=body, status=500)
    assert f["uri"] == f"/status/500?token={t}"
    assert f["uagent"] == f"lt-agent/2.0 ({t})"
    assert f["referer"] == f"http://ref.example/{t}"
    assert f["host"] == "app.example"
    assert f["var.HTTP_X_REQUEST_ID"] == f"rid-{t}"
    assert f["user"] == "alice" and f["var.REMOTE_USER"] == "alice"
    assert f["var.PATH_INFO"] == "/status/500"
    assert f["modifier2"] == "7"
    assert f["pktsize"] == str(len(packet) - 4)  # the vars, without the packet header (uWSGI's wsgi_req->len)


def test_template_from_ini_file_and_unknown_variables(liege, tmp_path):
    ini = tmp_path / "app.ini"
    # `%%` is the config file's literal `%`; an unknown variable logs "-" and is reported at startup.
    ini.write_text("[uwsgi]\nlogformat = RL2 100%% %(status) %(nosuch) %(uri)\n")
    srv = liege("--ini", ini, "--wsgi-file", APPS / "statuses.py", workers=1)
    srv.wait_log(r"unknown variable %\(nosuch\)")
    t = token()
    assert http_request(srv.port, "GET", f"/?token={t}").status == 200
    assert line_with(srv, f"token={t}", "RL2") == f"RL2 100% 200 - /?token={t}"
    # Warned once (by the master), not once per worker.
    assert len(re.findall(r"unknown variable %\(nosuch\)", srv.logs())) == 1


def test_json_lines_over_http(liege):
    srv = liege("--wsgi-file", APPS / "statuses.py", "--log-format", "json", workers=1)
    t = token()
    # (a `"` in the query is refused by the HTTP parser; in the path it is accepted)
    path = f'/q"uo\\te/%C3%A9?x=\\y&t={t}'
    with HTTPConn.tcp(srv.port) as c:
        c.send(build_request("GET", path, [("User-Agent", 'agent "quoted" \\ back'), ("Referer", "r\u00e9f"),
                                           ("Connection", "close")]))
        r = c.read_response()
    assert r.status == 200
    rec = json.loads(line_with(srv, t, "{"))
    assert rec["uri"] == path
    assert rec["method"] == "GET" and rec["proto"] == "HTTP/1.1" and rec["status"] == 200
    assert rec["addr"] == "127.0.0.1" and rec["host"] == "127.0.0.1"
    assert rec["uagent"] == 'agent "quoted" \\ back'
    assert rec["referer"] == "r\ufffdf"  # a latin-1 byte that is not UTF-8
    assert rec["rsize"] == len(r.body) and rec["size"] > rec["rsize"]
    assert rec["micros"] // 1000 == rec["msecs"]
    assert rec["pid"] == int(re.search(rb"pid (\d+)", r.body).group(1)) and rec["wid"] == 1
    assert abs(rec["time"] - time.time()) < 60

    t = token()
    assert http_request(srv.port, "GET", f"/status/404?t={t}").status == 404
    rec = json.loads(line_with(srv, t, "{"))
    assert rec["status"] == 404 and rec["uagent"] is None and rec["referer"] is None


def test_json_lines_over_uwsgi(liege, short_tmp):
    sock = short_tmp / "app.sock"
    srv = liege("--socket", sock, "--wsgi-file", APPS / "statuses.py", "--log-format", "json", http=False,
                uwsgi_addr=str(sock), workers=1)
    t = token()
    variables = uwsgi_vars(path="/status/503", query=f"t={t}")
    # Raw bytes nginx may pass through: UTF-8, an invalid byte, quotes, a backslash, a control byte.
    variables["REQUEST_URI"] = b'/\xc3\xa9/\xff"q\\\x01?t=' + t.encode()
    variables["HTTP_USER_AGENT"] = "tab\there"
    status, _ = uwsgi_exchange(str(sock), variables)
    assert status == 503
    rec = json.loads(line_with(srv, t, "{"))
    assert rec["uri"] == '/\u00e9/\ufffd"q\\\x01?t=' + t
    assert rec["uagent"] == "tab\there" and rec["host"] == "localhost" and rec["status"] == 503


def http_get_status(srv, path):
    return http_request(srv.port, "GET", path).status


def uwsgi_get_status(srv, path):
    p, _, q = path.partition("?")
    return uwsgi_exchange(srv.uwsgi_addr, uwsgi_vars(path=p, query=q))[0]


@pytest.fixture(params=["http", "uwsgi"])
def serve_logged(request, liege, short_tmp):
    """Starts the app with extra options on one worker; returns (srv, get(path) -> status)."""
    def start(app, *options, env=None):
        if request.param == "http":
            srv = liege("--wsgi-file", APPS / app, "--processes", "1", *options, workers=1, env=env)
            return srv, lambda path: http_get_status(srv, path)
        sock = str(short_tmp / "app.sock")
        srv = liege("--socket", sock, "--wsgi-file", APPS / app, "--processes", "1", *options, http=False,
                    uwsgi_addr=sock, workers=1, env=env)
        srv.uwsgi_addr = sock
        return srv, lambda path: uwsgi_get_status(srv, path)
    return start


def generated_lines(srv) -> list[str]:
    return [line for line in srv.logs().splitlines() if "=> generated" in line]


def test_disable_logging_with_log_5xx_logs_only_server_errors(serve_logged):
    srv, get = serve_logged("statuses.py", "--disable-logging", "--log-5xx")
    t = token()
    assert get(f"/?t={t}") == 200
    assert get(f"/status/404?t={t}") == 404
    assert get(f"/status/502?t={t}") == 502
    srv.wait_log(rf"GET /status/502\?t={t} => generated")
    lines = [line for line in generated_lines(srv) if t in line]
    assert len(lines) == 1 and "/status/502" in lines[0], lines


def test_disable_logging_with_log_4xx_and_5xx(serve_logged):
    srv, get = serve_logged("statuses.py", "--disable-logging", "--log-4xx", "--log-5xx")
    t = token()
    for path in (f"/?t={t}", f"/status/404?t={t}", f"/status/302?t={t}", f"/status/500?t={t}"):
        get(path)
    srv.wait_log(rf"GET /status/500\?t={t} => generated")
    logged = sorted(re.search(r"GET (\S+)", line).group(1) for line in generated_lines(srv) if t in line)
    assert logged == [f"/status/404?t={t}", f"/status/500?t={t}"]


def test_log_5xx_without_disable_logging_logs_everything_once(serve_logged):
    # uWSGI: the conditions only add to what is logged; with logging on, every request has its one line.
    srv, get = serve_logged("statuses.py", "--log-5xx")
    t = token()
    assert get(f"/?t={t}") == 200
    assert get(f"/status/500?t={t}") == 500
    srv.wait_log(rf"GET /status/500\?t={t} => generated")
    lines = [line for line in generated_lines(srv) if t in line]
    assert len(lines) == 2, lines


def test_disable_logging_with_log_slow_logs_only_slow_requests(serve_logged, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    srv, get = serve_logged("slow.py", "--disable-logging", "--log-slow", "200",
                            env={"SLOW_MARKERS": str(markers)})
    t = token()
    assert get(f"/fast?t={t}") == 200
    assert get(f"/sleep?s=0.3&token={t}") == 200
    line = srv.wait_log(rf"GET /sleep\?s=0.3&token={t} => generated \d+ bytes in (\d+) msecs")
    assert int(line.group(1)) >= 300
    assert [line for line in generated_lines(srv) if t in line and "/fast" in line] == []


def test_disable_logging_alone_logs_nothing(serve_logged):
    srv, get = serve_logged("statuses.py", "--disable-logging", "--logformat", "RL3 %(uri) %(uagent)")
    t = token()
    assert get(f"/status/500?t={t}") == 500
    # A worker flushes its request-log buffer before it exits: after the stop, the log is complete.
    srv.stop()
    assert f"t={t}" not in srv.logs()
