"""uWSGI options of issue 12's config, logging and socket families, each shown by what it does to a real
vassal (not only that the file is read):

- custom keys: an ini key that is no option but is used as `%(key)` is a user variable;
- the logging family: `logger` / `req-logger` (file, stdio, syslog, socket), `log-route`, `log-encoder`,
  `log-drain`, `log-filter`, `log-maxsize` + `log-backupname` rotation, `touch-logrotate`, `log-truncate`,
  `log-format-strftime`, `log-zero` / `log-big`;
- refusals that say what to do (a logger plugin liege has not got).

Each vassal gets its own files under tmp_path; lines are found by unique tokens.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from liegetest import http_get, run_liege, wait_for

# An app whose responses and output the tests choose: /print/TEXT prints TEXT (to stderr), /empty answers
# 204 without a body, /big/N answers N bytes.
APP = '''
import sys

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/print/"):
        print(path[len("/print/"):], file=sys.stderr, flush=True)
    if path == "/empty":
        start_response("204 No Content", [])
        return [b""]
    if path.startswith("/big/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * int(path[len("/big/"):])]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + path.encode()]
'''


def token() -> str:
    return f"t{time.monotonic_ns()}"


@pytest.fixture
def app(tmp_path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def vassal(liege, tmp_path: Path, app: Path, body: str, **kw):
    """Starts liege on an ini file with `body` after the app and socket lines."""
    ini = tmp_path / "vassal.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nprocesses = 1\n{body}\n")
    return liege("--ini", ini, **kw)


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_text(path: Path, text: str, timeout: float = 10.0) -> str:
    wait_for(lambda: text in read(path), timeout, f"{text!r} in {path}")
    return read(path)


# --- custom keys -----------------------------------------------------------------------------------------

def test_custom_key_used_as_placeholder_is_a_user_variable(liege, tmp_path, app):
    base = tmp_path / "srv"
    base.mkdir()
    (base / "app.py").write_text(APP)
    ini = tmp_path / "vassal.ini"
    ini.write_text(f"[uwsgi]\nbase = {base}\nchdir = %(base)\nwsgi-file = %(base)/app.py\nprocesses = 1\n")
    srv = liege("--ini", ini)
    assert http_get(srv.port, "/x").body == b"ok /x"
    # A key that is neither an option nor used keeps the strictness: an error with the line.
    ini.write_text(f"[uwsgi]\nbase = {base}\nwsgi-file = %(base)/app.py\nproceses = 2\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert result.returncode == 1
    assert b"vassal.ini:4: unknown option 'proceses' (did you mean 'processes'?)" in result.stderr
    # Defined but never used: not a variable, so an unknown option (uWSGI would ignore it silently) ...
    ini.write_text(f"[uwsgi]\nbase = {base}\nwsgi-file = {app}\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert b"vassal.ini:2: unknown option 'base'" in result.stderr
    # ... unless the file says strict = false, as uWSGI without strict: then a warning.
    ini.write_text(f"[uwsgi]\nstrict = false\nbase = {base}\nwsgi-file = {app}\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert result.returncode == 0 and b"unknown option 'base'" in result.stderr


# --- loggers and routes ----------------------------------------------------------------------------------

def test_loggers_routes_and_req_logger_split_the_streams(liege, tmp_path, app):
    # docker-mailman's layout: cron lines to their own file, the rest to an error log, requests to a third.
    errors, cron, requests = tmp_path / "error.log", tmp_path / "cron.log", tmp_path / "requests.log"
    srv = vassal(liege, tmp_path, app, f"logger = file:{errors}\nlogger = cron file:{cron}\n"
                 f"log-route = cron uwsgi-cron\nreq-logger = file:{requests}\n")
    t = token()
    http_get(srv.port, f"/print/uwsgi-cron-{t}")
    http_get(srv.port, f"/print/plain-{t}")
    wait_text(cron, f"uwsgi-cron-{t}")
    wait_text(errors, f"plain-{t}")
    text = wait_text(requests, f"/print/plain-{t}")
    assert f"GET /print/uwsgi-cron-{t}" in text
    assert f"plain-{t}" not in read(cron) and f"uwsgi-cron-{t}" not in read(errors)
    # Request lines went to the req-logger only; liege's own lines went to the unnamed logger.
    assert "GET /print" not in read(errors) and "liege master" in read(errors)
    assert f"plain-{t}" not in srv.logs()


def test_encoders_and_lookahead_route(liege, tmp_path, app):
    # label-studio's layout: JSON lines from the app as they are, every other line wrapped in JSON.
    srv = vassal(liege, tmp_path, app,
                 "logger = default stdio\nlogger = applogger stdio\n"
                 "log-route = default ^((?!\\{).)*$\nlog-route = applogger \\{\n"
                 "log-encoder = format:applogger ${msg}\n"
                 'log-encoder = json:default {"source": "uwsgi", "unix": ${unix}, "message": "${msg}"}\n'
                 "log-encoder = nl\n")
    t = token()
    http_get(srv.port, f"/print/plain-{t}")
    http_get(srv.port, "/print/{\"app\":\"" + t + "\"}")
    line = srv.wait_log(re.compile(rf'^\{{"source".*plain-{t}.*$', re.M)).group(0)
    record = json.loads(line)
    assert record["source"] == "uwsgi" and record["message"] == f"plain-{t}"
    assert abs(record["unix"] - time.time()) < 60
    srv.wait_log(re.compile(rf'^\{{"app":"{t}"\}}$', re.M))


def test_drain_and_filter(liege, tmp_path, app):
    srv = vassal(liege, tmp_path, app, "log-drain = generated 0 bytes\nlog-filter = keep-\nlog-filter = GET /\n")
    t = token()
    http_get(srv.port, "/empty")
    http_get(srv.port, f"/print/drop-{t}")
    http_get(srv.port, f"/print/keep-{t}")
    srv.wait_log(re.compile(rf"GET /print/keep-{t}"))
    logs = srv.logs()
    assert f"\nkeep-{t}" in logs
    assert f"\ndrop-{t}" not in logs
    assert "GET /empty" not in logs  # "generated 0 bytes": drained


def test_syslog_shape_and_socket_logger(liege, tmp_path, app):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    try:
        srv = vassal(liege, tmp_path, app, f"logger = net socket:127.0.0.1:{port}\nlog-route = net ^sock-\n"
                     "log-encoder = prefix:net [vassal] \n")
        t = token()
        http_get(srv.port, f"/print/sock-{t}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = receiver.recv(65536)
            if t.encode() in data:
                break
        assert data == f"[vassal]sock-{t}\n".encode()  # the ini reader trims the trailing space
        # The routed line is not in the vassal's own log (the request log line, which names the URL, is: the
        # route matches lines that start with "sock-", as uWSGI's regexp does).
        assert not [line for line in srv.logs().splitlines() if line.startswith(f"sock-{t}")], srv.logs()
    finally:
        receiver.close()


def test_unknown_logger_plugin_is_refused(tmp_path, app):
    ini = tmp_path / "vassal.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nlogger = redislog:127.0.0.1:6379\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert result.returncode == 1
    assert b"vassal.ini:3:" in result.stderr
    assert b"liege has no 'redislog' logger (it has file, fd, stdio, syslog, socket)" in result.stderr
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nlog-route = nobody x\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert b"no logger is named 'nobody'" in result.stderr


# --- the logto file ----------------------------------------------------------------------------------------

def test_log_maxsize_rotates_to_backupname(liege, tmp_path, app):
    log, backup = tmp_path / "app.log", tmp_path / "app.log.old"
    srv = vassal(liege, tmp_path, app, f"logto = {log}\nlog-maxsize = 2000\nlog-backupname = {backup}\n")
    for i in range(60):
        http_get(srv.port, f"/print/{'y' * 80}-{i}")
        if backup.exists():
            break
    wait_for(backup.exists, 10, "the rotated file")
    assert "triggering rotation to" in read(backup)
    t = token()
    http_get(srv.port, f"/print/after-{t}")
    wait_text(log, f"after-{t}")
    assert f"after-{t}" not in read(backup)


def test_touch_logrotate_and_log_truncate(liege, tmp_path, app):
    log, touch = tmp_path / "app.log", tmp_path / "rotate-now"
    log.write_text("from before\n")
    srv = vassal(liege, tmp_path, app, f"logto = {log}\nlog-truncate = true\ntouch-logrotate = {touch}\n")
    assert "from before" not in read(log)
    touch.write_text("")
    rotated = lambda: [p for p in tmp_path.iterdir() if re.fullmatch(r"app\.log\.\d+", p.name)]
    wait_for(rotated, 10, "app.log.UNIXTIME")
    t = token()
    http_get(srv.port, f"/print/new-{t}")
    wait_text(log, f"new-{t}")
    assert "triggering rotation" in read(rotated()[0])


# --- request-log conditions ----------------------------------------------------------------------------------

def test_log_zero_big_and_strftime(liege, tmp_path, app):
    srv = vassal(liege, tmp_path, app,
                 "disable-logging = true\nlog-zero = true\nlog-big = 1000\n"
                 "logformat = RL %%Y %(uri) %(status)\nlog-format-strftime = true\n")
    http_get(srv.port, "/small")
    http_get(srv.port, "/empty")
    http_get(srv.port, "/big/2000")
    year = time.strftime("%Y")
    srv.wait_log(re.compile(rf"^RL {year} /big/2000 200$", re.M))
    logs = srv.logs()
    assert f"RL {year} /empty 204" in logs
    assert "/small" not in logs


# --- request and process options -------------------------------------------------------------------------

ENVIRON_APP = '''
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"file_wrapper=%d" % ("wsgi.file_wrapper" in environ)]
'''


def test_wsgi_disable_file_wrapper(liege, tmp_path):
    app = tmp_path / "environ_app.py"
    app.write_text(ENVIRON_APP)
    plain = vassal(liege, tmp_path, app, "wsgi-env-behaviour = holy\n")
    assert http_get(plain.port, "/").body == b"file_wrapper=1"
    (tmp_path / "vassal.ini").unlink()
    disabled = vassal(liege, tmp_path, app, "wsgi-disable-file-wrapper = true\n")
    assert http_get(disabled.port, "/").body == b"file_wrapper=0"


def test_plugin_and_compatibility_options(tmp_path, app):
    ini = tmp_path / "vassal.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nneed-plugins = python3\nplugins-dir = /usr/lib/uwsgi/plugins\n"
                   "honour-stdin = true\npy-call-uwsgi-fork-hooks = true\nwsgi-env-behaviour = cheat\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # need-plugins is plugins: another language (or a plugin liege has not got) is a clear error.
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nneed-plugins = php\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert result.returncode == 1 and b"vassal.ini:3:" in result.stderr and b"php" in result.stderr
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nwsgi-env-behaviour = lazy\n")
    result = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert b"expected holy or cheat" in result.stderr
    help_text = run_liege(["--help"], cwd=tmp_path).stdout
    assert b"honour-stdin" in help_text and b"remaps it to /dev/null" in help_text


def test_log_process_survives_reloads_without_chaining(liege, tmp_path, app):
    import signal
    srv = vassal(liege, tmp_path, app, "log-master = true\nlog-encoder = prefix [R]\n")
    for _ in range(2):
        mark = srv.log_mark()
        srv.signal(signal.SIGHUP)
        srv.wait_log(re.compile(r"previous worker \(pid \d+\) exited"), since=mark, timeout=30)
    t = token()
    http_get(srv.port, f"/print/after-{t}")
    srv.wait_log(re.compile(rf"^\[R\]after-{t}$", re.M))  # one prefix: one log process on the way
    # The master, its worker and one log process: the previous log processes exited with their workers.
    wait_for(lambda: len(srv.group_members()) == 3, 10, "master + worker + one log process")


ECHO_APP = '''
def application(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got " + body]
'''


def test_http_raw_body_closes_each_connection_and_passes_chunked_bodies(liege, tmp_path):
    # OpenStack's uwsgi files (keystone, glance): `http-raw-body` + `http-chunked-input` behind the router.
    app = tmp_path / "echo.py"
    app.write_text(ECHO_APP)
    ini = tmp_path / "vassal.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {app}\nprocesses = 1\nhttp-keepalive = 30\nhttp-raw-body = true\n"
                   "http-chunked-input = true\n")
    srv = liege("--ini", ini)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):  # the server closes: recv returns b"" instead of blocking
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert body.endswith(b"got hello world")
