"""The emperor's own uid/gid/cap and emperor-tyrant, as packaged uWSGI emperor configs use them (PLD's
`uid = uwsgi` + `gid = uwsgi`, theatlantic's RPM: `emperor-tyrant` with `cap = setgid,setuid` and a stats unix
socket with `chmod-socket = 660`), shown on real processes: who the emperor and each vassal run as.

These need root (they change users); the suite runs as root in CI. The vassal directory lives in a
world-readable temporary directory so the dropped users can read it.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from liegetest import READY_TIMEOUT, wait_for
from liegetest import vassal_ini

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing users needs root")

NOBODY = 65534  # nobody:nogroup on Debian


@pytest.fixture
def open_root():
    root = Path(tempfile.mkdtemp(prefix="liege-priv-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def ids_of(pid: int) -> tuple[int, int]:
    """Real uid and gid of a process."""
    uid = gid = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("Gid:"):
            gid = int(line.split()[1])
    return uid, gid


def cap_eff(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return -1


CAP_SETGID, CAP_SETUID = 6, 7


def vassal_pids(e, name: str) -> list[int]:
    v = e.vassal(name) or {}
    pids = [v.get("pid")] + [w.get("pid") for w in v.get("workers", [])]
    return [pid for pid in pids if pid]


def test_emperor_uid_gid_drop_its_own_privileges_and_its_vassals_run_as_that_user(emperor_factory, open_root):
    ini = open_root / "emperor.ini"
    ini.write_text(f"[uwsgi]\nuid = nobody\ngid = nogroup\nemperor = {open_root / 'vassals'}\n")
    e = emperor_factory(root=open_root, start=False, extra=["--ini", os.fspath(ini)])
    e.start()
    wait_for(lambda: ids_of(e.pid) == (NOBODY, NOBODY), 10, "the emperor to become nobody:nogroup")
    assert stat.S_IMODE(os.stat(e.run_dir).st_mode) and os.stat(e.run_dir).st_uid == NOBODY
    (e.dir / "app.py").chmod(0o644)
    (e.dir / "shop.ini").write_text(vassal_ini())
    e.wait_serving("shop")
    pids = vassal_pids(e, "shop")
    assert pids and all(ids_of(pid) == (NOBODY, NOBODY) for pid in pids), [ids_of(p) for p in pids]


def test_tyrant_runs_each_vassal_as_its_file_owner_and_refuses_root_files(emperor_factory, open_root):
    # theatlantic's RPM: the emperor drops to a user but keeps setuid/setgid to be a tyrant.
    ini = open_root / "emperor.ini"
    stats = open_root / "stats.sock"
    ini.write_text(f"[uwsgi]\nuid = nobody\ngid = nogroup\nemperor = {open_root / 'vassals'}\n"
                   f"stats = {stats}\nchmod-socket = 660\nemperor-tyrant = true\ncap = setgid,setuid\n")
    e = emperor_factory(root=open_root, start=False, extra=["--ini", os.fspath(ini)])
    e.start()
    wait_for(lambda: ids_of(e.pid) == (NOBODY, NOBODY), 10, "the emperor to become nobody:nogroup")
    effective = cap_eff(e.pid)
    assert effective == (1 << CAP_SETGID) | (1 << CAP_SETUID), hex(effective)
    assert stat.S_ISSOCK(os.stat(stats).st_mode) and stat.S_IMODE(os.stat(stats).st_mode) == 0o660
    (e.dir / "app.py").chmod(0o644)

    alice, bob = e.dir / "alice.ini", e.dir / "bob.ini"
    alice.write_text(vassal_ini())
    os.chown(alice, 23001, 23001)
    bob.write_text(vassal_ini())
    os.chown(bob, 23002, 23003)
    root_owned = e.dir / "rooted.ini"
    root_owned.write_text(vassal_ini())
    e.wait_serving("alice")
    e.wait_serving("bob")
    assert {ids_of(pid) for pid in vassal_pids(e, "alice")} == {(23001, 23001)}
    assert {ids_of(pid) for pid in vassal_pids(e, "bob")} == {(23002, 23003)}
    failed = e.wait_state("rooted", "error", timeout=READY_TIMEOUT)
    assert "emperor-tyrant" in str(failed), failed

    # A new owner: the instance is stopped and started again as that owner (a reload would keep the old one).
    os.chown(alice, 23004, 23004)
    wait_for(lambda: {ids_of(pid) for pid in vassal_pids(e, "alice") if os.path.exists(f"/proc/{pid}")}
             == {(23004, 23004)}, READY_TIMEOUT, "alice to run as its new owner")
    e.wait_serving("alice")


def _python_reachable_by_others() -> bool:
    """Whether an unprivileged user can read the Python that liege embeds (a pyenv under /root is not: a
    master dropping root before Python starts could not import its standard library)."""
    path = Path(os.path.realpath(sys.base_prefix))
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


@pytest.mark.parametrize("drop", [
    pytest.param(False, id="root-with-fewer-caps"),
    pytest.param(True, id="nobody", marks=pytest.mark.skipif(
        not _python_reachable_by_others(), reason="the embedded Python is not readable by nobody here")),
])
def test_vassal_cap_is_kept_after_dropping_root_and_across_a_reload(liege, open_root, drop):
    # uWSGI's `cap`: a master keeps net_bind_service and nothing else, in its workers too, and still after a
    # graceful reload (an exec: for a user other than root only ambient capabilities survive it).
    app = open_root / "app.py"
    app.write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    app.chmod(0o644)
    user = ["--uid", "nobody", "--gid", "nogroup"] if drop else []
    srv = liege("--wsgi-file", app, "--processes", "1", *user, "--cap", "net_bind_service", cwd=open_root)
    CAP_NET_BIND_SERVICE = 10
    ids = (NOBODY, NOBODY) if drop else (0, 0)

    def capped(pid: int) -> bool:
        return ids_of(pid) == ids and cap_eff(pid) == 1 << CAP_NET_BIND_SERVICE
    assert capped(srv.pid), (ids_of(srv.pid), hex(cap_eff(srv.pid)))
    workers = srv.worker_pids()
    assert workers and all(capped(pid) for pid in workers)
    srv.signal(signal.SIGHUP)  # graceful reload: the master re-executes itself as nobody
    wait_for(lambda: (lambda now: now and not set(now) & set(workers))(srv.worker_pids()), READY_TIMEOUT,
             "new workers after the reload")
    srv.wait_ready()
    assert capped(srv.pid), hex(cap_eff(srv.pid))
    assert all(capped(pid) for pid in srv.worker_pids())
