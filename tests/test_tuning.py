"""Process tuning in the master and its workers: cpu-affinity, never-swap, ksm, and harakiri-queue-threshold,
each seen from outside (/proc/PID/status, /proc/PID/smaps, what the client gets)."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time

from liegetest import APPS, http_get, wait_for

APP = APPS / "tuning.py"


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def worker_ids(srv) -> dict[int, int]:
    """Worker id -> pid, from the master's `spawned worker N (pid P)` lines (the latest per id)."""
    return {int(wid): int(pid) for wid, pid in re.findall(r"spawned worker (\d+) \(pid (\d+)\)", srv.logs())}


def test_cpu_affinity_pins_each_worker_round_robin(liege):
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    srv = liege("--wsgi-file", APP, "--processes", "2", "--cpu-affinity", "1", workers=2)
    ids = worker_ids(srv)
    for wid in (1, 2):
        cpu = (wid - 1) % cpus
        srv.wait_log(rf"mapping worker {wid} to CPUs: {cpu}\n")
        assert status_field(ids[wid], "Cpus_allowed_list") == str(cpu)
    assert status_field(srv.pid, "Cpus_allowed_list") != status_field(ids[1], "Cpus_allowed_list") or cpus == 1, \
        "the master is not pinned"


def can_lock_memory() -> bool:
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return True
    with open("/proc/self/status") as f:
        eff = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
    return bool(eff >> 14 & 1)  # CAP_IPC_LOCK


def locked_kb(pid: int) -> int:
    return int(status_field(pid, "VmLck").split()[0])


def test_never_swap_locks_master_and_workers_in_ram(liege):
    srv = liege("--wsgi-file", APP, "--processes", "2", "--never-swap", workers=2)
    if not can_lock_memory():
        srv.wait_log(r"never-swap: cannot lock the memory of the master")
        return
    srv.wait_log(r"never-swap: memory of the master locked in RAM")
    srv.wait_log(r"never-swap: memory of worker 2 locked in RAM")
    for pid in [srv.pid, *srv.worker_pids()]:
        assert locked_kb(pid) > 1000, f"pid {pid}: VmLck {status_field(pid, 'VmLck')}"
    assert http_get(srv.port, "/grow?mb=8").status == 200, "MCL_FUTURE: new memory is locked too"


def test_never_swap_says_why_when_rlimit_memlock_forbids_it(liege, tmp_path):
    """Without CAP_IPC_LOCK and with a 64 KB RLIMIT_MEMLOCK, mlockall fails: the error names the limit, and
    liege runs unlocked, as uWSGI."""
    wrapper = tmp_path / "memlock-64k"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import ctypes, os, resource, sys\n"
        "ctypes.CDLL(None, use_errno=True).prctl(24, 14, 0, 0, 0)  # PR_CAPBSET_DROP CAP_IPC_LOCK\n"
        "resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))\n"
        f"os.execv({str(liege.binary)!r}, [{str(liege.binary)!r}] + sys.argv[1:])\n")
    wrapper.chmod(0o755)
    binary, liege.binary = liege.binary, wrapper
    try:
        srv = liege("--wsgi-file", APP, "--never-swap", workers=1)
    finally:
        liege.binary = binary
    srv.wait_log(r"never-swap: cannot lock the memory of the master \(mlockall: .*\); RLIMIT_MEMLOCK is 65536 bytes: "
                 r"raise it")
    srv.wait_log(r"never-swap: cannot lock the memory of worker 1")
    assert locked_kb(srv.pid) == 0
    assert http_get(srv.port, "/").status == 200


def mergeable(pid: int) -> bool:
    """Some mapping of the process has `mg` (VM_MERGEABLE) in its smaps VmFlags."""
    with open(f"/proc/{pid}/smaps") as f:
        return any(line.startswith("VmFlags:") and " mg" in line for line in f)


def test_ksm_marks_worker_and_master_memory_mergeable(liege):
    srv = liege("--wsgi-file", APP, "--ksm", "1", workers=1)
    srv.wait_log(r"\[KSM\] enabled with frequency: 1")
    (worker,) = srv.worker_pids()
    assert http_get(srv.port, "/").status == 200
    wait_for(lambda: mergeable(worker), timeout=5, what="the worker's mappings marked mergeable after a request")
    wait_for(lambda: mergeable(srv.pid), timeout=5, what="the master's mappings marked mergeable after a cycle")
    plain = liege("--wsgi-file", APP, workers=1)
    (other,) = plain.worker_pids()
    for _ in range(3):
        assert http_get(plain.port, "/").status == 200
    time.sleep(1.5)
    assert not mergeable(other) and not mergeable(plain.pid), "without ksm nothing is marked"


def test_harakiri_queue_threshold_spares_a_slow_request_until_the_queue_fills(liege):
    srv = liege("--wsgi-file", APP, "--harakiri", "1", "--harakiri-queue-threshold", "3", workers=1)
    started = time.monotonic()
    response = http_get(srv.port, "/slow?s=3", timeout=30)
    assert response.status == 200, "past harakiri, but the listen queue is empty: no kill, no 504"
    assert time.monotonic() - started >= 3
    srv.wait_log(r"HARAKIRI: Skipping harakiri on worker 1\. Listen queue is smaller than the threshold \(0 < 3\)")
    assert "stuck for" not in srv.logs()

    (worker,) = srv.worker_pids()
    result: dict[str, object] = {}

    def stuck() -> None:
        try:
            result["status"] = http_get(srv.port, "/slow?s=20", timeout=30).status
        except Exception as err:  # noqa: BLE001 - the harakiri may cut the connection instead
            result["error"] = err

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    time.sleep(1)
    waiting = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(3)]
    try:
        for conn in waiting:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        srv.wait_log(r"HARAKIRI: worker 1 \(pid \d+\) stuck for", timeout=15)
        thread.join(20)
        assert result.get("status", 504) == 504, result
        wait_for(lambda: worker not in srv.worker_pids(), timeout=10, what="the stuck worker killed")
        for conn in waiting:
            conn.settimeout(20)
            assert conn.recv(64).startswith(b"HTTP/1.1 200"), "the queue is served by the respawned worker"
    finally:
        for conn in waiting:
            conn.close()
