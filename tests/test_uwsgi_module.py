"""The `uwsgi` Python module as liege provides it: version, worker_id(), numproc, masterpid(), opt,
post_fork_hook, reload(), log(), started_on, total_requests()."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from liegetest import APPS, http_get, wait_for


@pytest.fixture
def api(liege, markers):
    srv = liege("--wsgi-file", APPS / "uwsgi_api.py", "--processes", "3", "--env", f"UWSGI_API_MARKERS={markers}",
                "--env", "SECOND_ENV=2", workers=3, ready_path="/info")
    srv.markers = markers
    return srv


def info(srv):
    r = http_get(srv.port, "/info")
    assert r.status == 200, r
    return r.json()


def fork_markers(markers):
    return {int(p.name.split("-", 1)[1]): json.loads(p.read_text()) for p in markers.glob("fork-*")
            if p.read_text()}


def as_text(v):
    if isinstance(v, list):
        return [as_text(x) for x in v]
    return v if isinstance(v, str) else str(v)


def test_module_attributes_in_a_worker(api):
    i = info(api)
    workers = api.worker_pids()
    assert i["pid"] in workers
    assert 1 <= i["worker_id"] <= 3
    assert i["numproc"] == 3
    assert i["masterpid"] == api.pid
    assert isinstance(i["version"], str) and i["version"], "uwsgi.version must be a non-empty string or bytes"
    assert i["started_on_type"] == "int"
    assert abs(i["started_on"] - time.time()) < 600, "started_on is the master's start time (unix seconds)"
    assert i["total_requests_type"] == "int" and i["total_requests"] >= 1
    assert i["has_hook"]


def test_import_happens_in_the_master_with_preload(api):
    imported = info(api)["imported"]
    assert imported["pid"] == api.pid, "preload: the app is imported once, in the master"
    assert imported["worker_id"] == 0, "worker_id() is 0 outside a worker, as in uWSGI"
    assert imported["masterpid"] == api.pid
    assert imported["numproc"] == 3


def test_import_happens_in_each_worker_with_lazy_apps(liege, markers):
    srv = liege("--wsgi-file", APPS / "uwsgi_api.py", "--processes", "2", "--lazy-apps",
                "--env", f"UWSGI_API_MARKERS={markers}", workers=2, ready_path="/info")
    seen = {}
    for _ in range(40):
        i = info(srv)
        seen[i["pid"]] = i["imported"]
        if len(seen) == 2:
            break
    for pid, imported in seen.items():
        assert imported["pid"] == pid, "lazy-apps: each worker imports the app itself"
        assert imported["worker_id"] >= 1


def test_opt_holds_the_options(api):
    opt = info(api)["opt"]
    assert as_text(opt.get("processes")) == "3", opt
    assert str(APPS / "uwsgi_api.py") in as_text(opt.get("wsgi-file")), opt
    envs = opt.get("env")
    envs = envs if isinstance(envs, list) else [envs]
    assert any("SECOND_ENV=2" in as_text(e) for e in envs), opt
    assert as_text(opt.get("http-socket")).startswith("127.0.0.1:") or any(
        str(x).startswith("127.0.0.1:") for x in (opt.get("http-socket") or [])), opt


def test_post_fork_hook_runs_in_every_worker(api):
    workers = set(api.worker_pids())
    got = wait_for(lambda: (m := fork_markers(api.markers)) and set(m) >= workers and m, 15,
                   "a fork marker from every worker")
    assert set(got) == workers, "the hook ran in a process that is not a worker"
    for pid, m in got.items():
        assert m["ppid"] == api.pid
        assert 1 <= m["worker_id"] <= 3
    assert sorted(m["worker_id"] for m in got.values()) == [1, 2, 3]


def test_post_fork_hook_runs_in_a_respawned_worker(api):
    victim = api.worker_pids()[0]
    wait_for(lambda: victim in fork_markers(api.markers), 15, "the first hook run")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(api.worker_pids()) == 3 and victim not in api.worker_pids(), 20, "a respawn")
    new = (set(api.worker_pids()) - {victim})
    wait_for(lambda: new <= set(fork_markers(api.markers)), 15, "the hook in the new worker")


def test_uwsgi_log_reaches_the_log(api):
    mark = api.log_mark()
    r = http_get(api.port, "/log?msg=hello-from-uwsgi-log-42")
    assert r.status == 200
    api.wait_log("hello-from-uwsgi-log-42", since=mark)


def test_total_requests_grows(api):
    a = info(api)["total_requests"]
    for _ in range(5):
        http_get(api.port, "/")
    b = info(api)["total_requests"]
    assert b > a


def test_uwsgi_reload_replaces_workers(api):
    old = set(api.worker_pids())
    r = http_get(api.port, "/reload")
    assert r.status == 200
    assert r.json()["reload"] in (True, None)
    wait_for(lambda: len(api.worker_pids()) == 3 and not old & set(api.worker_pids()), 60,
             "uwsgi.reload() to replace every worker")
    assert api.alive()
    assert info(api)["masterpid"] == api.pid
