"""uWSGI's Python plugin options with real processes: py-autoreload (edit a module, the new code is served
after exactly one reload), paste / paste-name / paste-logger / ini-paste(-logged) with PasteDeploy and a real
app factory, reload-on-exception and its filters (the raising worker answers 500 and is replaced; another
exception leaves it alone), py-tracebacker and --connect-and-read (the stack of a sleeping request)."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from liegetest import APPS, HTTPConn, build_request, http_get, run_liege, wait_for

RELOAD_LINE = re.compile(r"graceful reload: (re-executing the master|starting new workers)")


def reloads(inst) -> int:
    return len(RELOAD_LINE.findall(inst.logs()))


# --------------------------------------------------------------------------------------------------------------
# py-autoreload


def write_app(d: Path, text: str) -> None:
    (d / "greeting.py").write_text(f"TEXT = {text!r}\n")


APP = """\
import greeting


def application(environ, start_response):
    body = ("%s %s" % (MARK, greeting.TEXT)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def make_autoreload_app(d: Path, mark: str = "app-v1") -> Path:
    write_app(d, "v1")
    app = d / "app.py"
    app.write_text(f"MARK = {mark!r}\n" + APP)
    return app


def test_py_autoreload_serves_edited_code_after_exactly_one_reload(liege, tmp_path):
    app = make_autoreload_app(tmp_path)
    inst = liege("--wsgi-file", app, "--processes", "2", "--py-autoreload", "1", workers=2)
    assert http_get(inst.port).text == "app-v1 v1"
    inst.wait_log(r"Python auto-reloader enabled: \d+ module files checked every 1 s", timeout=15)
    old_workers = set(inst.worker_pids())
    write_app(tmp_path, "v2")
    wait_for(lambda: http_get(inst.port).text == "app-v1 v2", 30, "the edited module to be served")
    logs = inst.logs()
    assert f"[uwsgi-python-reloader] module/file {tmp_path / 'greeting.py'} has been modified" in logs, logs
    # Both workers watch the file; however many noticed the edit, it is one reload. Give a late noticer
    # (and a buggy second reload) three more checks to show up.
    time.sleep(3.5)
    assert reloads(inst) == 1, inst.logs()
    wait_for(lambda: not old_workers & set(inst.worker_pids()), 20, "the previous workers to be gone")
    assert http_get(inst.port).text == "app-v1 v2"


def test_py_autoreload_lazy_apps_skips_ignored_modules_and_watches_the_wsgi_file(liege, tmp_path):
    app = make_autoreload_app(tmp_path)
    inst = liege("--wsgi-file", app, "--lazy-apps", "--py-auto-reload", "1", "--py-auto-reload-ignore", "greeting")
    inst.wait_log(r"Python auto-reloader enabled", timeout=15)
    write_app(tmp_path, "v2")
    time.sleep(3.5)  # three checks: none may notice an ignored module
    assert reloads(inst) == 0, inst.logs()
    assert http_get(inst.port).text == "app-v1 v1"
    # The wsgi-file is a module too (uwsgi_file_...); lazy-apps workers import the new code themselves.
    make_autoreload_app(tmp_path, mark="app-v2")
    wait_for(lambda: http_get(inst.port).text == "app-v2 v1", 30, "the edited wsgi-file to be served")
    assert "starting new workers" in inst.logs()
    time.sleep(2.5)
    assert reloads(inst) == 1, inst.logs()


# --------------------------------------------------------------------------------------------------------------
# paste, paste-name, paste-logger, ini-paste, ini-paste-logged

PASTE_INI = """\
[app:main]
use = call:paste_app:make_app
greeting = hello-main

[app:other]
use = call:paste_app:make_app
greeting = hello-other

[loggers]
keys = root, pasteapp

[handlers]
keys = console, file

[formatters]
keys = marked

[logger_root]
level = WARNING
handlers = console

[logger_pasteapp]
level = INFO
handlers = console, file
qualname = pasteapp
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = marked

[handler_file]
class = FileHandler
args = ('%(here)s/paste-app.log', 'a')
formatter = marked

[formatter_marked]
format = PASTELOG %(name)s %(levelname)s %(message)s
"""


@pytest.fixture
def paste_ini(tmp_path) -> Path:
    path = tmp_path / "paste.ini"
    path.write_text(PASTE_INI)
    return path


def paste_args(venv_dir):
    return ["--virtualenv", venv_dir, "--pythonpath", APPS]


def test_paste_loads_the_app_with_loadapp_and_paste_name_picks_the_section(liege, paste_ini, venv_dir):
    inst = liege("--paste", f"config:{paste_ini}", *paste_args(venv_dir))
    text = http_get(inst.port, "/a").text
    assert text.startswith("hello-main ") and f"here={paste_ini.parent}" in text, text
    assert f"Loading paste environment: config:{paste_ini}" in inst.logs()
    # Without paste-logger the app's INFO lines go nowhere (Python's last resort shows warnings only).
    assert "PASTELOG" not in inst.output()
    assert not (paste_ini.parent / "paste-app.log").exists()
    other = liege("--paste", f"config:{paste_ini}", "--paste-name", "other", *paste_args(venv_dir))
    assert http_get(other.port).text.startswith("hello-other ")
    # A mounted .ini is a paste app too (uWSGI's mount loader).
    mounted = liege("--module", "echo", "--mount", f"/api=config:{paste_ini}", "--manage-script-name",
                    *paste_args(venv_dir))
    assert http_get(mounted.port, "/api/x").text.startswith("hello-main ")
    assert http_get(mounted.port, "/other").json()["PATH_INFO"] == "/other"


def test_paste_logger_sets_up_logging_from_the_paste_file(liege, paste_ini, venv_dir):
    inst = liege("--paste", f"config:{paste_ini}", "--paste-logger", *paste_args(venv_dir))
    http_get(inst.port, "/logged-request")
    line = "PASTELOG pasteapp INFO served /logged-request"
    wait_for(lambda: line in inst.output(), 10, "the ini-configured logger's line in the vassal log")
    # The logging sections see PasteDeploy's %(here)s, the paste file's directory.
    assert line in (paste_ini.parent / "paste-app.log").read_text()


def test_ini_paste_logged_reads_the_uwsgi_section_and_loads_the_same_file(liege, paste_ini, venv_dir, tmp_path):
    paste_ini.write_text(PASTE_INI + f"\n[uwsgi]\nprocesses = 2\npythonpath = {APPS}\nvirtualenv = {venv_dir}\n")
    inst = liege("--ini-paste-logged", paste_ini, workers=2)
    assert http_get(inst.port, "/from-ini-paste").text.startswith("hello-main ")
    wait_for(lambda: "PASTELOG pasteapp INFO served /from-ini-paste" in inst.output(), 10, "the paste logger")
    # ini-paste alone: same app, no logging setup. A relative name is taken from the current directory.
    plain = liege("--ini-paste", paste_ini.name, cwd=tmp_path)
    assert http_get(plain.port, "/quiet").text.startswith("hello-main ")
    assert "PASTELOG" not in plain.output()


def test_paste_logger_with_an_egg_uri_is_refused(tmp_path):
    result = run_liege(["--paste", "egg:shavar", "--paste-logger", "--check-config"], cwd=tmp_path)
    assert result.returncode == 1
    assert b"config:PATH" in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------------------------
# reload-on-exception, -type, -value, -repr


def worker_pid(inst) -> int:
    return int(http_get(inst.port, "/pid").text)


@pytest.mark.parametrize("option,matching,other", [
    (["--reload-on-exception"], "kind=value&msg=anything", None),
    (["--reload-on-exception-type", "exceptions_app.Fatal"], "kind=fatal&msg=x", "kind=value&msg=x"),
    (["--reload-on-exception-type", "MemoryError"], "kind=memory", "kind=fatal&msg=MemoryError"),
    (["--reload-on-exception-value", "out of cheese"], "kind=value&msg=out%20of%20cheese", "kind=value&msg=cheese"),
    (["--reload-on-exception-repr", "builtins.ValueError: bad"], "kind=value&msg=bad", "kind=fatal&msg=bad"),
], ids=["any", "type", "builtin-type", "value", "repr"])
def test_reload_on_exception_recycles_the_raising_worker_after_its_500(serve, option, matching, other):
    inst = serve("exceptions_app:application", *option)
    first = worker_pid(inst)
    if other is not None:
        response = http_get(inst.port, f"/raise?{other}")
        assert response.status == 500
        # Nothing to wait for but time: the worker would have begun to leave at once.
        time.sleep(1)
        assert worker_pid(inst) == first, inst.logs()
        assert "reload-on-exception" not in inst.logs()
    response = http_get(inst.port, f"/raise?{matching}")
    assert (response.status, response.body, response.complete) == (500, b"Internal Server Error\n", True)
    inst.wait_log(r"reload-on-exception: the app raised .*; this worker finishes its requests in flight", 10)
    second = wait_for(lambda: (pid := worker_pid(inst)) != first and pid, 20, "a new worker")
    assert second != first
    inst.wait_log(rf"worker 1 \(pid {first}\) exited with code 0 \(reload-on-exception\); respawning", 10)


def test_reload_on_exception_lets_the_other_requests_in_flight_finish(serve):
    inst = serve("exceptions_app:application", "--reload-on-exception", "--threads", "4")
    first = worker_pid(inst)
    # A keep-alive connection with a request served before the failing one: the worker closes it once
    # the draining starts, after its response.
    with HTTPConn.tcp(inst.port) as conn:
        assert conn.request("GET", "/pid").status == 200
        response = http_get(inst.port, "/raise?kind=value&msg=x")
        assert response.status == 500
        assert conn.is_closed_by_peer(10), "the idle keep-alive connection is closed by the draining worker"
    wait_for(lambda: worker_pid(inst) != first, 20, "a new worker")


# --------------------------------------------------------------------------------------------------------------
# py-tracebacker, --connect-and-read


def test_py_tracebacker_shows_the_sleeping_frame_and_connect_and_read_prints_it(serve, short_tmp, markers):
    prefix = short_tmp / "tb."
    inst = serve("slow.py", "--py-tracebacker", prefix, env={"SLOW_MARKERS": os.fspath(markers)})
    socket_path = Path(f"{prefix}1")
    inst.wait_log(rf"python tracebacker for worker 1 available on {re.escape(os.fspath(socket_path))}", 15)
    with HTTPConn.tcp(inst.port) as conn:
        conn.send(build_request("GET", "/sleep?s=4&token=tb", [("Connection", "close")]))
        wait_for(lambda: (markers / "started-tb").exists(), 10, "the request to be sleeping")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(os.fspath(socket_path))
            report = b""
            while chunk := client.recv(65536):
                report += chunk
        text = report.decode()
        assert text.startswith("*** uWSGI Python tracebacker output ***\n\n"), text
        slow = os.fspath(APPS / "slow.py")
        frame = re.search(rf"thread_id = MainThread filename = {re.escape(slow)} lineno = \d+ function = "
                          r"application line = time\.sleep\(float\(qs\.get\(\"s\", \"1\"\)\)\)\n", text)
        assert frame, text
        # The same through uWSGI's reader, liege --connect-and-read.
        result = run_liege(["--connect-and-read", socket_path], cwd=short_tmp)
        assert result.returncode == 0, result.stderr
        assert b"function = application line = time.sleep(" in result.stderr, result.stderr
        assert conn.read_response().body == b"slept tb"
    # A graceful stop removes the worker's socket.
    inst.signal(15)
    assert inst.wait_exit(30) == 0
    assert not socket_path.exists()


def test_connect_and_read_reports_a_socket_it_cannot_reach(short_tmp):
    result = run_liege(["--connect-and-read", short_tmp / "nothing-here"], cwd=short_tmp)
    assert result.returncode == 1
    assert b"cannot connect to" in result.stderr, result.stderr
