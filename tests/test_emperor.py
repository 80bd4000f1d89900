"""The emperor (`liege emperor DIR`): deploy by dropping an .ini, touch to reload, delete to stop.

Every test runs a real emperor on a temporary vassal directory, with its API on a free 127.0.0.1 port and a
vassal port range checked free, and ends every process it started (the emperor's whole process group, then
any `liege vassal` process of its directory) even when it fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from liegetest import (EMPEROR_APP, EMPEROR_RAISING_APP, answers, body_of, free_port, http_get, pid_alive,
                       vassal_ini, wait_for, write_atomically)

APP = EMPEROR_APP
RAISING_APP = EMPEROR_RAISING_APP


# ----------------------------------------------------------------------------------------------------------------
# Deploy, API shape, logs


def test_deploy_by_dropping_a_file_serves_within_2s(emperor):
    dropped = time.monotonic()
    (emperor.dir / "hello.ini").write_text(vassal_ini("1"))

    def serving():
        v = emperor.vassal("hello")
        if not v or not v["sockets"]:
            return None
        port = int(v["sockets"][0]["address"].rsplit(":", 1)[1])
        return port if answers(port) else None
    port = wait_for(serving, 20, "the dropped vassal to answer", interval=0.02)
    elapsed = time.monotonic() - dropped
    assert elapsed < 2.0, f"first answer {elapsed:.2f}s after the drop"
    assert body_of(port).startswith("1 ")
    assert emperor.low <= port <= emperor.high

    v = emperor.wait_state("hello", "running")
    for field in ("name", "config", "state", "pid", "sockets", "workers", "respawns", "last_error", "started_at"):
        assert field in v, field
    assert v["name"] == "hello"
    assert v["config"] == os.fspath(emperor.dir / "hello.ini")
    assert v["sockets"] == [{"proto": "http", "address": f"127.0.0.1:{port}", "auto": True}]
    assert v["respawns"] == 0 and v["last_error"] is None
    assert isinstance(v["started_at"], int) and abs(v["started_at"] - time.time()) < 60
    assert pid_alive(v["pid"])
    assert [w["id"] for w in v["workers"]] == [1]
    assert v["workers"][0]["status"] in ("idle", "busy") and pid_alive(v["workers"][0]["pid"])
    listed = emperor.vassals()
    assert list(listed) == ["hello"] and listed["hello"]["pid"] == v["pid"]
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", emperor.logs())


def test_logs_are_captured_per_vassal_and_api_errors_are_json(emperor):
    (emperor.dir / "a.ini").write_text(vassal_ini("1"))
    (emperor.dir / "b.ini").write_text(vassal_ini("2"))
    _, port_a = emperor.wait_serving("a")
    emperor.wait_serving("b")
    body_of(port_a, "/print")

    def printed():
        lines = emperor.get("/api/vassals/a/logs?tail=50")["lines"]
        return [l for l in lines if "app says" in l["text"]]
    line = wait_for(printed, 10, "the app's print in the log tail")[0]
    assert line["text"] == "app says <img src=x onerror=alert(1)>"
    assert line["stream"] == "stdout" and isinstance(line["seq"], int) and isinstance(line["time"], float)
    a_lines = [l["text"] for l in emperor.get("/api/vassals/a/logs?tail=2000")["lines"]]
    assert any("imported app version 1" in t for t in a_lines)
    assert not any("imported app version 2" in t for t in a_lines), "b's output must not be in a's log"
    assert len(emperor.get("/api/vassals/a/logs?tail=3")["lines"]) == 3
    assert emperor.get("/api/vassals/a/logs?tail=0")["lines"] == []
    log_file = Path(emperor.vassal("a")["log_file"])
    assert log_file.parent == emperor.run_dir / "logs"
    wait_for(lambda: "app says" in log_file.read_text(), 5, "the line in a's log file")

    status, body = emperor.request("GET", "/api/vassals/nope")
    assert status == 404 and "nope" in body["error"]
    status, body = emperor.request("GET", "/api/vassals/nope/logs?tail=5")
    assert status == 404 and "error" in body
    for bad in ("abc", "-1", "1.5", ""):
        status, body = emperor.request("GET", f"/api/vassals/a/logs?tail={bad}")
        assert status == 400 and "tail" in body["error"], (bad, status, body)
    status, body = emperor.request("GET", "/api/nothing-here")
    assert status == 404 and "error" in body
    # Control calls need the token.
    status, body = emperor.request("POST", "/api/vassals/a/retry")
    assert status == 401 and "error" in body
    status, body = emperor.request("POST", "/api/vassals/a/retry", token="wrong")
    assert status == 401
    status, body = emperor.request("POST", "/api/vassals/nope/retry", token=emperor.token())
    assert status == 404
    assert oct((emperor.run_dir / "api-token").stat().st_mode & 0o777) == "0o600"


def test_ports_are_stable_across_reloads_and_emperor_restarts(emperor_factory):
    e = emperor_factory()
    for name in ("one", "two", "three"):
        (e.dir / f"{name}.ini").write_text(vassal_ini(name))
    ports = {name: e.wait_serving(name)[1] for name in ("one", "two", "three")}
    assert len(set(ports.values())) == 3
    os.utime(e.dir / "two.ini")
    e.wait_state("two", "running", where=lambda v: v["reloads"] == 1)
    assert e.port_of("two") == ports["two"]
    e.signal(signal.SIGTERM)
    assert e.wait_exit(30) == 0
    # A new emperor with the same run dir; the files are listed in another order of creation.
    (e.dir / "zero.ini").write_text(vassal_ini("0"))
    e.start()
    for name, port in ports.items():
        _, now = e.wait_serving(name)
        assert now == port, f"{name} moved from {port} to {now}"
    assert e.wait_serving("zero")[1] not in ports.values()
    saved = json.loads((e.run_dir / "ports.json").read_text())["ports"]
    assert {k: saved[k] for k in ports} == ports


# ----------------------------------------------------------------------------------------------------------------
# Reloads


class RequestLoop:
    """Clients sending requests (new connection each) until stopped; counts answers and failures."""

    def __init__(self, port: int, clients: int = 3):
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                resp = http_get(self.port, "/", timeout=10)
                with self.lock:
                    if resp.status == 200:
                        self.ok += 1
                        self.bodies.add(resp.text.split()[0])
                    else:
                        self.failures.append(f"status {resp.status}")
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_touch_reload_under_load_has_zero_failures(emperor):
    ini = emperor.dir / "web.ini"
    ini.write_text(vassal_ini("1", extra="processes = 2\n"))
    v1, port = emperor.wait_serving("web")
    with RequestLoop(port) as loop:
        wait_for(lambda: loop.ok > 50, 20, "some requests before the reload")
        ini.write_text(vassal_ini("2", extra="processes = 2\n"))  # same inode: a change in place
        v2 = emperor.wait_state("web", "running", where=lambda v: v["pid"] != v1["pid"])
        wait_for(lambda: "2" in loop.bodies, 20, "the new version answering")
        before = loop.ok
        wait_for(lambda: loop.ok > before + 50, 20, "requests after the reload")
        os.utime(ini)  # a bare touch reloads too
        v3 = emperor.wait_state("web", "running", where=lambda v: v["pid"] != v2["pid"])
        before = loop.ok
        wait_for(lambda: loop.ok > before + 50, 20, "requests after the touch")
    assert loop.failures == [], loop.failures[:5]
    assert v3["reloads"] == 2 and v3["respawns"] == 0
    assert emperor.port_of("web") == port
    wait_for(lambda: not pid_alive(v1["pid"]) and not pid_alive(v2["pid"]), 15, "the old versions to exit")


def test_editor_style_rename_save_reloads(emperor):
    ini = emperor.dir / "ed.ini"
    ini.write_text(vassal_ini("1"))
    v1, port = emperor.wait_serving("ed")
    # vim-like: swap file, backup file, then the new content renamed over the original.
    (emperor.dir / ".ed.ini.swp").write_text("garbage")
    (emperor.dir / "ed.ini~").write_text(vassal_ini("1"))
    (emperor.dir / "4913").write_text("")
    write_atomically(ini, vassal_ini("2"))
    emperor.wait_state("ed", "running", where=lambda v: v["pid"] != v1["pid"])
    wait_for(lambda: body_of(port).startswith("2 "), 10, "version 2")
    time.sleep(2.5)  # one periodic rescan: the temp files must not become vassals
    assert list(emperor.vassals()) == ["ed"]


def test_configmap_symlink_swap_reloads_only_the_changed_vassal(emperor):
    d = emperor.dir

    def publish(version: str, contents: dict[str, str]):
        target = d / f"..{version}"
        target.mkdir()
        for name, text in contents.items():
            (target / name).write_text(text)
        os.symlink(target.name, d / "..data_tmp")
        os.rename(d / "..data_tmp", d / "..data")  # the atomic swap kubelet does

    publish("v1", {"a.ini": vassal_ini("a1"), "b.ini": vassal_ini("b1")})
    os.symlink("..data/a.ini", d / "a.ini")
    os.symlink("..data/b.ini", d / "b.ini")
    a1, port_a = emperor.wait_serving("a")
    b1, port_b = emperor.wait_serving("b")
    publish("v2", {"a.ini": vassal_ini("a1"), "b.ini": vassal_ini("b2")})
    emperor.wait_state("b", "running", where=lambda v: v["pid"] != b1["pid"])
    wait_for(lambda: body_of(port_b).startswith("b2 "), 10, "b's new version")
    time.sleep(2.5)  # a periodic rescan too
    a_now = emperor.vassal("a")
    assert a_now["pid"] == a1["pid"] and a_now["reloads"] == 0, a_now
    assert body_of(port_a).startswith("a1 ")


def test_sighup_reloads_every_vassal(emperor):
    for name in ("x", "y"):
        (emperor.dir / f"{name}.ini").write_text(vassal_ini(name))
    before = {name: emperor.wait_serving(name)[0]["pid"] for name in ("x", "y")}
    emperor.signal(signal.SIGHUP)
    for name in ("x", "y"):
        emperor.wait_state(name, "running", where=lambda v, n=name: v["pid"] != before[n])


# ----------------------------------------------------------------------------------------------------------------
# Bad input, failures


def test_broken_ini_shows_error_and_affects_nothing_else(emperor):
    (emperor.dir / "good.ini").write_text(vassal_ini("g"))
    good, port = emperor.wait_serving("good")
    (emperor.dir / "typo.ini").write_text("[uwsgi]\nwsgi-file = app.py\nproceses = 2\n")
    (emperor.dir / "notini.ini").write_text("this is not an ini file\n")
    (emperor.dir / "noapp.ini").write_text("[uwsgi]\nprocesses = 1\n")
    (emperor.dir / "adir.ini").mkdir()
    typo = emperor.wait_state("typo", "error")
    assert "proceses" in typo["last_error"] and "did you mean 'processes'" in typo["last_error"], typo
    assert typo["pid"] is None and typo["workers"] == []
    assert emperor.wait_state("notini", "error")["last_error"]
    assert "no app configured" in emperor.wait_state("noapp", "error")["last_error"]
    assert "is a directory" in emperor.wait_state("adir", "error")["last_error"]
    # One clear line in the emperor's log for each.
    logs = emperor.logs()
    assert re.search(r"ERROR: vassal typo: .*typo\.ini:3: unknown option 'proceses'", logs), logs[-3000:]
    assert emperor.vassal("good")["pid"] == good["pid"] and body_of(port).startswith("g ")
    # Fixing the file starts it.
    (emperor.dir / "typo.ini").write_text(vassal_ini("t"))
    emperor.wait_serving("typo")


def test_broken_change_keeps_the_old_version_serving(emperor):
    ini = emperor.dir / "svc.ini"
    ini.write_text(vassal_ini("1"))
    v1, port = emperor.wait_serving("svc")
    with RequestLoop(port, clients=2) as loop:
        wait_for(lambda: loop.ok > 20, 20, "requests")
        # 1. An unknown option: refused before anything starts.
        write_atomically(ini, vassal_ini("2", extra="harakri = 30\n"))
        v = emperor.wait_state("svc", "error")
        assert "harakri" in v["last_error"] and v["pid"] == v1["pid"], v
        # 2. Valid ini, app that raises at import: the new process fails, the old one stays.
        (emperor.dir / "bad.py").write_text(RAISING_APP)
        write_atomically(ini, vassal_ini("3", app="bad.py"))
        v = emperor.wait_state("svc", "error", where=lambda v: "ZeroDivisionError" in (v["last_error"] or ""))
        assert v["pid"] == v1["pid"] and "broken at import on purpose" in v["last_error"], v
        assert "code 22" in v["last_exit"], v
        n = loop.ok
        wait_for(lambda: loop.ok > n + 20, 20, "the old version still serving")
        # 3. Fixed: the new version takes over.
        write_atomically(ini, vassal_ini("4"))
        emperor.wait_state("svc", "running", where=lambda v: v["pid"] != v1["pid"])
        wait_for(lambda: "4" in loop.bodies, 20, "version 4")
    assert loop.failures == [], loop.failures[:5]
    assert loop.bodies <= {"1", "4"}


def test_crash_loop_is_throttled_and_neighbours_never_notice(emperor_factory):
    e = emperor_factory(extra=["--emperor-throttle", "500"])
    (e.dir / "calm.ini").write_text(vassal_ini("calm"))
    calm, calm_port = e.wait_serving("calm")
    (e.dir / "bad.py").write_text(RAISING_APP)
    (e.dir / "loop.ini").write_text(vassal_ini("x", app="bad.py"))
    v = e.wait_state("loop", "throttled", timeout=30)
    assert "ZeroDivisionError: broken at import on purpose" in v["last_error"], v
    assert "code 22" in v["last_exit"] and v["retry_at"] and v["failures"] >= 1
    v = e.wait_state("loop", "throttled", timeout=30, where=lambda v: v["respawns"] >= 2 and v["failures"] >= 3)
    # Backoff: the delays double (0.5, 1, 2, then capped at 4 s by --emperor-max-throttle).
    events = e.get("/api/vassals/loop/events")["events"]
    delays = [float(m.group(1)) for ev in events if ev["kind"] == "throttle"
              for m in [re.search(r"retrying in ([\d.]+) s", ev["message"])] if m]
    assert delays[:3] == [0.5, 1.0, 2.0], delays
    # Retry now (with the token) resets the backoff: the next failure waits the base delay again.
    failures = v["failures"]
    status, _ = e.request("POST", "/api/vassals/loop/retry", token=e.token())
    assert status == 202
    e.wait_state("loop", "throttled", timeout=30, where=lambda v: v["failures"] == 1)
    assert failures >= 3
    # The neighbour never noticed.
    now = e.vassal("calm")
    assert now["state"] == "running" and now["pid"] == calm["pid"] and now["respawns"] == 0
    assert body_of(calm_port).startswith("calm ")
    # Fixing the app file does not need a touch of the ini: the next retry picks it up.
    (e.dir / "bad.py").write_text(APP)
    e.wait_serving("loop", timeout=30)


def test_port_range_exhausted_is_an_error_for_that_vassal_only(emperor_factory):
    e = emperor_factory(ports=1)
    (e.dir / "first.ini").write_text(vassal_ini("1"))
    e.wait_serving("first")
    (e.dir / "second.ini").write_text(vassal_ini("2"))
    v = e.wait_state("second", "error")
    assert "exhausted" in v["last_error"], v
    assert e.vassal("first")["state"] == "running"


def test_hung_master_is_restarted(emperor_factory):
    e = emperor_factory(extra=["--emperor-required-heartbeat", "2"])
    (e.dir / "hang.ini").write_text(vassal_ini("1"))
    v1, port = e.wait_serving("hang")
    os.kill(v1["pid"], signal.SIGSTOP)
    try:
        v2 = e.wait_state("hang", "running", timeout=30, where=lambda v: v["pid"] != v1["pid"])
    finally:
        if pid_alive(v1["pid"]):
            os.kill(v1["pid"], signal.SIGCONT)
    assert v2["respawns"] == 1 and "no heartbeat" in v2["last_exit"], v2
    assert e.port_of("hang") == port
    wait_for(lambda: answers(port), 10, "the restarted vassal")
    wait_for(lambda: not pid_alive(v1["pid"]), 10, "the hung master to be gone")


# ----------------------------------------------------------------------------------------------------------------
# Stop


def test_deleting_the_file_stops_the_vassal(emperor):
    (emperor.dir / "gone.ini").write_text(vassal_ini("1", extra="reload-mercy = 5\n"))
    (emperor.dir / "stays.ini").write_text(vassal_ini("2"))
    v, port = emperor.wait_serving("gone")
    stays, _ = emperor.wait_serving("stays")
    pids = [v["pid"]] + [w["pid"] for w in v["workers"]]
    (emperor.dir / "gone.ini").unlink()
    wait_for(lambda: emperor.vassal("gone") is None, 15, "the vassal to disappear from the API")
    assert not any(pid_alive(p) for p in pids), [p for p in pids if pid_alive(p)]
    assert not answers(port)
    assert emperor.vassal("stays")["pid"] == stays["pid"]
    # Dropped again: it comes back on the same port.
    (emperor.dir / "gone.ini").write_text(vassal_ini("3"))
    _, again = emperor.wait_serving("gone")
    assert again == port


def test_sigterm_stops_every_vassal_gracefully_without_orphans(emperor):
    for name in ("p", "q", "r"):
        (emperor.dir / f"{name}.ini").write_text(vassal_ini(name, extra="processes = 2\n"))
    pids = []
    for name in ("p", "q", "r"):
        v, _ = emperor.wait_serving(name)
        pids += [v["pid"]] + [w["pid"] for w in v["workers"]]
    assert len(pids) == 9
    emperor.signal(signal.SIGTERM)
    assert emperor.wait_exit(30) == 0
    alive = [p for p in pids if pid_alive(p)]
    assert alive == [], alive
    assert emperor.vassal_processes() == []
    logs = emperor.logs()
    assert "graceful stop" in logs and "killed by signal" not in logs


def test_api_stop_start(emperor):
    (emperor.dir / "ctl.ini").write_text(vassal_ini("1"))
    v1, port = emperor.wait_serving("ctl")
    token = emperor.token()
    assert emperor.request("POST", "/api/vassals/ctl/stop", token=token)[0] == 202
    emperor.wait_state("ctl", "stopped")
    assert not pid_alive(v1["pid"]) or wait_for(lambda: not pid_alive(v1["pid"]), 10, "stopped")
    assert emperor.request("POST", "/api/vassals/ctl/start", token=token)[0] == 202
    v2, again = emperor.wait_serving("ctl")
    assert again == port and v2["pid"] != v1["pid"]
    assert emperor.request("POST", "/api/vassals/ctl/reload", token=token)[0] == 202
    emperor.wait_state("ctl", "running", where=lambda v: v["pid"] != v2["pid"])


# ----------------------------------------------------------------------------------------------------------------
# Templates, own sockets


def test_vassals_include_and_vassal_set_with_percent_n(emperor_factory, tmp_path):
    template = tmp_path / "template.ini"
    template.write_text("[uwsgi]\nenv = WHO=%n\n")
    e = emperor_factory(extra=["--vassals-include", os.fspath(template), "--vassal-set", "processes=2"])
    (e.dir / "alpha.ini").write_text("[uwsgi]\nwsgi-file = app.py\nenv = VERSION=1\n")
    (e.dir / "beta.ini").write_text("[uwsgi]\nwsgi-file = app.py\nenv = VERSION=1\n")
    for name in ("alpha", "beta"):
        v, port = e.wait_serving(name)
        assert len(v["workers"]) == 2, v
        assert body_of(port).split()[1] == name


def test_vassal_with_its_own_http_socket_keeps_it_and_reloads_without_failures(emperor):
    port = free_port()
    ini = emperor.dir / "own.ini"
    ini.write_text(vassal_ini("1", extra=f"http-socket = 127.0.0.1:{port}\n"))
    v1 = emperor.wait_state("own", "running")
    assert v1["sockets"] == [{"proto": "http", "address": f"127.0.0.1:{port}", "auto": False}]
    wait_for(lambda: answers(port), 10, "the vassal's own port")
    with RequestLoop(port) as loop:
        wait_for(lambda: loop.ok > 30, 20, "requests")
        ini.write_text(vassal_ini("2", extra=f"http-socket = 127.0.0.1:{port}\n"))
        emperor.wait_state("own", "running", where=lambda v: v["pid"] != v1["pid"])
        wait_for(lambda: "2" in loop.bodies, 20, "version 2")
    assert loop.failures == [], loop.failures[:5]


def test_vassal_with_a_unix_socket_reloads_in_place(emperor, short_tmp):
    sock = short_tmp / "u.sock"
    ini = emperor.dir / "unix.ini"
    port = free_port()
    ini.write_text(vassal_ini("1", extra=f"socket = {sock}\nhttp-socket = 127.0.0.1:{port}\n"))
    v1 = emperor.wait_state("unix", "running")
    assert {s["proto"] for s in v1["sockets"]} == {"uwsgi", "http"}
    wait_for(lambda: answers(port), 10, "the vassal")
    old_workers = {w["pid"] for w in v1["workers"]}
    ini.write_text(vassal_ini("2", extra=f"socket = {sock}\nhttp-socket = 127.0.0.1:{port}\n"))
    v2 = emperor.wait_state("unix", "running", where=lambda v: v["reloads"] == 1 and v["workers"]
                            and not ({w["pid"] for w in v["workers"]} & old_workers))
    assert v2["pid"] == v1["pid"]  # the master re-executed itself
    wait_for(lambda: body_of(port).startswith("2 "), 10, "version 2")
    assert sock.exists()


# ----------------------------------------------------------------------------------------------------------------
# Scale


def test_fifty_vassals_dropped_at_once_all_reach_running(emperor_factory):
    e = emperor_factory(ports=60)
    names = [f"v{i:02d}" for i in range(50)]
    started = time.monotonic()
    for name in names:
        (e.dir / f"{name}.ini").write_text(vassal_ini(name))

    def all_running():
        vs = e.vassals()
        return len(vs) == 50 and all(v["state"] == "running" for v in vs.values())
    try:
        wait_for(all_running, 120, "50 vassals running", interval=0.2)
    except TimeoutError:
        states = {n: (v["state"], v["last_error"]) for n, v in e.vassals().items() if v["state"] != "running"}
        raise AssertionError(f"not running: {states}\n{e.describe()}") from None
    elapsed = time.monotonic() - started
    vs = e.vassals()
    ports = {int(v["sockets"][0]["address"].rsplit(":", 1)[1]) for v in vs.values()}
    assert len(ports) == 50
    for name in names[:: 7]:
        assert body_of(e.port_of(name)).startswith(f"{name} ")
    print(f"50 vassals running {elapsed:.1f}s after the drop")


def _python_reachable_by_others() -> bool:
    """Whether an unprivileged user can read the Python that liege embeds (pyenv under /root is not)."""
    import sys
    path = Path(os.path.realpath(sys.base_prefix))
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
@pytest.mark.skipif(not _python_reachable_by_others(),
                    reason="the embedded Python is not readable by an unprivileged user on this machine")
def test_uid_gid_in_a_vassal_drop_its_privileges_after_binding(emperor_factory):
    import grp
    import pwd
    import shutil
    import tempfile
    root = Path(tempfile.mkdtemp(prefix="liege-uid-", dir="/tmp"))
    try:
        root.chmod(0o755)  # the vassal imports its app after dropping root
        e = emperor_factory(root=root)
        e.dir.chmod(0o755)
        (e.dir / "app.py").chmod(0o644)
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        (e.dir / "low.ini").write_text(vassal_ini("1", extra=f"uid = nobody\ngid = {group}\n"))
        (e.dir / "root.ini").write_text(vassal_ini("2"))
        low, port = e.wait_serving("low")
        assert port < 32768 and body_of(port).startswith("1 ")

        def ids(pid: int) -> tuple[int, int]:
            status = Path(f"/proc/{pid}/status").read_text()
            uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
            gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))
            return uid, gid
        assert ids(low["pid"]) == (nobody.pw_uid, nobody.pw_gid)
        assert ids(low["workers"][0]["pid"]) == (nobody.pw_uid, nobody.pw_gid)
        other, _ = e.wait_serving("root")
        assert ids(other["pid"]) == (0, 0)
        # A touch-reload of the unprivileged vassal works: the emperor still owns its socket.
        os.utime(e.dir / "low.ini")
        e.wait_state("low", "running", where=lambda v: v["pid"] != low["pid"])
        assert body_of(port).startswith("1 ")
    finally:
        shutil.rmtree(root, ignore_errors=True)
