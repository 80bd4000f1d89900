"""The emperor as PID 1, as in a container: it reaps the orphans the kernel gives it, and SIGTERM stops it.

Each test runs the emperor as PID 1 of a new PID namespace on this host (`unshare --pid --fork --mount-proc`,
what a container runtime does, without the image), with its API and vassals on 127.0.0.1 (the network is
the host's). Processes of the namespace are found from the host by their `/proc/PID/ns/pid` link, and their
pids inside the namespace by the last `NSpid` field, which is what the emperor, its API and the app see.
Killing PID 1 ends every process of the namespace, so each test's cleanup is one SIGKILL.

The last test runs a plain emperor with `emperor-subreaper` (uWSGI's option), which reaps orphans the same
way without being PID 1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from liegetest import READY_TIMEOUT, NsEmperor, http_get, register_for_report, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="a new PID namespace needs root and unshare(1)")

# `/orphan` starts `sleep` through a shell that exits at once: sleep's parent is gone, so the kernel makes it a
# child of PID 1 (the emperor), and when it exits nobody but PID 1 can reap it. It answers sleep's pid.
ORPHAN_APP = """\
import os, subprocess

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/orphan":
        out = subprocess.run(["/bin/sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True).stdout
        body = out.strip()
    else:
        body = str(os.getpid())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"""

DEBUG = {"LIEGE_LOG": "info,liege::emperor::orphans=debug"}


@pytest.fixture
def ns_emperor(request, tmp_path, liege_binary):
    made: list[NsEmperor] = []

    def make(*, extra: list[str] | None = None, env: dict[str, str] | None = None) -> NsEmperor:
        root = tmp_path / f"ns{len(made)}"
        root.mkdir()
        e = NsEmperor(liege_binary, root, extra=extra, env={**DEBUG, **(env or {})}, name=f"ns{len(made)}")
        (e.dir / "orphans.py").write_text(ORPHAN_APP)
        made.append(e)
        register_for_report(request.node, e)
        return e.start()

    yield make
    for e in made:
        e.kill_all()
    for e in made:
        wait_for(lambda e=e: not e.processes(), 10, "the namespace to be empty")


def orphan_ini(processes: int = 1) -> str:
    return f"[uwsgi]\nwsgi-file = orphans.py\nprocesses = {processes}\n"


def test_orphans_reparented_to_pid_1_are_reaped(ns_emperor):
    e = ns_emperor()
    assert re.search(r"PID 1 of its PID namespace: it reaps the orphaned processes", e.logs()), e.describe()
    (e.dir / "app.ini").write_text(orphan_ini())
    _, port = e.wait_serving("app")
    orphans = [int(http_get(port, "/orphan", timeout=10).text) for _ in range(5)]
    for pid in orphans:
        # Gone from the namespace altogether: not a zombie, reaped by PID 1, which says so at debug level.
        wait_for(lambda pid=pid: all(inner != pid for _, inner, _, _ in e.processes()), 10,
                 f"orphan {pid} to be reaped")
        wait_for(lambda pid=pid: re.search(rf"reaped orphan pid {pid}: exited with code 0", e.logs()), 10,
                 f"the log line for orphan {pid}")
    wait_for(lambda: not e.zombies(), 10, "no zombie in the namespace")
    # The vassal itself was never taken from tokio: it still runs, with no exit recorded.
    v = e.vassal("app")
    assert v["state"] == "running" and v["last_exit"] is None and v["respawns"] == 0, v


def test_a_double_forking_attach_daemon_leaves_no_zombie(ns_emperor):
    e = ns_emperor()
    # The daemon's subshell starts `sleep 0.3` and exits: sleep is orphaned (to PID 1) and exits soon after; the
    # daemon itself (`exec sleep 60`) stays, supervised by the master.
    (e.dir / "app.ini").write_text(orphan_ini() + "attach-daemon = sh -c '(sleep 0.3 &); exec sleep 60'\n")
    e.wait_serving("app")
    match = wait_for(lambda: re.search(r"reaped orphan pid (\d+): exited with code 0", e.logs()), 15,
                     "the daemon's orphan reaped")
    orphan = int(match.group(1))
    assert all(inner != orphan for _, inner, _, _ in e.processes())
    wait_for(lambda: not e.zombies(), 10, "no zombie in the namespace")
    assert any(comm == "sleep" for _, _, state, comm in e.processes() if state != "Z"), e.processes()


def test_workers_orphaned_by_sigkill_of_their_master_are_reaped(ns_emperor):
    e = ns_emperor()
    (e.dir / "app.ini").write_text(orphan_ini(processes=2))
    v, port = e.wait_serving("app")
    wait_for(lambda: len(e.vassal("app")["workers"]) == 2, READY_TIMEOUT, "two workers")
    v = e.vassal("app")
    master, workers = v["pid"], [w["pid"] for w in v["workers"]]
    os.kill(e.host_pid(master), signal.SIGKILL)
    # The workers die with their master (PR_SET_PDEATHSIG) after the kernel gave them to PID 1.
    for pid in workers:
        wait_for(lambda pid=pid: all(inner != pid for _, inner, _, _ in e.processes()), 10,
                 f"worker {pid} to be reaped")
        assert re.search(rf"reaped orphan pid {pid}: killed by signal 9", e.logs()), e.describe()
    # The emperor restarted the master it waits for itself (its exit was tokio's to see, not the reaper's).
    after = e.wait_state("app", "running", where=lambda v: v["pid"] not in (None, master))
    assert "killed by signal 9" in after["last_exit"], after
    assert f"reaped orphan pid {master}" not in e.logs()
    wait_for(lambda: not e.zombies(), 10, "no zombie in the namespace")


def test_sigterm_to_pid_1_stops_every_vassal_gracefully_and_empties_the_namespace(ns_emperor):
    e = ns_emperor()
    (e.dir / "a.ini").write_text(orphan_ini(processes=2))
    (e.dir / "b.ini").write_text(orphan_ini())
    for name in ("a", "b"):
        e.wait_serving(name)
    assert len(e.processes()) >= 1 + 3 + 2, e.processes()  # PID 1, two masters, three workers
    os.kill(e.init, signal.SIGTERM)  # what `docker stop` and the kubelet send
    assert e.wait_exit(30) == 0, e.describe()  # unshare exits with PID 1's status
    logs = e.logs()
    assert "stopping 2 vassal(s) gracefully" in logs and "all vassals stopped; bye" in logs, e.describe()
    assert not e.processes()


def test_emperor_subreaper_reaps_orphans_without_being_pid_1(emperor_factory):
    e = emperor_factory(extra=["--emperor-subreaper"], env=DEBUG)
    (e.dir / "orphans.py").write_text(ORPHAN_APP)
    assert "the emperor is a child subreaper: it reaps the orphaned processes" in e.logs(), e.describe()
    (e.dir / "app.ini").write_text(orphan_ini())
    _, port = e.wait_serving("app")
    pid = int(http_get(port, "/orphan", timeout=10).text)
    wait_for(lambda: re.search(rf"reaped orphan pid {pid}: exited with code 0", e.logs()), 10, "the orphan reaped")
    assert not Path(f"/proc/{pid}").exists()


def test_a_plain_emperor_does_not_reap(emperor_factory):
    e = emperor_factory(env=DEBUG)
    (e.dir / "app.ini").write_text("[uwsgi]\nwsgi-file = app.py\nprocesses = 1\n")
    e.wait_serving("app")
    assert "reaps the orphaned processes" not in e.logs(), e.describe()
