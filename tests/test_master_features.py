"""Master-side option families of issue 12 with real processes: side processes (attach-daemon and friends),
hooks (hook-*, exec-*).

The side process is tests/apps/celery_like.py: a loop that writes files and exits on SIGTERM as Celery's warm
shutdown does."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from liegetest import APPS, pid_alive, wait_for

CELERY = APPS / "celery_like.py"


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def events(d: Path) -> list[str]:
    try:
        return (d / "events").read_text().splitlines()
    except OSError:
        return []


@pytest.fixture
def side_dir(tmp_path):
    """Where the side process writes; every pid it ever wrote is killed at the end, whatever happened."""
    d = tmp_path / "side"
    d.mkdir()
    yield d
    for line in events(d):
        pid = int(line.split()[1])
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def celery_command(d: Path, *extra: str) -> str:
    return " ".join([sys.executable, os.fspath(CELERY), os.fspath(d), *extra])


def wait_new_pid(d: Path, old: int | None, timeout: float = 20.0) -> int:
    wait_for(lambda: read_pid(d / "pid") not in (None, old) and pid_alive(read_pid(d / "pid") or 0), timeout,
             "the side process to (re)start")
    pid = read_pid(d / "pid")
    assert pid is not None
    return pid


def test_attach_daemon_runs_respawns_after_sigkill_and_stops_with_the_vassal(serve, side_dir):
    inst = serve("echo.py", "--attach-daemon", celery_command(side_dir))
    first = wait_new_pid(side_dir, None)
    # Its output is in the vassal's log.
    wait_for(lambda: f"celery_like ready {first}" in inst.output(), 10, "the daemon's output in the log")
    # It is in a session of its own (a stop signal reaches its whole group), a child of the master.
    assert os.getsid(first) != os.getsid(inst.pid)
    # SIGKILL: the master starts it again.
    os.kill(first, signal.SIGKILL)
    second = wait_new_pid(side_dir, first)
    assert "respawn" in inst.logs()
    # The vassal serves meanwhile.
    wait_for(lambda: not pid_alive(first), 5, "the killed daemon to be reaped")
    # A graceful stop of the vassal stops the daemon with SIGTERM (it finishes its loop), then the master exits.
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert f"stopped {second}" in events(side_dir)
    assert not pid_alive(second)


def test_attach_daemon_crash_loop_backs_off(serve, tmp_path):
    counter = tmp_path / "starts"
    inst = serve("echo.py", "--attach-daemon", f"echo x >> {counter}; exit 3")
    wait_for(lambda: counter.exists() and len(counter.read_text().split()) >= 3, 20, "three starts")
    assert "respawning too fast" in inst.logs()
    # Backoff: 1 s, 2 s, 4 s...; within a few seconds only a handful of starts, not hundreds.
    time.sleep(1.0)
    assert len(counter.read_text().split()) < 8


def test_control_daemon_exit_stops_the_vassal(serve, tmp_path):
    inst = serve("echo.py", "--attach-control-daemon", "sleep 1; exit 0")
    assert inst.wait_exit(30) == 0
    assert "control daemon" in inst.logs()


def test_attach_daemon2_key_values_and_touch_restart(serve, side_dir, tmp_path):
    touch = tmp_path / "restart-celery"
    touch.write_text("")
    inst = serve("echo.py", "--attach-daemon2",
                 f"cmd={celery_command(side_dir)},stopsignal=15,touch={touch}")
    first = wait_new_pid(side_dir, None)
    time.sleep(1.1)  # a modification time distinct from the one seen at start
    os.utime(touch)
    second = wait_new_pid(side_dir, first)
    assert f"stopped {first}" in events(side_dir)
    assert "was touched" in inst.logs()
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert not pid_alive(second)


def test_smart_attach_daemon2_is_watched_through_its_pidfile_and_outlives_the_vassal(serve, side_dir, tmp_path):
    pidfile = tmp_path / "celery.pid"
    inst = serve("echo.py", "--smart-attach-daemon2", f"{pidfile},2 {celery_command(side_dir)}")
    first = wait_new_pid(side_dir, None)
    wait_for(lambda: read_pid(pidfile) == first, 10, "liege to write the pidfile")
    # Not a child of the master (liege daemonized it) and in its own session.
    assert os.getsid(first) != os.getsid(inst.pid)
    os.kill(first, signal.SIGKILL)
    second = wait_new_pid(side_dir, first)
    wait_for(lambda: read_pid(pidfile) == second, 10, "the new pid in the pidfile")
    # Pidfile-governed daemons outlive the vassal (uWSGI's rule).
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert pid_alive(second)


def test_smart_attach_daemon_adopts_a_running_daemon(serve, side_dir, tmp_path):
    pidfile = tmp_path / "self.pid"
    inst = serve("echo.py", "--smart-attach-daemon",
                 f"{pidfile} {celery_command(side_dir, '--daemon-pidfile', os.fspath(pidfile))}")
    first = wait_new_pid(side_dir, None)
    wait_for(lambda: read_pid(pidfile) == first, 10, "the daemon's own pidfile")
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    # A second vassal finds it running and does not start another.
    inst2 = serve("echo.py", "--smart-attach-daemon",
                  f"{pidfile} {celery_command(side_dir, '--daemon-pidfile', os.fspath(pidfile))}")
    wait_for(lambda: "found running" in inst2.logs(), 10, "the daemon to be adopted")
    assert [line for line in events(side_dir) if line.startswith("started")] == [f"started {first}"]


def test_reload_restarts_dumb_daemons_after_the_old_one_stopped(serve, side_dir):
    inst = serve("echo.py", "--attach-daemon", celery_command(side_dir))
    first = wait_new_pid(side_dir, None)
    inst.signal(signal.SIGHUP)
    second = wait_new_pid(side_dir, first)
    started = events(side_dir)
    # The old one finished before the new one began: never two consumers at once.
    assert started.index(f"stopped {first}") < started.index(f"started {second}")
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert not pid_alive(second)


def test_daemons_in_the_emperor_api(emperor, side_dir):
    (emperor.dir / "d.ini").write_text(
        f"[uwsgi]\nwsgi-file = app.py\nprocesses = 1\nattach-daemon = {celery_command(side_dir)}\n")
    first = wait_new_pid(side_dir, None)

    def daemons():
        v = {v["name"]: v for v in emperor.get("/api/vassals")["vassals"]}.get("d") or {}
        return v.get("daemons") or []

    wait_for(lambda: daemons() and daemons()[0]["pid"] == first and daemons()[0]["running"], 20, "the daemon in the API")
    d = daemons()[0]
    assert d["kind"] == "attach-daemon" and d["starts"] == 1 and d["command"].endswith(os.fspath(side_dir))
    os.kill(first, signal.SIGKILL)
    second = wait_new_pid(side_dir, first)
    wait_for(lambda: daemons()[0]["pid"] == second and daemons()[0]["starts"] == 2, 20, "the respawn in the API")
    assert "SIGKILL" in (daemons()[0]["last_exit"] or "")
    # Its output is in the vassal's log, as the API serves it.
    wait_for(lambda: any(f"celery_like ready {second}" in l["text"]
                         for l in emperor.get("/api/vassals/d/logs?tail=200")["lines"]), 10, "the daemon's log lines")
    # Removing the vassal stops it.
    (emperor.dir / "d.ini").unlink()
    wait_for(lambda: f"stopped {second}" in events(side_dir), 30, "the daemon to stop with its vassal")


# --- hooks ---------------------------------------------------------------------------------------------------

def test_hooks_run_in_their_phases(serve, tmp_path):
    log = tmp_path / "phases"
    d = tmp_path / "made"
    inst = serve(
        "echo.py", "--processes", "2",
        "--hook-asap", f"mkdir:{d}",
        "--exec-asap", f"echo asap >> {log}",
        "--hook-pre-app", f"append:{log} pre-app\n",
        "--exec-post-app", f"echo post-app >> {log}",
        "--hook-as-user", f"writen:{d}/as-user hello",
        "--hook-master-start", f"appendn:{log} master-start",
        "--hook-post-fork", "exec:echo post-fork $$ >> " + os.fspath(log),
        "--hook-accepting1-once", f"appendn:{log} accepting1-once",
        "--exec-as-user-atexit", f"echo atexit >> {log}",
        "--hook-master-start", "print:hello from a hook",
        workers=2)
    assert (d / "as-user").read_text() == "hello\n"
    wait_for(lambda: log.read_text().count("post-fork") == 2, 10, "post-fork in both workers")
    # Worker 1 runs its accepting hook after post-fork, when it starts accepting: wait for that too.
    wait_for(lambda: "accepting1-once" in log.read_text(), 10, "the accepting1-once hook")
    lines = log.read_text().split("\n")
    assert lines[:4] == ["asap", "pre-app", "post-app", "master-start"], lines
    assert lines.count("accepting1-once") == 1
    assert "hello from a hook" in inst.logs()
    # A respawned worker 1 does not run the -once hook again.
    for pid in inst.worker_pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: log.read_text().count("post-fork") == 4, 20, "post-fork in the respawned workers")
    assert log.read_text().count("accepting1-once") == 1
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert log.read_text().rstrip().endswith("atexit")


def test_a_failing_hook_stops_the_vassal_and_says_which(liege, tmp_path):
    from liegetest import APPS as apps
    inst = liege("--wsgi-file", apps / "echo.py", "--exec-asap", "exit 7", ready=False)
    assert inst.wait_exit(20) != 0
    assert "hook-asap 'exit 7' (command line) failed: command exited with code 7" in inst.logs()


def test_unix_signal_hook_changes_what_a_signal_means(serve, tmp_path):
    # uWSGI's idiom for graceful SIGTERM is liege's default; binding SIGTERM to kill_them_all makes it quick.
    inst = serve("echo.py", "--hook-master-start", "unix_signal:1 gracefully_kill_them_all")
    inst.signal(signal.SIGHUP)
    assert inst.wait_exit(30) == 0
    assert "graceful stop" in inst.logs()
    assert "re-executing" not in inst.logs()


@pytest.mark.parametrize("line, message", [
    ("--hook-master-start=call:uwsgi_foo", "calls a C symbol"),
    ("--hook-asap=mount:proc none /proc", "does not jail"),
    ("--hook-asap=frobnicate:x", "unknown hook action 'frobnicate'"),
    ("--attach-daemon2=pidfile=/tmp/x", "needs a 'cmd' key"),
])
def test_hook_and_daemon_errors_name_the_problem(liege, line, message):
    inst = liege("--wsgi-file", APPS / "echo.py", line, ready=False)
    assert inst.wait_exit(20) != 0
    assert message in inst.logs()


# --- lifecycle options -----------------------------------------------------------------------------------------

def test_exit_on_reload_stops_instead_of_reloading(serve):
    inst = serve("echo.py", "--exit-on-reload")
    inst.signal(signal.SIGHUP)
    assert inst.wait_exit(30) == 0
    assert "exit-on-reload: stopping instead of reloading" in inst.logs()
    assert "re-executing" not in inst.logs()


def test_harakiri_graceful_timeout_signals_before_killing(liege):
    import re
    from liegetest import http_get
    inst = liege("--wsgi-file", APPS / "limits.py", "--processes", "1", "--harakiri", "1",
                 "--harakiri-graceful-timeout", "2", "--harakiri-graceful-signal", "SIGTERM", workers=1,
                 ready_path="/pid")
    http_get(inst.port, "/sleep", timeout=30)
    graceful = inst.wait_log("HARAKIRI: graceful termination attempt on worker 1 with signal 15", timeout=15)
    assert graceful
    killed = inst.wait_log(re.compile(r"killed by signal 9 \(SIGKILL\) \(harakiri\)"), timeout=15)
    # The kill came after the graceful attempt, not with it.
    assert inst.logs().index("graceful termination attempt") < killed.start()


def test_reload_on_as_recycles_a_worker_over_the_limit(serve):
    # Any CPython worker maps far more than 1 MB of address space.
    inst = serve("echo.py", "--reload-on-as", "1")
    inst.wait_log("over reload-on-as; recycling it", timeout=15)
    inst.wait_log("(reload-on-as)", timeout=15)


def test_max_fd_sets_the_open_files_limit(serve):
    inst = serve("echo.py", "--max-fd", "777", workers=1)
    limits = Path(f"/proc/{inst.worker_pids()[0]}/limits").read_text()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    assert line.split()[3:5] == ["777", "777"], line
