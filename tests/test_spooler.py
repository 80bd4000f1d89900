"""The spooler family with real processes: `spooler`, `spooler-processes`, `spooler-frequency`,
`spooler-ordered`, `spooler-harakiri`, `spooler-max-tasks`, `touch-spoolers-reload`, the `uwsgi.spool` API and
uWSGI's uwsgidecorators.py.

tests/apps/spooler_app.py spools a task per GET /spool?... and its `uwsgi.spooler` callable appends a JSON line per
run to $SPOOL_OUT. Every test uses `spooler-frequency = 1`, so a scan comes at least once a second; a spooled task
also wakes the spooler at once (SIGUSR1, as uWSGI)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from liegetest import APPS, free_port, http_get, pid_alive, run_liege, wait_for

UWSGI_MIRROR = Path("/work/.mirror/unbit+uwsgi/repo")


def runs(out: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def spool(inst, **args) -> str:
    response = http_get(inst.port, "/spool?" + urlencode(args))
    assert response.status == 200, response.body
    return response.body.decode()


def info(inst) -> dict:
    return json.loads(http_get(inst.port, "/info").body)


def task_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("uwsgi_spoolfile_on_*") if p.is_file())


@pytest.fixture
def spooled(serve, tmp_path):
    """spooled(*extra) -> (instance, spool dir, out file): the spooler app with one spooler on tmp/spool."""
    def start(*extra, spool_dir: Path | None = None, env: dict | None = None):
        directory = spool_dir or tmp_path / "spool"
        out = tmp_path / "out.jsonl"
        inst = serve("spooler_app.py", "--spooler", directory, "--spooler-frequency", "1",
                     "--env", f"SPOOL_OUT={out}", *extra, env=env)
        wait_for(lambda: all(info(inst)["spooler_pids"]), 10, "the spoolers to start")
        return inst, directory, out
    return start


def test_task_runs_once_with_its_args_and_body_then_its_file_is_gone(spooled, tmp_path):
    stats_port = free_port()
    inst, directory, out = spooled("--stats", f"127.0.0.1:{stats_port}")
    assert directory.is_dir(), "created by the master"
    details = info(inst)
    assert details["opt_spooler"] and details["codes"] == [-2, -1, 0] and details["i_am_the_spooler"] is None
    assert details["spoolers"] == [str(directory.resolve())]
    spooler_pid = details["spooler_pid"]
    assert details["spooler_pids"] == [spooler_pid] and pid_alive(spooler_pid)
    # uwsgi.post_fork_hook runs in spoolers too, as in uWSGI.
    wait_for(lambda: Path(f"{out}.postfork.{spooler_pid}").exists(), 10, "the post-fork hook in the spooler")
    path = spool(inst, kind="ok", id="one", color="blue", body="payload-")
    # uWSGI's name, in the spooler's directory.
    assert Path(path).parent == directory.resolve() and Path(path).name.startswith("uwsgi_spoolfile_on_")
    wait_for(lambda: runs(out), 10, "the task to run")
    wait_for(lambda: not task_files(directory), 10, "the task file to be removed")
    time.sleep(1.5)  # a scan or more later: still once
    [run] = runs(out)
    assert run["args"] == {"kind": "ok", "id": "one", "color": "blue"}
    assert run["body"] == "payload-" * 1000
    assert run["keys_are_bytes"], "the callable gets bytes keys, as under uWSGI with Python 3"
    assert run["name"] == Path(path).name and run["pid"] == spooler_pid
    assert run["dir"] == str(directory.resolve()) and run["cwd"] == str(directory.resolve())
    # The spooler is the master's child, and its lines are in the vassal's log.
    assert os.getppid() != spooler_pid and spooler_pid in inst.worker_pids()
    logs = inst.logs()
    assert f"spawned the uWSGI spooler on dir {directory.resolve()} with pid {spooler_pid}" in logs
    assert f"written " in logs and f"bytes to file {path}" in logs
    inst.wait_log(rf"liege spooler\[{spooler_pid}\] INFO: \[spooler {directory.resolve()} pid: {spooler_pid}\] "
                  rf"managing request {Path(path).name} \.\.\.")
    inst.wait_log(rf"done with task {Path(path).name} after \d+ seconds")
    # The stats document lists it as uWSGI does.
    with socket.create_connection(("127.0.0.1", stats_port), timeout=5) as s:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    [entry] = json.loads(data)["spoolers"]
    assert entry == {"dir": str(directory.resolve()), "pid": spooler_pid, "tasks": 1, "respawns": 0, "running": 0}
    # kwargs spelling and send_to_spooler.
    http_get(inst.port, "/spool-kwargs")
    wait_for(lambda: len(runs(out)) == 2, 10, "the kwargs task")
    assert runs(out)[1]["body"] == "kwargs-body" and runs(out)[1]["args"] == {"kind": "ok", "id": "kw"}


def test_retry_keeps_the_task_and_ignore_or_an_exception_leave_it(spooled):
    inst, directory, out = spooled()
    spool(inst, kind="retry", id="r")
    wait_for(lambda: [r["runs"] for r in runs(out) if r["args"]["id"] == "r"] == [1, 2], 15, "two runs")
    wait_for(lambda: not task_files(directory), 10, "the file to go after SPOOL_OK")
    spool(inst, kind="raise", id="e")
    wait_for(lambda: len([r for r in runs(out) if r["args"]["id"] == "e"]) >= 2, 15, "the raising task again")
    assert "task failed on purpose" in inst.output()
    assert len(task_files(directory)) == 1, "an exception is SPOOL_RETRY: the file stays"
    for path in task_files(directory):
        path.unlink()
    spool(inst, kind="ignore", id="i")
    inst.wait_log(r"unable to find the spooler function, have you loaded it into the spooler process \?", 10)
    assert len(task_files(directory)) == 1, "SPOOL_IGNORE leaves the file"


def test_at_in_the_future_delays_the_task(spooled):
    inst, directory, out = spooled()
    at = time.time() + 3
    spool(inst, kind="ok", id="later", at=f"{at:.3f}")
    time.sleep(1.5)
    assert runs(out) == [] and len(task_files(directory)) == 1
    wait_for(lambda: runs(out), 10, "the delayed task")
    assert runs(out)[0]["time"] >= int(at)


def test_priorities_run_in_order_with_spooler_ordered(spooled):
    inst, directory, out = spooled("--spooler-ordered")
    at = int(time.time()) + 3
    for id_, priority in [("plain", None), ("p10", "10"), ("p2", "2"), ("p1", "1")]:
        args = {"kind": "ok", "id": id_, "at": str(at)}
        if priority:
            args["priority"] = priority
        spool(inst, **args)
    assert (directory / "10").is_dir() and (directory / "2").is_dir()
    wait_for(lambda: len(runs(out)) == 4, 15, "the four tasks")
    assert [r["args"]["id"] for r in runs(out)] == ["p1", "p2", "p10", "plain"]
    assert [r["dir"] for r in runs(out)] == [str(directory.resolve())] * 4
    wait_for(lambda: not task_files(directory), 10, "every file removed, those in priority directories too")


def test_two_spooler_dirs_and_spooler_processes(spooled, tmp_path):
    other = tmp_path / "other"
    inst, directory, out = spooled("--spooler", other, "--spooler-processes", "2")
    details = info(inst)
    assert len(details["spooler_pids"]) == 4 and len(set(details["spooler_pids"])) == 4
    assert details["spoolers"] == [str(directory.resolve())] * 2 + [str(other.resolve())] * 2
    spool(inst, kind="ok", id="first")
    spool(inst, kind="ok", id="second", spooler=str(other.resolve()))
    wait_for(lambda: len(runs(out)) == 2, 10, "both tasks")
    by_id = {r["args"]["id"]: r for r in runs(out)}
    assert by_id["first"]["dir"] == str(directory.resolve())
    assert by_id["second"]["dir"] == str(other.resolve())
    assert by_id["second"]["pid"] in details["spooler_pids"][2:]
    response = http_get(inst.port, "/spool?" + urlencode({"spooler": "/nowhere"}))
    assert response.status == 500 and b"unable to spool job" in response.body
    assert 'unable to find spooler "/nowhere"' in inst.logs()


def test_stuck_task_killed_by_spooler_harakiri_and_spooler_respawned(spooled):
    inst, directory, out = spooled("--spooler-harakiri", "2")
    first = info(inst)["spooler_pid"]
    spool(inst, kind="sleep", id="stuck")
    wait_for(lambda: runs(out), 10, "the stuck task to start")
    inst.wait_log(rf"\*\*\* HARAKIRI ON THE SPOOLER \(pid: {first}\) \*\*\*", 10)
    wait_for(lambda: not pid_alive(first), 10, "the stuck spooler to die")
    wait_for(lambda: info(inst)["spooler_pid"] not in (0, first), 15, "a new spooler")
    assert len(task_files(directory)) == 1, "the killed task stays spooled"


def test_spooler_respawns_after_sigkill_and_vassal_stop_leaves_none(spooled):
    inst, directory, out = spooled()
    first = info(inst)["spooler_pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: info(inst)["spooler_pid"] not in (0, first), 15, "a new spooler")
    second = info(inst)["spooler_pid"]
    assert "OOOPS the spooler is no more...trying respawn..." in inst.logs()
    spool(inst, kind="ok", id="after")
    wait_for(lambda: runs(out), 10, "the new spooler to run a task")
    assert runs(out)[0]["pid"] == second
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert not pid_alive(second)


def test_max_tasks_recycles_the_spooler(spooled):
    inst, directory, out = spooled("--spooler-max-tasks", "2", "--spooler-quiet")
    for n in range(3):
        spool(inst, kind="ok", id=f"t{n}")
    wait_for(lambda: len(runs(out)) == 3, 15, "three tasks")
    pids = [r["pid"] for r in runs(out)]
    assert pids[0] == pids[1] != pids[2]
    assert "maximum number of tasks reached (2) recycling ..." in inst.logs()
    assert "managing request" not in inst.logs(), "spooler-quiet"


def test_touch_spoolers_reload_restarts_them(spooled, tmp_path):
    touch = tmp_path / "touch-me"
    touch.write_text("")
    inst, directory, out = spooled("--touch-spoolers-reload", touch)
    first = info(inst)["spooler_pid"]
    time.sleep(1.1)
    os.utime(touch)
    inst.wait_log("spoolers reload", 10)
    wait_for(lambda: info(inst)["spooler_pid"] not in (0, first), 15, "a new spooler")
    assert not pid_alive(first)


def test_uwsgi_decorators_spool_spoolforever_spoolraw(serve, tmp_path):
    """uWSGI's own uwsgidecorators.py (from the uWSGI source, when it is here) against liege's uwsgi module."""
    try:
        source = subprocess.run(["git", f"--git-dir={UWSGI_MIRROR}", "show", "HEAD:uwsgidecorators.py"],
                                capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no uWSGI source here for uwsgidecorators.py")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "uwsgidecorators.py").write_bytes(source)
    out = tmp_path / "out.jsonl"
    (lib / "decorated.py").write_text(f'''
import json, os
import uwsgi
if not hasattr(uwsgi, "install_mule_msg_hook"):  # (mules are not this test's subject)
    uwsgi.install_mule_msg_hook = lambda hook: None
from uwsgidecorators import spool, spoolforever, spoolraw

def record(**entry):
    with open({str(out)!r}, "a") as f:
        f.write(json.dumps(entry) + "\\n")

@spool
def plain(arguments):
    record(f="plain", arguments=arguments)

@spool(pass_arguments=True)
def with_args(a, b, c=None):
    record(f="with_args", a=a, b=b, c=c)

@spoolraw
def raw(arguments):
    record(f="raw", arguments=arguments)
    return uwsgi.SPOOL_OK

@spoolforever
def forever(arguments):
    record(f="forever")

def application(environ, start_response):
    plain.spool(x="1")
    with_args(1, [2, 3], c={{"d": 4}})
    raw.spool({{"y": "2"}})
    if environ["PATH_INFO"] == "/forever":
        forever.spool()
    start_response("200 OK", [])
    return [b"spooled"]
''')
    inst = serve("decorated:application", "--pythonpath", lib, "--spooler", tmp_path / "spool",
                 "--spooler-frequency", "1", ready=False)
    inst.wait_ready(path="/none")
    wait_for(lambda: len(runs(out)) >= 3, 15, "the decorated tasks")
    by_f = {r["f"]: r for r in runs(out)}
    assert by_f["plain"]["arguments"]["x"] == "1" and by_f["plain"]["arguments"]["ud_spool_func"] == "plain"
    assert (by_f["with_args"]["a"], by_f["with_args"]["b"], by_f["with_args"]["c"]) == (1, [2, 3], {"d": 4})
    assert by_f["raw"]["arguments"]["y"] == "2"
    http_get(inst.port, "/forever")
    wait_for(lambda: len([r for r in runs(out) if r["f"] == "forever"]) >= 2, 15, "spoolforever to run again")


def test_spooler_signal_as_task_is_refused(tmp_path):
    result = run_liege(["--wsgi-file", APPS / "echo.py", "--spooler", tmp_path / "s", "--spooler-signal-as-task"],
                       cwd=tmp_path)
    assert result.returncode != 0
    assert b"no uWSGI signal framework" in result.stderr


def test_reload_starts_new_spoolers_with_the_new_code(spooled):
    inst, directory, out = spooled()
    first = info(inst)["spooler_pid"]
    mark = inst.log_mark()
    inst.signal(signal.SIGHUP)
    # (the previous image's workers see the previous spoolers' table until they are gone)
    inst.wait_log(r"previous worker \(pid \d+\) exited", 30, since=mark)
    wait_for(lambda: info(inst)["spooler_pid"] not in (0, first), 30, "a spooler of the new image")
    assert not pid_alive(first)
    spool(inst, kind="ok", id="after-reload")
    wait_for(lambda: runs(out), 10, "a task after the reload")
    assert runs(out)[0]["pid"] == info(inst)["spooler_pid"]


def test_lazy_apps_spooler_imports_the_app_itself(spooled):
    inst, directory, out = spooled("--lazy-apps", "--spooler-chdir", "/")
    spool(inst, kind="ok", id="lazy")
    wait_for(lambda: runs(out), 10, "the task")
    assert runs(out)[0]["cwd"] == "/", "spooler-chdir"
    assert not task_files(directory)


def test_help_lists_the_spooler_options(tmp_path):
    text = run_liege(["--help"], cwd=tmp_path).stdout.decode()
    for name in ["--spooler", "--spooler-processes", "--spooler-frequency", "--spooler-max-tasks",
                 "--spooler-harakiri", "--spooler-ordered", "--spooler-cheap", "--touch-spoolers-reload",
                 "--spooler-import", "--spooler-external", "--spooler-chdir", "--spooler-quiet"]:
        assert name in text, name


def test_cheap_spooler_starts_for_a_task_and_ends_after_and_external_dirs_get_none(serve, tmp_path):
    directory, external, out = tmp_path / "spool", tmp_path / "external", tmp_path / "out.jsonl"
    inst = serve("spooler_app.py", "--spooler", directory, "--spooler-external", external, "--spooler-cheap",
                 "--spooler-frequency", "1", "--env", f"SPOOL_OUT={out}")
    assert info(inst)["spooler_pids"] == [0, 0], "cheap: none until a task is there; external: never"
    assert external.is_dir()
    spool(inst, kind="ok", id="cheap")
    wait_for(lambda: runs(out), 15, "a spooler to start and run the task")
    inst.wait_log(f"cheaping spooler {directory.resolve()} ...", 10)
    inst.wait_log(f"spooler {directory.resolve()} ended", 10)
    wait_for(lambda: info(inst)["spooler_pids"] == [0, 0], 10, "the cheap spooler to be gone")
    # A task for the external directory is written there and left for its own instance.
    path = spool(inst, kind="ok", id="elsewhere", spooler=str(external.resolve()))
    assert Path(path).parent == external.resolve()
    time.sleep(1.5)
    assert Path(path).exists() and len(runs(out)) == 1


def test_a_relative_spooler_dir_is_taken_from_where_liege_started(serve, tmp_path):
    out = tmp_path / "out.jsonl"
    inst = serve("spooler_app.py", "--chdir", "/", "--spooler", "relative-spool", "--spooler-frequency", "1",
                 "--env", f"SPOOL_OUT={out}", cwd=tmp_path)
    assert info(inst)["spoolers"] == [str((tmp_path / "relative-spool").resolve())]
    spool(inst, kind="ok", id="rel")
    wait_for(lambda: runs(out), 10, "the task")
