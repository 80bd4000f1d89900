"""Several apps in one vassal (`mount`, `manage-script-name`, `no-default-app`), app factories, `module` with
`wsgi-file`, and uWSGI's multi-app modules, over HTTP and behind real nginx (`uwsgi_pass`)."""

from __future__ import annotations

import pytest

from liegetest import APPS, http_get, register_for_report, wait_for


def mounted(liege, venv_dir, *extra, **kw):
    """echo.py on /plain (first: the default app) and a Flask app on /flask."""
    return liege("--virtualenv", venv_dir, "--pythonpath", APPS, "--mount", f"/plain={APPS / 'echo.py'}",
                 "--mount", "/flask=mount_flask:app", "--manage-script-name", *extra, ready_path="/plain/", **kw)


def env(resp):
    assert resp.status == 200, resp
    return resp.json()


@pytest.mark.parametrize("mode", ["preload", "lazy-apps"])
def test_two_apps_split_script_name_and_path_info(liege, venv_dir, mode):
    srv = mounted(liege, venv_dir, "--processes", "2", *(["--lazy-apps"] if mode == "lazy-apps" else []))
    e = env(http_get(srv.port, "/plain/some/thing?x=1"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"], e["QUERY_STRING"]) == ("/plain", "/some/thing", "x=1")
    e = env(http_get(srv.port, "/plain"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/plain", "")
    e = env(http_get(srv.port, "/plain/"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/plain", "/")
    # Not at a "/" boundary: no match, so the default app (the first mounted, as in uWSGI) with the path intact.
    e = env(http_get(srv.port, "/plainly/x"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("", "/plainly/x")
    w = env(http_get(srv.port, "/flask/where"))
    assert w["url"] == "/flask/where"
    assert w["script_root"] == "/flask" and w["path"] == "/where"
    assert w["external"] == "http://127.0.0.1/flask/where"
    assert http_get(srv.port, "/flask/missing").status == 404
    logs = srv.logs()
    assert "WSGI app 0 (mountpoint='/plain') ready" in logs and "(default app)" in logs
    assert "WSGI app 1 (mountpoint='/flask') ready" in logs


def test_no_default_app_answers_500_for_unmatched_requests(liege, venv_dir):
    srv = mounted(liege, venv_dir, "--no-default-app")
    assert env(http_get(srv.port, "/plain/x"))["PATH_INFO"] == "/x"
    r = http_get(srv.port, "/elsewhere")
    assert r.status == 500
    wait_for(lambda: "no app for SCRIPT_NAME=''" in srv.logs(), 5, "the no-app log line")
    assert env(http_get(srv.port, "/flask/where"))["url"] == "/flask/where"


def test_module_is_the_default_app_next_to_mounts(liege, venv_dir):
    srv = liege("--virtualenv", venv_dir, "--pythonpath", APPS, "--module", "echo", "--mount",
                "/flask=mount_flask:app", "--mount", "/f=factory_app:create_app('mounted')", "--manage-script-name")
    e = env(http_get(srv.port, "/flask2/x"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("", "/flask2/x")
    assert env(http_get(srv.port, "/flask/where"))["url"] == "/flask/where"
    assert env(http_get(srv.port, "/f/deep/er")) == {"greeting": "mounted", "extra": None, "script_name": "/f",
                                                      "path_info": "/deep/er"}


def test_without_manage_script_name_mounts_are_chosen_by_script_name_only(liege, venv_dir):
    srv = liege("--pythonpath", APPS, "--module", "echo", "--mount", "/f=factory_app:plain")
    # Over HTTP SCRIPT_NAME is empty, so everything goes to the default app, as with uWSGI.
    e = env(http_get(srv.port, "/f/x"))
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("", "/f/x")


def test_factories(liege):
    srv = liege("--pythonpath", APPS, "--module", "factory_app:create_app()")
    assert env(http_get(srv.port, "/"))["greeting"] == "hello"
    srv = liege("--pythonpath", APPS, "--module", "factory_app:create_app('hey', shout=True, extra=[1, {'a': None}])")
    assert env(http_get(srv.port, "/")) | {"script_name": None} == {
        "greeting": "HEY", "extra": [1, {"a": None}], "script_name": None, "path_info": "/"}
    srv = liege("--pythonpath", APPS, "--module", "factory_app", "--callable", "create_app(greeting='c')")
    assert env(http_get(srv.port, "/"))["greeting"] == "c"


@pytest.mark.parametrize("spec, message", [
    ("factory_app:create_app(__import__('os').getpid())", "must be Python literals"),
    ("factory_app:returns_none()", "returned None"),
    ("factory_app:create_app(nope=1)", "unexpected keyword argument 'nope'"),
])
def test_bad_factories_fail_the_vassal_with_the_reason(liege, spec, message):
    srv = liege("--pythonpath", APPS, "--module", spec, ready=False)
    assert srv.wait_exit() != 0
    assert message in srv.logs()


def test_module_first_then_wsgi_file_as_fallback(liege, tmp_path):
    # Both load: uWSGI keeps the module as app 0 and skips the file (same mountpoint).
    srv = liege("--pythonpath", APPS, "--module", "factory_app:plain", "--wsgi-file", APPS / "echo.py")
    assert http_get(srv.port, "/").body == b"plain from factory_app"
    # The module does not load (kinto's config: `module = kinto` without an `application`): the file serves.
    srv = liege("--pythonpath", APPS, "--module", "factory_app", "--wsgi-file", APPS / "echo.py")
    assert env(http_get(srv.port, "/x"))["PATH_INFO"] == "/x"
    assert "trying wsgi-file" in srv.logs()


def test_a_mount_that_fails_to_import_fails_the_vassal(liege):
    srv = liege("--pythonpath", APPS, "--module", "echo", "--mount", f"/b={APPS / 'broken_import.py'}", ready=False)
    assert srv.wait_exit() != 0
    logs = srv.logs()
    assert "Traceback" in logs and "broken_import: this app cannot be imported" in logs


def test_need_app_false_serves_the_apps_that_loaded(liege):
    srv = liege("--pythonpath", APPS, "--module", "echo", "--mount", f"/b={APPS / 'broken_import.py'}",
                "--need-app=false")
    assert env(http_get(srv.port, "/b/x"))["PATH_INFO"] == "/b/x"
    assert "broken_import: this app cannot be imported" in srv.logs()


def test_uwsgi_applications_dict_mounts_each_entry(liege):
    srv = liege("--pythonpath", APPS, "--module", "multi_app", "--manage-script-name", ready_path="/one")
    assert http_get(srv.port, "/one/a").body == b"first /one|/a"
    assert http_get(srv.port, "/two").body == b"second /two|"
    # The first entry is the default app.
    assert http_get(srv.port, "/three").body == b"first |/three"


def test_ini_file_with_mounts(liege, tmp_path, venv_dir):
    ini = tmp_path / "site.ini"
    ini.write_text(f"[uwsgi]\nvirtualenv = {venv_dir}\npythonpath = {APPS}\nmount = /plain={APPS / 'echo.py'}\n"
                   "mount = /flask=mount_flask:app\nmanage-script-name = true\nno-default-app = true\n")
    srv = liege(ini, ready_path="/plain/")
    assert env(http_get(srv.port, "/flask/where"))["url"] == "/flask/where"
    assert http_get(srv.port, "/").status == 500


@pytest.mark.nginx
def test_mounts_behind_nginx(liege, venv_dir, short_tmp, tmp_path, request):
    from test_nginx import Nginx

    sock = short_tmp / "apps.sock"
    srv = mounted(liege, venv_dir, "--socket", sock, http=False, uwsgi_addr=str(sock))
    ngx = Nginx(tmp_path / "nginx", {"/": str(sock), "/byname/": str(sock)})
    # nginx names the app itself: SCRIPT_NAME selects the mount when no prefix of PATH_INFO does.
    ngx.conf.write_text(ngx.conf.read_text().replace(
        "location /byname/ {\n", "location /byname/ {\n            uwsgi_param SCRIPT_NAME /plain;\n"))
    register_for_report(request.node, ngx)
    try:
        ngx.start()
        w = env(http_get(ngx.port, "/flask/where"))
        assert w["url"] == "/flask/where" and w["path"] == "/where"
        assert w["external"].endswith("/flask/where")
        e = env(http_get(ngx.port, "/plain/a%20b"))
        assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/plain", "/a b")
        e = env(http_get(ngx.port, "/byname/x"))
        assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/plain", "/byname/x")
        assert e["_pid"] in srv.worker_pids()
    finally:
        ngx.stop()


def test_reload_reimports_every_mounted_app(liege, tmp_path):
    import signal

    source = "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'%s']\n"
    mounted_file = tmp_path / "mounted.py"
    mounted_file.write_text(source % "version 1")
    srv = liege("--pythonpath", APPS, "--module", "echo", "--mount", f"/m={mounted_file}", "--manage-script-name")
    assert http_get(srv.port, "/m/").body == b"version 1"
    mounted_file.write_text(source % "version 2")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: http_get(srv.port, "/m/").body == b"version 2", 30, "the reloaded mount")
    assert env(http_get(srv.port, "/x"))["PATH_INFO"] == "/x"
