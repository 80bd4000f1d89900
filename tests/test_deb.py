"""The Debian package (packaging/build-deb), installed with dpkg into a clean Debian trixie and started as its
systemd unit says.

`tests/run` builds the package against the trixie chroot of tests/chroot.py (the binary links trixie's own
libpython3.13, no rpath). Each test installs it into an overlay over that chroot, so the cached root stays
clean and every test starts from a system that never saw liege. There is no systemd inside a chroot: the test
plays it, as test_systemd.py does. It runs the unit's own `ExecStart=` line (read from the installed unit
file) with a `NOTIFY_SOCKET`, sends `ExecReload=`'s SIGHUP and `systemctl stop`'s SIGTERM, and checks what
systemd would see: READY, STOPPING and the exit status (and the vassal reloaded). The vassal directory is a host directory
mounted at /etc/liege/vassals, as a volume would be, so files dropped into it reach the emperor's inotify.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

import chroot
from liegetest import FakeSystemd, free_port, group_members, http_get, wait_for

REPO = Path(__file__).resolve().parent.parent
DEB_DIR = REPO / "target" / "deb"

APP = """\
import sys

def application(environ, start_response):
    body = ("%d.%d %s" % (sys.version_info[0], sys.version_info[1], sys.prefix)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def package() -> Path:
    debs = sorted(DEB_DIR.glob("liege_*.deb"))
    if not debs:
        message = "no Debian package (tests/run builds it: packaging/build-deb --root <trixie chroot>)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return debs[-1]


@pytest.fixture
def system(tmp_path):
    """A fresh trixie (overlay over the cached chroot) with the .deb installed by dpkg."""
    root = chroot.ready(*chroot.TRIXIE_PYTHON)
    if root is None:
        message = "no trixie chroot (tests/run prepares it: tests/chroot.py prepare trixie ...)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    deb = package()
    layer = tmp_path / "layer"
    vassals = tmp_path / "vassals"
    vassals.mkdir()

    def inside(argv, **kwargs):
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return chroot.run_inside(root, argv, binds=[deb.parent], overlay=layer, **kwargs)

    done = inside(["dpkg", "-i", os.fspath(deb)], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "layer": layer, "upper": layer / "upper", "deb": deb, "vassals": vassals,
            "inside": inside, "tmp": tmp_path}


def unit_line(system, unit: str, key: str) -> str:
    text = (system["upper"] / "usr/lib/systemd/system" / unit).read_text()
    lines = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]
    assert len(lines) == 1, (key, text)
    return lines[0]


def test_package_metadata_and_files(system):
    inside = system["inside"]
    fields = subprocess.run(["dpkg-deb", "--field", os.fspath(system["deb"])], capture_output=True, text=True,
                            check=True).stdout
    assert "Package: liege" in fields
    depends = next(line for line in fields.splitlines() if line.startswith("Depends:"))
    assert "libpython3.13 (>= 3.13" in depends and "libc6 (>= 2." in depends, depends
    listed = inside(["dpkg", "-L", "liege"]).stdout.split()
    for path in ("/usr/bin/liege", "/usr/lib/systemd/system/liege-emperor.service",
                 "/usr/lib/systemd/system/liege@.service", "/etc/liege/vassals",
                 "/usr/share/doc/liege/copyright", "/usr/share/doc/liege/changelog.Debian.gz"):
        assert path in listed, (path, listed)
    # The binary finds trixie's libpython through the loader's default path, and runs there.
    done = inside(["/usr/bin/liege", "--version"])
    assert done.returncode == 0 and "liege" in done.stdout, done.stdout + done.stderr
    dynamic = subprocess.run(["readelf", "-d", os.fspath(system["upper"] / "usr/bin/liege")], capture_output=True,
                             text=True, check=True).stdout
    assert "libpython3.13.so.1.0" in dynamic and "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    # The units name the package's paths, and systemd itself accepts them.
    assert unit_line(system, "liege-emperor.service", "ExecStart").startswith("/usr/bin/liege emperor /etc/liege")
    assert unit_line(system, "liege@.service", "ExecStart") == "/usr/bin/liege --ini /etc/liege/%i.ini"
    verify_units(system)


def verify_units(system) -> None:
    """`systemd-analyze verify` of the installed units, by this machine's systemd (the chroot has none), with
    the package's /usr/bin/liege visible at its path in a private mount namespace (an overlay over /usr/bin)."""
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing")
        return
    units = system["upper"] / "usr/lib/systemd/system"
    layer = system["tmp"] / "usr-bin"
    for part in ("upper", "work"):
        (layer / part).mkdir(parents=True)
    shutil.copy(system["upper"] / "usr/bin/liege", layer / "upper" / "liege")
    script = (f"mount -t overlay overlay -o lowerdir=/usr/bin,upperdir={layer}/upper,workdir={layer}/work /usr/bin"
              f" && exec systemd-analyze verify {units}/liege-emperor.service {units}/liege@.service")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def test_emperor_unit_serves_reloads_and_stops_then_package_removes(system, short_tmp):
    inside = system["inside"]
    app_port, api_port = free_port(), free_port()
    (system["vassals"] / "app.py").write_text(APP)
    (system["vassals"] / "hello.ini").write_text(
        f"[uwsgi]\nhttp-socket = 127.0.0.1:{app_port}\nwsgi-file = app.py\nprocesses = 2\nmaster = true\n")
    exec_start = shlex.split(unit_line(system, "liege-emperor.service", "ExecStart"))
    assert unit_line(system, "liege-emperor.service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    # The unit's command as systemd runs it; only the API's port is changed (tests run side by side).
    argv = [*exec_start, "--api", f"127.0.0.1:{api_port}"]
    systemd = FakeSystemd(short_tmp)
    log = system["tmp"] / "emperor.log"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": os.fspath(systemd.path), "LANG": "C.UTF-8"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            chroot.command(system["root"], argv, binds=[short_tmp], overlay=system["layer"],
                           mounts={"/etc/liege/vassals": system["vassals"]}),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        systemd.wait("READY", "1", timeout=30)
        # The vassal runs on trixie's CPython 3.13 (the package's libpython), without any virtualenv.
        body = wait_for(lambda: _get(app_port), 30, "the vassal serving").body.decode()
        assert body == "3.13 /usr", body
        vassal = wait_for(lambda: next((v for v in api(api_port, "/api/vassals")["vassals"]
                                        if v["name"] == "hello" and v["state"] == "running"), None), 30,
                          "hello running in the API")
        assert vassal["reloads"] == 0
        # The emperor wrote where the unit says (run and log directories inside the system).
        assert (system["upper"] / "run/liege/emperor/api-token").exists()
        assert (system["upper"] / "var/log/liege").is_dir()

        # systemctl reload: ExecReload's SIGHUP to the main pid reloads every vassal gracefully.
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: next((v for v in api(api_port, "/api/vassals")["vassals"]
                               if v["name"] == "hello" and v["state"] == "running" and v["reloads"] >= 1), None),
                 30, "hello reloaded")
        assert _get(app_port).status == 200

        # Touching a vassal file through the mounted directory reaches the emperor too.
        (system["vassals"] / "second.ini").write_text(
            f"[uwsgi]\nhttp-socket = 127.0.0.1:{free_port()}\nwsgi-file = app.py\n")
        wait_for(lambda: any(v["name"] == "second" and v["state"] == "running"
                             for v in api(api_port, "/api/vassals")["vassals"]), 30, "second running")

        # systemctl stop: SIGTERM; systemd sees STOPPING and a clean exit.
        count = len(systemd.messages)
        proc.send_signal(signal.SIGTERM)
        systemd.wait("STOPPING", "1", after=count)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None or group_members(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        systemd.close()
    # The emperor's session held its vassals and workers: none of them outlives it.
    wait_for(lambda: not group_members(proc.pid), 10, "no process left of the emperor's group")

    done = inside(["dpkg", "--purge", "liege"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (system["upper"] / "usr/bin/liege").exists()
    assert inside(["sh", "-c", "test ! -e /usr/bin/liege && test ! -e /var/log/liege"]).returncode == 0


def _get(port: int):
    try:
        response = http_get(port, "/")
    except OSError:
        return None
    return response if response.status == 200 else None

