"""Mules with real processes: `mule`, `mules`, `farm`, `mule-reload-mercy`, `touch-mules-reload`, and the
`uwsgi` module's mule functions.

Each mule running tests/apps/mule_script.py appends "start ID PID FILE FARM" to a file when it starts and
"ID got MESSAGE" for every message; a message-only mule hands messages to the `uwsgi.mule_msg_hook` that
tests/apps/mules_app.py installs at import, which appends "hook ID MESSAGE". The app's /send route calls
`uwsgi.mule_msg`. Mules are children of the master (in its process group), so the fixtures' teardown ends them
with it; the tests also check that a stop leaves none behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from liegetest import APPS, free_port, http_get, pid_alive, vassal_ini, wait_for

SCRIPT = APPS / "mule_script.py"


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def starts(out: Path) -> dict[int, list[int]]:
    """mule id -> the pids it started with, in order."""
    result: dict[int, list[int]] = {}
    for line in lines(out):
        parts = line.split()
        if parts[0] == "start":
            result.setdefault(int(parts[1]), []).append(int(parts[2]))
    return result


def send(inst, to: str, msg: str) -> str:
    return http_get(inst.port, f"/send?to={to}&msg={msg}").text


def stats(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def start(serve, tmp_path, *extra, processes: int = 2):
    out = tmp_path / "out"
    stats_port = free_port()
    inst = serve("mules_app.py", "--processes", str(processes), f"--mule={SCRIPT}", f"--mule={SCRIPT}", "--mule",
                 "--farm", "crunch:2", "--stats", f"127.0.0.1:{stats_port}", *extra, env={"MULE_OUT": str(out)})
    wait_for(lambda: set(starts(out)) == {1, 2}, 20, "both script mules to start")
    inst.wait_log(r"spawned mule 3 \(pid: \d+\)", 10)
    return inst, out, stats_port


def test_messages_to_a_mule_a_farm_and_any_mule(serve, tmp_path):
    inst, out, stats_port = start(serve, tmp_path)
    first = starts(out)
    # What each mule knows of itself: its id, its file, its farm (uWSGI's in_farm answers True or None).
    assert any(f"start 1 {first[1][0]} {SCRIPT} None" == line for line in lines(out)), lines(out)
    assert any(f"start 2 {first[2][0]} {SCRIPT} True" == line for line in lines(out)), lines(out)
    # In a worker: mule_id() is 0.
    assert http_get(inst.port, "/ids").text.endswith(" mule 0")
    assert send(inst, "1", "for-one") == "True"
    wait_for(lambda: "1 got for-one" in lines(out), 10, "mule 1 to get its message")
    assert send(inst, "crunch", "for-the-farm") == "True"
    wait_for(lambda: "2 got for-the-farm" in lines(out), 10, "the farm's mule to get the message")
    # Mule 3 waits for messages only: the app's mule_msg_hook gets them.
    assert send(inst, "3", "for-three") == "True"
    wait_for(lambda: "extra 3 for-three" in lines(out), 10, "mule 3's hooks")
    assert lines(out).index("hook 3 for-three") < lines(out).index("extra 3 for-three")
    # Any mule: one of them (a script mule or the hook), once.
    for n in range(4):
        assert send(inst, "any", f"anyone-{n}") == "True"
        assert send(inst, "0", f"zero-{n}") == "True"
    for n in range(4):
        for text in (f"anyone-{n}", f"zero-{n}"):
            wait_for(lambda: any(line.endswith(f" {text}") for line in lines(out)), 10, f"{text} delivered")
    time.sleep(0.3)
    got = [line for line in lines(out) if ("anyone-" in line or "zero-" in line) and not line.startswith("extra")]
    assert len(got) == 8, got
    # Mistakes are errors, as uWSGI's.
    assert send(inst, "nofarm", "x") == "ValueError: unknown farm"
    assert send(inst, "9", "x") == "ValueError: invalid mule number"
    # The stats document lists the mules (after the workers).
    document = stats(stats_port)
    mules = {m["id"]: m for m in document["mules"]}
    assert set(mules) == {1, 2, 3}
    assert mules[1]["pid"] == first[1][0] and mules[2]["pid"] == first[2][0]
    assert mules[1]["file"] == str(SCRIPT) and mules[3]["file"] == ""
    assert all(m["respawn_count"] == 1 and m["rss"] > 0 for m in mules.values())
    assert [w["id"] for w in document["workers"]] == [1, 2]


def test_a_killed_mule_is_respawned_and_a_stop_leaves_none(serve, tmp_path):
    inst, out, stats_port = start(serve, tmp_path)
    victim = starts(out)[1][0]
    os.kill(victim, signal.SIGKILL)
    inst.wait_log(rf"mule 1 \(pid {victim}\) killed by signal 9 \(SIGKILL\).*respawning", 10)
    wait_for(lambda: len(starts(out)[1]) == 2, 15, "mule 1 to start again")
    assert starts(out)[1][1] != victim
    # The new one gets messages.
    assert send(inst, "1", "after-respawn") == "True"
    wait_for(lambda: "1 got after-respawn" in lines(out), 10, "the respawned mule's message")
    assert [m["respawn_count"] for m in stats(stats_port)["mules"]] == [2, 1, 1]
    # A graceful stop ends every mule (SIGTERM) before the master exits.
    mule_pids = [pids[-1] for pids in starts(out).values()]
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    for pid in mule_pids:
        assert not pid_alive(pid), pid
    assert "mule 1 (pid" in inst.logs() and "killed by signal 15 (SIGTERM)" in inst.logs()


@pytest.mark.parametrize("mode", ["preload", "lazy-apps"])
def test_a_reload_restarts_the_mules(serve, tmp_path, mode):
    """Preload: the master re-executes itself and the next image starts new mules once the old ones are gone;
    lazy-apps: the same master restarts them (SIGHUP, then a new one)."""
    extra = ["--lazy-apps"] if mode == "lazy-apps" else []
    inst, out, _ = start(serve, tmp_path, "--mule-reload-mercy", "5", *extra)
    before = starts(out)
    inst.signal(signal.SIGHUP)
    wait_for(lambda: all(len(pids) == 2 for pids in starts(out).values()), 30, "both mules to start again")
    after = starts(out)
    for mule in (1, 2):
        assert after[mule][1] != before[mule][0]
        wait_for(lambda: not pid_alive(before[mule][0]), 10, f"the old mule {mule} to be gone")
    # The new image's queues reach the new mules.
    wait_for(lambda: send(inst, "1", "after-reload") == "True", 20, "the new workers")
    wait_for(lambda: "1 got after-reload" in lines(out), 10, "the new mule's message")


def test_touch_mules_reload_restarts_only_the_mules(serve, tmp_path):
    touch = tmp_path / "mules.touch"
    touch.write_text("")
    inst, out, stats_port = start(serve, tmp_path, "--touch-mules-reload", touch)
    workers = sorted(w["pid"] for w in stats(stats_port)["workers"])
    before = starts(out)
    time.sleep(1.1)  # a new modification time
    touch.write_text("again")
    inst.wait_log(r"mules\.touch has been touched\.\.\. mules reload", 10)
    wait_for(lambda: all(len(pids) == 2 for pids in starts(out).values()), 20, "both mules to start again")
    assert starts(out)[1][1] != before[1][0]
    assert sorted(w["pid"] for w in stats(stats_port)["workers"]) == workers
    assert send(inst, "1", "after-touch") == "True"
    wait_for(lambda: "1 got after-touch" in lines(out), 10, "the new mule's message")


def test_mules_only_and_lazy_apps(liege, tmp_path):
    """087-style: mules and no app at all (requests get 503); with lazy-apps each mule starts Python itself."""
    out = tmp_path / "out"
    (tmp_path / "worker.py").write_text(SCRIPT.read_text())
    ini = tmp_path / "mules.ini"
    ini.write_text(f"[uwsgi]\nchdir = {tmp_path}\n" + "mule = worker.py\n" * 3 + "lazy-apps = true\n")
    inst = liege("--ini", ini, env={"MULE_OUT": str(out)}, ready_path="/")
    wait_for(lambda: set(starts(out)) == {1, 2, 3}, 20, "three mules")
    assert http_get(inst.port, "/").status == 503
    assert "no app configured: this vassal runs its 3 mule(s)" in inst.logs()
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    for pids in starts(out).values():
        assert not pid_alive(pids[-1])


def test_the_emperor_api_shows_the_mules(emperor_factory, tmp_path):
    """Under an emperor the mules are among the vassal's side processes (`daemons`, kind "mule")."""
    emperor = emperor_factory()
    out = tmp_path / "out"
    (emperor.dir / "worker.py").write_text(SCRIPT.read_text())
    (emperor.dir / "m.ini").write_text(vassal_ini("1", extra=f"mule = worker.py\nmules = 1\nenv = MULE_OUT={out}\n"))
    wait_for(lambda: set(starts(out)) == {1}, 30, "the mule under the emperor")

    def listed():
        daemons = emperor.vassals().get("m", {}).get("daemons", [])
        return [d for d in daemons if d["kind"] == "mule" and d["running"]]
    wait_for(lambda: len(listed()) == 2, 15, "both mules in the API")
    mules = listed()
    assert mules[0]["command"] == "mule 1: worker.py" and mules[0]["pid"] == starts(out)[1][0]
    assert mules[1]["command"] == "mule 2" and mules[1]["starts"] == 1


def test_a_mule_that_ignores_the_restart_is_killed_after_the_mercy(serve, tmp_path):
    out = tmp_path / "out"
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        "import os, signal, time, uwsgi\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(out)!r}, 'a').write('start %d %d\\n' % (uwsgi.mule_id(), os.getpid()))\n"
        "while True:\n    time.sleep(1)\n")
    touch = tmp_path / "mules.touch"
    touch.write_text("")
    inst = serve("mules_app.py", f"--mule={stubborn}", "--mule-reload-mercy", "1", "--touch-mules-reload", touch,
                 env={"MULE_OUT": str(out)})
    wait_for(lambda: starts(out).get(1), 20, "the mule")
    first = starts(out)[1][0]
    time.sleep(1.1)
    touch.write_text("again")
    inst.wait_log(rf"mule 1 \(pid {first}\) is taking too much time to die\.\.\. NO MERCY", 10)
    wait_for(lambda: len(starts(out)[1]) == 2, 15, "a new mule")
    assert not pid_alive(first)
    # A stop waits up to the mercy too, then kills it.
    second = starts(out)[1][1]
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit(30) == 0
    assert not pid_alive(second)
    assert "NO MERCY" in inst.logs().split("graceful stop")[-1]


def test_mule_msg_size_bounds_a_message(serve, tmp_path):
    """`mule-msg-size` is the queues' buffer size (SO_SNDBUF/SO_RCVBUF): a larger message is refused (False,
    logged), a smaller one delivered whole; `mule_get_msg` reads up to its `buffer_size` (65536)."""
    out = tmp_path / "out"
    inst = serve("mules_app.py", f"--mule={SCRIPT}", "--mule-msg-size", "16384", env={"MULE_OUT": str(out)})
    wait_for(lambda: starts(out).get(1), 20, "the mule")
    assert http_get(inst.port, "/send?to=1&size=200000").text == "False"
    inst.wait_log(r"\*\*\* MULE MSG MESSAGE TOO LARGE: 200000 bytes", 10)
    assert http_get(inst.port, "/send?to=1&size=5000").text == "True"
    wait_for(lambda: f"1 got {'x' * 5000}" in lines(out), 10, "the 5000-byte message")
