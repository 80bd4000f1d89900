#!/usr/bin/env python3
"""What watching an app costs it: the request log and the emperor's API, measured on the hello app.

Stdlib only (plus wrk and target/release/liege). For each variant, in interleaved rounds, a fresh emperor
serves bench/apps/hello.py as one vassal (4 processes) on 127.0.0.1, and `wrk -t2 -c10` measures it:

  quiet      disable-logging, nobody reading the API           (the baseline)
  log        the default uWSGI-style request log (every line goes through the emperor: ring, file)
  log-json   log-format = json
  polled     disable-logging, while 20 clients poll the API 10 times a second each (keep-alive connections,
             rotating over the calls the dashboard and scripts make: /api/vassals, /api/vassals/hello,
             /history, /api/emperor, /metrics)

It prints req/s (median of the rounds), each variant's ratio to `quiet`, and the CPU the emperor used per
second of load (the API's own cost, when polled). Every load is bounded: wrk -d, pollers stop with it.

  bench/observe.py [--rounds 3] [--duration 8] [--liege target/release/liege]
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

VARIANTS = {
    "quiet": "disable-logging = true\n",
    "log": "",
    "log-json": "log-format = json\n",
    "polled": "disable-logging = true\n",
}
POLL_PATHS = ["/api/vassals", "/api/vassals/hello", "/api/vassals/hello/history?seconds=900", "/api/emperor",
              "/metrics"]


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def group_ticks(pgid):
    """CPU ticks of every process in process group `pgid` (the emperor, its vassal masters and workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def get(port, path, timeout=5.0):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Emperor:
    def __init__(self, liege, variant):
        self.root = Path(tempfile.mkdtemp(prefix="liege-observe-"))
        (self.root / "vassals").mkdir()
        shutil.copy(BENCH / "apps" / "hello.py", self.root / "vassals" / "hello.py")
        self.app_port = free_port()
        self.api_port = free_port()
        (self.root / "vassals" / "hello.ini").write_text(
            f"[uwsgi]\nhttp-socket = {HOST}:{self.app_port}\nwsgi-file = %dhello.py\nprocesses = 4\n"
            + VARIANTS[variant])
        self.proc = subprocess.Popen(
            [liege, "emperor", self.root / "vassals", "--api", f"{HOST}:{self.api_port}", "--run-dir",
             self.root / "run"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.root / "emperor.log", "wb"),
            start_new_session=True)
        wait_until(lambda: get(self.app_port, "/")[0] == 200, 30, "the vassal")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def poller(port, stop, counts, index):
    """One client: a keep-alive connection, 10 GETs a second, paced on a fixed schedule."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    next_at = time.monotonic() + index * 0.005
    i = index
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        next_at += 0.1
        try:
            conn.request("GET", POLL_PATHS[i % len(POLL_PATHS)])
            response = conn.getresponse()
            response.read()
            counts[index] += response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
        i += 1
    conn.close()


def measure(args, variant):
    emperor = Emperor(args.liege, variant)
    stop = threading.Event()
    counts = [0] * args.pollers
    threads = []
    try:
        subprocess.run(["wrk", "-t2", "-c10", "-d2s", f"http://{HOST}:{emperor.app_port}/"],
                       capture_output=True, timeout=30)  # warm-up
        if variant == "polled":
            threads = [threading.Thread(target=poller, args=(emperor.api_port, stop, counts, i), daemon=True)
                       for i in range(args.pollers)]
            for t in threads:
                t.start()
        before = cpu_ticks(emperor.proc.pid)
        group_before = group_ticks(emperor.proc.pid)
        out = subprocess.run(["wrk", "-t2", "-c10", f"-d{args.duration}s", f"http://{HOST}:{emperor.app_port}/"],
                             capture_output=True, text=True, timeout=args.duration + 30).stdout
        emperor_cpu = (cpu_ticks(emperor.proc.pid) - before) / CLK_TCK / args.duration
        group_seconds = (group_ticks(emperor.proc.pid) - group_before) / CLK_TCK
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        emperor.stop()
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))
    requests = int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1))
    polls = sum(counts) / args.duration if variant == "polled" else 0.0
    return rps, emperor_cpu, polls, group_seconds * 1e6 / max(requests, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--pollers", type=int, default=20)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--liege", default=str(ROOT / "target" / "release" / "liege"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    variants = args.variants.split(",")
    results = {v: [] for v in variants}
    for round_ in range(1, args.rounds + 1):
        for variant in variants:
            rps, cpu, polls, cpu_per_request = measure(args, variant)
            results[variant].append((rps, cpu, polls, cpu_per_request))
            extra = f", API answered {polls:.0f} calls/s" if variant == "polled" else ""
            print(f"round {round_} {variant:9s} {rps:9.0f} req/s, {cpu_per_request:5.1f} CPU-µs/req (all liege "
                  f"processes), emperor CPU {cpu * 100:5.1f} % of a core{extra}", flush=True)
    base = statistics.median(r[0] for r in results[variants[0]])
    base_cpu = statistics.median(r[3] for r in results[variants[0]])
    print(f"\nmedian of {args.rounds} round(s), {args.duration} s each (hello app, 4 processes, wrk -t2 -c10).")
    print("CPU-µs/req counts every liege process (emperor, master, workers); on a shared 2-core machine it is")
    print("steadier than req/s, and its ratio is the cost: 1.05 means 5 % more CPU per request than quiet.")
    print(f"{'variant':10s} {'req/s':>9s} {'ratio':>7s} {'CPU-µs/req':>11s} {'ratio':>7s} {'emperor CPU':>12s}")
    for variant in variants:
        rps = statistics.median(r[0] for r in results[variant])
        cpu = statistics.median(r[1] for r in results[variant])
        per_request = statistics.median(r[3] for r in results[variant])
        print(f"{variant:10s} {rps:9.0f} {rps / base:7.3f} {per_request:11.1f} {per_request / base_cpu:7.3f} "
              f"{cpu * 100:10.1f} %")


if __name__ == "__main__":
    main()
