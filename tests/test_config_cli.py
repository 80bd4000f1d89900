"""Command line and ini files (uWSGI's names and dialect), and startup errors: unknown options with a
did-you-mean suggestion naming file:line, missing wsgi-file, import errors (traceback, non-zero exit)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import textwrap

import pytest

from liegetest import APPS, VENV, free_port, http_get, http_request, pid_alive, run_liege, wait_for

ENV_APP = textwrap.dedent("""\
    import json, os, sys
    def application(environ, start_response):
        body = json.dumps({"environ": {k: v for k, v in os.environ.items() if k.startswith("T_")},
                           "cwd": os.getcwd(), "sys_path": sys.path, "pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    """)


@pytest.fixture
def env_app(tmp_path):
    p = tmp_path / "envapp.py"
    p.write_text(ENV_APP)
    return p


def app_info(srv):
    r = http_get(srv.port, "/")
    assert r.status == 200, r
    return r.json()


def stderr_of(res: subprocess.CompletedProcess) -> str:
    return res.stderr.decode("utf-8", "replace")


# --- help --------------------------------------------------------------------------------------------------------

DOCUMENTED = ["http-socket", "socket", "wsgi-file", "module", "callable", "chdir", "pythonpath", "virtualenv", "home",
              "venv", "env", "processes", "workers", "master", "ini", "lazy-apps", "threads", "listen", "buffer-size",
              "disable-logging", "need-app", "chmod-socket", "post-buffering", "limit-post", "pidfile", "uid", "gid"]


def test_help_documents_every_option(tmp_path):
    res = run_liege(["--help"], cwd=tmp_path)
    out = res.stdout.decode() + res.stderr.decode()
    assert res.returncode == 0, out
    missing = [o for o in DOCUMENTED if not re.search(rf"(?<![\w-])--{re.escape(o)}(?![\w-])", out)]
    assert not missing, f"--help does not mention: {missing}"
    assert re.search(r"(?<![\w-])-p\b", out) and re.search(r"(?<![\w-])-H\b", out), "short flags -p and -H"


# --- startup errors ----------------------------------------------------------------------------------------------


def test_unknown_ini_option_names_file_line_and_suggestion(tmp_path):
    ini = tmp_path / "typo.ini"
    ini.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\n; a comment\nprocesess = 2\nwsgi-file = app.py\n")
    res = run_liege(["--ini", ini], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert re.search(r"typo\.ini:4\b", err), f"the error must name typo.ini:4:\n{err}"
    assert "did you mean 'processes'" in err, err


def test_unknown_cli_option_has_suggestion(tmp_path):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "echo.py", "--procesess", "2"],
                    cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "procesess" in err, err
    assert re.search(r"did you mean '(--)?processes'", err), err


def test_missing_wsgi_file(tmp_path):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", "does_not_exist.py"], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "does_not_exist.py" in err, err


def test_import_error_gives_traceback_and_nonzero_exit(tmp_path):
    app = tmp_path / "broken_import.py"
    app.write_text("import os\nimport no_such_module_liege_test\n\ndef application(e, sr):\n    pass\n")
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2"], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in err, err
    assert "ModuleNotFoundError" in err and "no_such_module_liege_test" in err, err
    assert "broken_import.py" in err, err


def test_import_error_with_lazy_apps_is_visible(tmp_path):
    app = tmp_path / "broken_lazy.py"
    app.write_text("raise RuntimeError('lazy-import-failure')\n")
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--lazy-apps"], cwd=tmp_path, timeout=60)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "lazy-import-failure" in err and "Traceback" in err, err


def test_syntax_error_in_app(tmp_path):
    app = tmp_path / "syntax.py"
    app.write_text("def application(e, sr)\n    return []\n")
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", app], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "SyntaxError" in err and "syntax.py" in err, err


def test_missing_module(tmp_path):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--module", "no_such_pkg_liege.app:application"], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "no_such_pkg_liege" in err, err


def test_missing_callable(tmp_path):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "echo.py", "--callable", "not_there"],
                    cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "not_there" in err, err


def test_nonsense_value_names_the_option(tmp_path):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "echo.py", "--processes", "abc"],
                    cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    assert "processes" in err and "abc" in err, err


@pytest.mark.parametrize("args, names", [
    (["--processes", "-2"], ["processes", "-2"]),
    (["--max-requests", "-1"], ["max-requests"]),
    (["--processes", "2", "--cheaper", "3"], ["cheaper"]),
    (["--threads", "0"], ["threads"]),
])
def test_nonsense_lifecycle_values_are_startup_errors(tmp_path, args, names):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "echo.py", *args], cwd=tmp_path)
    err = stderr_of(res)
    assert res.returncode != 0
    for name in names:
        assert name in err, err


@pytest.mark.parametrize("args, reading", [
    (["--harakiri", "abc"], "'abc' for 'harakiri' is not a plain number; read as 0"),
    (["--reload-on-rss", "512MB"], "'512MB' for 'reload-on-rss' is not a plain number; read as 512"),
    (["--cheaper", "true"], "'true' for 'cheaper' is not a plain number; read as 0"),
])
def test_numbers_are_read_by_leading_digits_with_a_warning_as_uwsgi(tmp_path, args, reading):
    res = run_liege(["--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "echo.py", "--processes", "2", *args,
                     "--check-config"], cwd=tmp_path)
    assert res.returncode == 0, stderr_of(res)
    assert f"command line: warning: {reading} (its leading digits), as uWSGI does" in stderr_of(res)


# --- option forms ------------------------------------------------------------------------------------------------


def test_equals_form_and_short_flags(liege, env_app):
    port = free_port()
    srv = liege(f"--http-socket=127.0.0.1:{port}", f"--wsgi-file={env_app}", "-p", "2", http=port, workers=2)
    assert app_info(srv)["pid"] in srv.worker_pids()


def test_workers_alias(liege, env_app):
    srv = liege("--wsgi-file", env_app, "--workers", "3", workers=3)
    assert len(srv.worker_pids()) == 3


def test_env_chdir_pythonpath(liege, tmp_path, env_app):
    (tmp_path / "libA").mkdir()
    (tmp_path / "libB").mkdir()
    (tmp_path / "libA" / "mod_a.py").write_text("A = 'a'\n")
    (tmp_path / "libB" / "mod_b.py").write_text("B = 'b'\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_text("import mod_a, mod_b\n" + ENV_APP)
    srv = liege("--chdir", work, "--wsgi-file", "app.py", "--pythonpath", tmp_path / "libA",
                "--pythonpath", tmp_path / "libB", "--env", "T_ONE=1", "--env", "T_TWO=two=2", cwd=tmp_path)
    info = app_info(srv)
    assert info["cwd"] == str(work)
    assert info["environ"] == {"T_ONE": "1", "T_TWO": "two=2"}
    assert str(tmp_path / "libA") in info["sys_path"] and str(tmp_path / "libB") in info["sys_path"]


def test_module_with_callable(liege, tmp_path):
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "web.py").write_text(
        "def my_app(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [b'my_app']\n"
        "def other(e, sr):\n    sr('200 OK', [('Content-Type', 'text/plain')])\n    return [b'other']\n")
    a = liege("--pythonpath", tmp_path, "--module", "pkgx.web:my_app")
    assert http_get(a.port, "/").body == b"my_app"
    b = liege("--pythonpath", tmp_path, "--module", "pkgx.web", "--callable", "other")
    assert http_get(b.port, "/").body == b"other"


def test_pidfile(liege, tmp_path, env_app):
    pidfile = tmp_path / "liege.pid"
    srv = liege("--wsgi-file", env_app, "--pidfile", pidfile, "--master")
    assert int(pidfile.read_text().strip()) == srv.pid


def test_accepted_options(liege, env_app):
    srv = liege("--wsgi-file", env_app, "--master", "--need-app", "--listen", "128", "--post-buffering", "8192",
                "--buffer-size", "32768", "--threads", "2", "--processes", "2", workers=2)
    assert app_info(srv)["pid"] in srv.worker_pids()


# --- ini dialect -------------------------------------------------------------------------------------------------


def test_ini_dialect_and_magic_variables(liege, tmp_path, env_app):
    conf = tmp_path / "confdir"
    conf.mkdir()
    port = free_port()
    ini = conf / "myapp.ini"
    ini.write_text(textwrap.dedent(f"""\
        [other]
        processes = 3

        [uwsgi]
        ; a comment
        # another comment
        http-socket = 127.0.0.1:{port}
        wsgi-file = {env_app}
        master
        processes = 1
        processes = 2
        env = T_N=%n
        env = T_D=%d
        env = T_P=%p
        env = T_C=%c
        env = T_E=%e
        env = T_X=%x
        env = T_PCT=100%%
        env = T_FROM_ENV=$(LIEGE_T_SOURCE)
        env = T_REF=%(processes)
        """))
    srv = liege("--ini", ini, http=port, workers=2, env={"LIEGE_T_SOURCE": "from-the-environment"})
    e = app_info(srv)["environ"]
    assert e["T_N"] == "myapp"
    assert e["T_D"] in (f"{conf}/", str(conf)), "%d: the ini's directory (uWSGI adds a trailing /)"
    assert e["T_P"] == str(ini)
    assert e["T_C"] == "confdir"
    assert e["T_E"] == "ini"
    assert e["T_X"] in ("myapp.ini:uwsgi", f"{ini}:uwsgi"), "%x: the current section, e.g. config.ini:section"
    assert e["T_PCT"] == "100%"
    assert e["T_FROM_ENV"] == "from-the-environment"
    assert e["T_REF"] == "2"
    assert len(srv.worker_pids()) == 2, "scalars take the last value; other sections are ignored"


def test_ini_section_and_nested_ini(liege, tmp_path, env_app):
    port = free_port()
    (tmp_path / "extra.ini").write_text("[extra]\nprocesses = 2\nenv = T_FROM_EXTRA=yes\n[uwsgi]\nprocesses = 4\n")
    main = tmp_path / "main.ini"
    main.write_text(f"[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {env_app}\n"
                    f"ini = {tmp_path / 'extra.ini'}:extra\n")
    srv = liege("--ini", main, http=port, workers=2)
    assert app_info(srv)["environ"] == {"T_FROM_EXTRA": "yes"}


def test_ini_then_cli_override(liege, tmp_path, env_app):
    ini = tmp_path / "base.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {env_app}\nprocesses = 3\n")
    srv = liege("--ini", ini, "--processes", "1", workers=1)
    assert len(srv.worker_pids()) == 1


# --- the binary ----------------------------------------------------------------------------------------------------


def test_binary_links_the_same_python_as_the_venv(liege_binary):
    out = subprocess.run(["ldd", str(liege_binary)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"libpython3\.11[^\s]* => (\S+)", out)
    assert m, f"liege does not link a shared libpython3.11:\n{out}"
    assert "not found" not in m.group(0), f"libpython not found without LD_LIBRARY_PATH:\n{out}"
    venv_base = subprocess.run([str(VENV / "bin" / "python"), "-c",
                                "import sys, sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert os.path.realpath(os.path.dirname(m.group(1))) == os.path.realpath(venv_base), \
        f"liege links {m.group(1)} but .venv was made from a Python whose LIBDIR is {venv_base}"


# --- options from the wild-ini corpus: behaviour, not only parsing ---------------------------------------------

ARGV_APP = textwrap.dedent("""\
    import json, sys
    def application(environ, start_response):
        body = json.dumps({"argv": sys.argv}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    """)


def test_pyargv_becomes_sys_argv(liege, tmp_path):
    (tmp_path / "argv_app.py").write_text(ARGV_APP)
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nwsgi-file = argv_app.py\npyargv = --config-file /etc/nova/nova.conf  -v\n")
    srv = liege("--ini", ini, cwd=tmp_path)
    assert http_get(srv.port, "/").json()["argv"] == ["liege", "--config-file", "/etc/nova/nova.conf", "-v"]


def test_protocol_http_makes_plain_socket_speak_http(liege, env_app):
    port = free_port()
    srv = liege("--socket", f"127.0.0.1:{port}", "--protocol", "http", "--wsgi-file", env_app, http=port)
    assert app_info(srv)["pid"] in srv.worker_pids()
    assert "http socket bound to 127.0.0.1:" in srv.logs()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_chown_socket_sets_owner_and_group(liege, tmp_path, env_app):
    sock = tmp_path / "app.sock"
    liege("--socket", sock, "--chown-socket", "65534:65534", "--wsgi-file", env_app)
    st = sock.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_chown_socket_unknown_user_is_a_startup_error(tmp_path, env_app):
    res = run_liege(["--socket", tmp_path / "a.sock", "--chown-socket", "no-such-user-here", "--wsgi-file",
                     env_app, "--http-socket", f"127.0.0.1:{free_port()}"], cwd=tmp_path)
    assert res.returncode != 0
    assert "chown-socket no-such-user-here: no user named no-such-user-here" in stderr_of(res)
    assert not (tmp_path / "a.sock").exists()


def test_umask_applies_to_files_liege_creates(liege, tmp_path, env_app):
    pidfile = tmp_path / "app.pid"
    liege("--umask", "077", "--pidfile", pidfile, "--wsgi-file", env_app)
    assert pidfile.stat().st_mode & 0o777 == 0o600


def test_daemonize_detaches_and_logs_to_the_file(tmp_path, env_app):
    log, pidfile, port = tmp_path / "daemon.log", tmp_path / "daemon.pid", free_port()
    res = run_liege(["--daemonize", log, "--pidfile", pidfile, "--http-socket", f"127.0.0.1:{port}",
                     "--wsgi-file", env_app], cwd=tmp_path, timeout=20)
    assert res.returncode == 0, stderr_of(res)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30, what="the daemon's pidfile")
        pid = int(pidfile.read_text())
        assert os.getsid(pid) == pid, "the daemon leads its own session"
        wait_for(lambda: http_get(port, "/").status == 200, timeout=30, what="the daemon to serve")
        wait_for(lambda: "socket bound to" in log.read_text(), timeout=10, what="the log file to fill")
    finally:
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not pid_alive(pid), timeout=30, what="the daemon to stop")


def test_daemonize_to_a_udp_address_detaches_and_sends_the_log_there(tmp_path, env_app):
    # python.org's production ini: `daemonize = 127.0.0.1:8224` (uWSGI's logto() takes HOST:PORT for UDP).
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1)
    udp = receiver.getsockname()[1]
    pidfile, port = tmp_path / "daemon.pid", free_port()
    try:
        res = run_liege(["--daemonize", f"127.0.0.1:{udp}", "--pidfile", pidfile, "--http-socket",
                         f"127.0.0.1:{port}", "--wsgi-file", env_app], cwd=tmp_path, timeout=20)
        assert res.returncode == 0, stderr_of(res)
        assert not (tmp_path / f"127.0.0.1:{udp}").exists(), "the address is not taken for a file name"
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30, what="the daemon's pidfile")
        pid = int(pidfile.read_text())
        assert os.getsid(pid) == pid, "the daemon leads its own session"
        wait_for(lambda: http_get(port, "/udp-probe").status == 200, timeout=30, what="the daemon to serve")
        received = []

        def got_request_line():
            with contextlib.suppress(TimeoutError):
                received.append(receiver.recv(65536).decode(errors="replace"))
            return any("/udp-probe" in line for line in received)
        wait_for(got_request_line, timeout=15, what="the request line over UDP")
        assert any("socket bound to" in line for line in received) or any("spawned" in line for line in received)
    finally:
        receiver.close()
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not pid_alive(pid), timeout=30, what="the daemon to stop")


def test_udp_log_address_needs_a_host_and_the_emperor_refuses_one(tmp_path, env_app):
    res = run_liege(["--logto", ":8224", "--wsgi-file", env_app, "--check-config"], cwd=tmp_path)
    assert res.returncode == 1 and "invalid UDP address" in stderr_of(res)
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    res = run_liege(["emperor", vassals, "--logto", "127.0.0.1:8224", "--check-config"], cwd=tmp_path)
    assert res.returncode == 1 and "the emperor logs to a file, not to a UDP address" in stderr_of(res)


def test_show_config_logs_the_configuration_as_an_ini_section(liege, tmp_path, env_app):
    ini = tmp_path / "app.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {env_app}\nprocesses = 1\nneed-app = true\nshow-config = true\n")
    srv = liege("--ini", ini)
    wait_for(lambda: ";end of configuration" in srv.logs(), timeout=10, what="the configuration block")
    block = srv.logs().split(";uWSGI instance configuration\n", 1)[1].split(";end of configuration", 1)[0]
    lines = block.splitlines()
    assert lines[0] == "[uwsgi]"
    assert f"wsgi-file = {env_app}" in lines and "processes = 1" in lines and "show-config = true" in lines
    assert "need-app = true" in lines


def test_check_config_prints_the_resolved_config(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nif-env = T_WORKERS\nprocesses = %(_)\nendif\nharakiri = 60 # one minute\n"
                   "http-socket = :8000\nmodule = app:application\n")
    res = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path, env={"T_WORKERS": "3"})
    out = res.stdout.decode()
    assert res.returncode == 0, stderr_of(res)
    assert "processes = 3    # " in out and "harakiri = 60 # one minute" in out
    assert f"{ini}:5: warning: 'harakiri = 60 # one minute'" not in stderr_of(res)
    assert f"{ini}:5: warning:" in stderr_of(res)
    assert "# configuration OK" in out
    bad = tmp_path / "bad.ini"
    bad.write_text("[uwsgi]\nsubscribe-to = 127.0.0.1:7000:example.com\n")
    res = run_liege(["--ini", bad, "--check-config"], cwd=tmp_path)
    assert res.returncode == 1
    assert f"{bad}:2: 'subscribe-to' is a uWSGI option that liege does not implement" in stderr_of(res)


def test_an_ini_saying_emperor_runs_the_emperor(tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    ini = tmp_path / "uwsgi.ini"
    ini.write_text(f"[uwsgi]\nmaster = true\nemperor = {vassals}\nvacuum = true\n")
    res = run_liege(["--ini", ini, "--check-config"], cwd=tmp_path)
    assert res.returncode == 0, stderr_of(res)
    assert f"configuration of the emperor of {vassals}" in res.stdout.decode()


def test_log_date_prefixes_liege_log_lines(liege, tmp_path, env_app):
    ini = tmp_path / "app.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {env_app}\nlog-date = [%%Y-%%m-%%d] tag\n")
    srv = liege("--ini", ini)
    line = next(line for line in srv.logs().splitlines() if "socket bound to" in line)
    assert re.match(r"^\[\d{4}-\d\d-\d\d\] tag - liege master\[\d+\] INFO: ", line), line
    plain = liege("--log-date", "--wsgi-file", env_app)
    line = next(line for line in plain.logs().splitlines() if "socket bound to" in line)
    assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - liege master", line), line


def test_log_x_forwarded_for_shows_the_client_address(liege, env_app):
    srv = liege("--wsgi-file", env_app, "--log-x-forwarded-for", "--logformat", "XFF %(addr) %(uri)", workers=1)
    assert http_request(srv.port, "GET", "/proxied", headers=[("X-Forwarded-For", "203.0.113.7")]).status == 200
    assert http_request(srv.port, "GET", "/direct").status == 200
    srv.wait_log(re.compile(r"^XFF 127\.0\.0\.1 /direct$", re.M))
    assert re.search(r"^XFF 203\.0\.113\.7 /proxied$", srv.logs(), re.M), srv.logs()
