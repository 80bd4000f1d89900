"""systemd's notify protocol (Type=notify units in packaging/): READY once serving, STOPPING at a stop, and
only the process systemd started ever speaks. The test plays systemd: a unix datagram socket named by
NOTIFY_SOCKET, as systemd creates one."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from liegetest import FakeSystemd

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"


def test_single_app_notifies_ready_reloading_and_stopping(liege, short_tmp):
    systemd = FakeSystemd(short_tmp)
    try:
        inst = liege("--wsgi-file", APPS / "echo.py", "--processes", "2",
                     env={"NOTIFY_SOCKET": os.fspath(systemd.path)})
        _, ready = systemd.wait("READY", "1")
        assert ready["STATUS"] == "serving with 2 worker(s)"
        inst.signal(signal.SIGHUP)
        reloading, _ = systemd.wait("RELOADING", "1")
        systemd.wait("READY", "1", after=reloading + 1)  # the new workers serve
        inst.signal(signal.SIGTERM)
        systemd.wait("STOPPING", "1")
        inst.wait_exit(30)
    finally:
        systemd.close()


def test_emperor_notifies_and_its_vassals_stay_silent(emperor_factory, short_tmp):
    systemd = FakeSystemd(short_tmp)
    try:
        emperor = emperor_factory(start=False, env={"NOTIFY_SOCKET": os.fspath(systemd.path)})
        (emperor.dir / "one.ini").write_text("[uwsgi]\nwsgi-file = app.py\nprocesses = 1\n")
        emperor.start()
        _, ready = systemd.wait("READY", "1")
        assert ready["STATUS"].startswith("1 vassal(s)"), ready
        emperor.wait_serving("one")
        systemd.wait("STATUS", "1 vassal(s): 1 running")
        # Only the emperor speaks to systemd: no vassal process has NOTIFY_SOCKET.
        for pid in emperor.vassal_processes():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not any(item.startswith(b"NOTIFY_SOCKET=") for item in environ), pid
        emperor.signal(signal.SIGTERM)
        systemd.wait("STOPPING", "1")
        assert emperor.wait_exit(30) == 0
    finally:
        systemd.close()


def test_unit_files_name_what_liege_accepts(liege_binary):
    """The ExecStart lines of packaging/ name options liege knows (`liege --help` lists every option)."""
    binary = liege_binary
    for unit in (REPO / "packaging").glob("*.service"):
        exec_start = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
        argv = exec_start.split("=", 1)[1].split()[1:]
        options = [a for a in argv if a.startswith("--")]
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
        for option in options:
            assert f"--{option.lstrip('-')}" in help_text, (unit.name, option)
        for key in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"):
            assert key in unit.read_text(), (unit.name, key)
