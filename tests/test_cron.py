"""The cron family with real processes: `cron`, `unique-cron`, `cron2`, `cron-harakiri`.

The master runs each entry through /bin/sh when the local wall clock matches, at most once per 60 s (uWSGI's
rule), so seeing an entry run twice takes a minute: `test_every_minute_unique_and_a_given_minute` waits for
that once (about 61 s) and checks everything that needs the second run there; the other tests see the first
run, which an entry of `-1` fields makes at once. Cron commands run in sessions of their own and outlive the
vassal, as in uWSGI: every test writes their pids to files and kills their groups at the end."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from liegetest import APPS, http_get, pid_alive, run_liege, wait_for


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


@pytest.fixture
def pids(tmp_path):
    """A file cron commands append their shell's pid (their process group) to; every group is killed at the end.

    Ask for it before `serve`/`liege`, so it is torn down after the vassal stopped: a vassal still running
    would start a unique entry again as soon as its killed run is reaped."""
    path = tmp_path / "pids"
    yield path
    for line in lines(path):
        try:
            os.killpg(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass


def test_first_run_output_log_lines_and_harakiri(pids, serve, tmp_path):
    killed = tmp_path / "killed.pid"
    spared = tmp_path / "spared.pid"
    inst = serve("echo.py",
                 "--cron", "-1 -1 -1 -1 -1 echo cron-says-hello",
                 "--cron-harakiri", "2",
                 # Killed by cron-harakiri: SIGKILL to its process group, after 2 s.
                 "--cron", f"-1 -1 -1 -1 -1 echo $$ >> {pids}; echo $$ > {killed}; exec sleep 60",
                 # harakiri=0: never killed, whatever cron-harakiri says.
                 "--cron2", f"harakiri=0 echo $$ >> {pids}; echo $$ > {spared}; exec sleep 60")
    # The command's output goes where the vassal's output goes (its stdout here), with uWSGI's lines in the log.
    wait_for(lambda: "cron-says-hello\n" in inst.stdout(), 10, "the command's output")
    logs = inst.logs()
    assert '[uwsgi-cron] command "echo cron-says-hello" registered as cron task' in logs
    assert '[uwsgi-cron] running "echo cron-says-hello" (pid ' in logs
    inst.wait_log(r'command "echo cron-says-hello" running with pid \d+ exited after \d+ second\(s\)', 10)
    wait_for(lambda: lines(killed) and lines(spared), 10, "both sleepers to start")
    victim, survivor = int(lines(killed)[0]), int(lines(spared)[0])
    # The command runs in a session of its own, a child of the master.
    assert os.getsid(victim) == victim and os.getsid(victim) != os.getsid(inst.pid)
    started = time.monotonic()
    inst.wait_log(rf'\*\*\* HARAKIRI ON CRON ".*exec sleep 60" \(pid: {victim}\) \*\*\*', 15)
    inst.wait_log(rf"running with pid {victim} exited after \d+ second\(s\) \(killed by signal 9", 10)
    assert not pid_alive(victim)
    assert time.monotonic() - started < 10
    # The one with harakiri=0 is still running well past the 2 s.
    time.sleep(1.0)
    assert pid_alive(survivor)
    # The vassal served meanwhile, and stops without waiting for its cron commands (uWSGI leaves them be).
    assert http_get(inst.port, "/__fixed__").status == 200
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert pid_alive(survivor)


def test_every_minute_unique_and_a_given_minute(pids, serve, tmp_path):
    every = tmp_path / "every"
    unique = tmp_path / "unique"
    plain = tmp_path / "plain"
    given = tmp_path / "given"
    # A minute far enough ahead that the vassal is up before it begins (boundary 10 to 70 s away).
    now = time.localtime()
    ahead = 1 if now.tm_sec <= 50 else 2
    minute = (now.tm_min + ahead) % 60
    boundary = time.time() - now.tm_sec + 60 * ahead
    long_job = "sleep 75"
    inst = serve("echo.py",
                 "--cron", f"-1 -1 -1 -1 -1 date +%s >> {every}",
                 # Still running when the next minute's run is due: unique-cron skips it, plain cron does not.
                 "--unique-cron", f"-1 -1 -1 -1 -1 echo $$ >> {pids}; date +%s >> {unique}; {long_job}",
                 "--cron", f"-1 -1 -1 -1 -1 echo $$ >> {pids}; date +%s >> {plain}; {long_job}",
                 "--cron2", f"minute={minute},hour=-1 date +%M:%s >> {given}")
    assert not given.exists(), "the given minute has not begun yet"
    wait_for(lambda: len(lines(every)) >= 2, 80, "the every-minute entry's second run", interval=0.5)
    first, second = (int(x) for x in lines(every)[:2])
    assert second - first >= 60, "at most one run per 60 s"
    assert second - first <= 62, "and the next as soon as 60 s have passed"
    # The plain entry ran again although its first run is still going; the unique one did not.
    wait_for(lambda: len(lines(plain)) >= 2, 5, "the plain entry's second run")
    assert len(lines(unique)) == 1, lines(unique)
    assert len(lines(pids)) == 3 and all(pid_alive(int(pid)) for pid in lines(pids)), "the long jobs still run"
    # The given minute begins (or began) during the wait: that entry runs once, in it, not before.
    wait_for(lambda: lines(given), max(5.0, boundary - time.time() + 5), "the given minute's run")
    (run,) = lines(given)
    at_minute, at = run.split(":")
    assert int(at_minute) == minute
    assert boundary - 1 <= int(at) <= boundary + 62


@pytest.mark.parametrize("line, message", [
    ("--cron=*/5 * * * * ls", "five whole numbers"),
    ("--cron=0 0 -1 -1 -1", "no command"),
    ("--cron2=minute=5", "needs a command"),
    ("--cron2=minute=5,color=red ls", "unknown cron2 key 'color'"),
    ("--legion-cron=mylegion 0 0 -1 -1 -1 ls", "legion"),
    ("--cron2=legion=mylegion ls", "legion"),
])
def test_bad_cron_lines_are_config_errors(tmp_path, line, message):
    result = run_liege(["--wsgi-file", APPS / "echo.py", line, "--check-config"], cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr.decode(), result.stderr.decode()


def test_unique_cron_from_the_corpus_reads_and_runs(pids, serve, tmp_path):
    """004-searx's line: `unique-cron = 15 0 -1 -1 -1 { touch /run/uwsgi-logrotate  }`, read from an ini file
    (here with a file of the test and every minute, so it runs at once)."""
    target = tmp_path / "logrotate"
    ini = tmp_path / "app.ini"
    ini.write_text(f"[uwsgi]\nunique-cron = -1 -1 -1 -1 -1 {{ echo $$ >> {pids}; touch {target}; }}\n")
    serve("echo.py", "--ini", ini)
    wait_for(target.exists, 10, "the unique cron to touch its file")


def test_a_reload_keeps_the_last_run_and_the_running_command(pids, serve, tmp_path):
    """SIGHUP re-executes the master (preloaded app): the new image knows the unique entry's command is still
    running and that it ran this minute, so it neither overlaps it nor runs it again when it ends (uWSGI's new
    master forgets both and would start it again at once), and it still reaps and logs it."""
    runs = tmp_path / "runs"
    inst = serve("echo.py", "--unique-cron", f"-1 -1 -1 -1 -1 echo $$ >> {pids}; date +%s >> {runs}; sleep 4")
    wait_for(lambda: lines(runs), 10, "the first run")
    inst.signal(signal.SIGHUP)
    wait_for(lambda: inst.logs().count("registered as cron task") == 2, 20, "the new master image")
    inst.wait_log(r"running with pid \d+ exited after \d+ second\(s\)", 15)
    time.sleep(2.0)  # a few ticks of the new image after the run ended
    assert len(lines(runs)) == 1, lines(runs)
    assert http_get(inst.port, "/__fixed__").status == 200
