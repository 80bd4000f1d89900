#!/usr/bin/env python3
"""The soak: mixed traffic against an emperor while it is reloaded, broken and shot at. Not a test.

Stdlib only, plus a liege binary (default target/release/liege). In a temp dir it starts `liege emperor` with
several vassals (one app, bench/soak_app.py-style, written into the dir: `/` hello, `/upload` echoes the
body's length and checksum, `/slow?ms=N`, `/stream?chunks=N`), then for `--minutes` (default 20):

  traffic   `--clients` threads (default 8), each a loop of: keep-alive bursts, fresh connections, uploads
            (64 KiB to 1 MiB, checked), slow requests (0.2-2 s), streamed responses (checked chunk by chunk).
            Every request is counted; a client never retries: whatever fails is reported with its cause.
            Before reusing an idle keep-alive connection a client checks, as urllib3's pool does, whether
            the server has closed it (a draining or killed worker); such connections are reopened and
            counted apart, since no request was sent on them.
  chaos     every `--chaos-interval` seconds (default 4) one of: touch a vassal file (graceful reload), chain
            reload through the API (`POST /api/vassals/NAME/chain-reload`, with the token), SIGHUP the emperor
            (reload all), SIGKILL a random worker, SIGKILL a random vassal master, break a vassal file (an
            unknown option: the old version must keep serving) and repair it `--repair-after` seconds later.
  watch     every 5 s: RSS of the emperor and of each vassal master, open fds of the emperor and masters, and
            the number of processes in the emperor's session (emperor + masters + workers).

The report: requests by kind; failures by cause, each matched against the kills (a failure is *explained*
when the request was in flight on a vassal whose worker or master was SIGKILLed at that moment); the
timeline of every action with the failures it explains; RSS/fd/process series with the growth from the
first to the last third of the run. The target: no unexplained failure, and a kill costs at most the
requests that were in flight in the process it killed (one per worker, with one thread per worker).
Exit status 1 when that target is missed (or on leaks: fds or processes growing), 0 otherwise.

  bench/soak.py [--minutes 20] [--liege target/release/liege] [--vassals 3] [--clients 8] [--seed N]
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent

APP = r'''
import hashlib, os, time
from urllib.parse import parse_qs

def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    pid = str(os.getpid())
    if path == "/upload":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        out = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", pid)])
        return [out]
    if path == "/slow":
        time.sleep(int(query.get("ms", ["500"])[0]) / 1000)
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", pid)])
        return [b"slow"]
    if path == "/stream":
        chunks = int(query.get("chunks", ["10"])[0])
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", pid)])
        def body():
            for i in range(chunks):
                time.sleep(0.02)
                yield f"chunk {i}\n".encode()
        return body()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", pid)])
    return [b"hello"]
'''

# Vassal variants: different worker counts and threading, so reloads and kills hit different shapes.
VASSAL_SHAPES = [
    "processes = 2\n",
    "processes = 3\nthreads = 2\n",
    "processes = 2\nlazy-apps = true\n",
    "processes = 1\n",
]

BROKEN = "this-option-does-not-exist = 1\n"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def now():
    return time.monotonic()


# --- /proc ----------------------------------------------------------------------------------------------------

def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def session_processes(sid):
    """(pid, ppid, comm) of every live process in session `sid` (the emperor is a session leader)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == sid:
            out.append((int(entry.name), int(fields[1]), comm + (" <zombie>" if fields[0] == "Z" else "")))
    return out


# --- the emperor ----------------------------------------------------------------------------------------------

class Emperor:
    def __init__(self, liege, vassals, keep):
        self.root = Path(tempfile.mkdtemp(prefix="liege-soak-"))
        self.keep = keep
        self.dir = self.root / "vassals"
        self.dir.mkdir()
        (self.dir / "soak_app.py").write_text(APP)
        self.api_port = free_port()
        self.ports = {}
        self.texts = {}
        self.threads = {}  # requests one worker serves at once
        self.processes = {}
        for i in range(vassals):
            name = f"v{i}"
            self.ports[name] = free_port()
            self.texts[name] = (f"[uwsgi]\nmaster = true\nhttp-socket = {HOST}:{self.ports[name]}\n"
                                f"wsgi-file = %dsoak_app.py\n{VASSAL_SHAPES[i % len(VASSAL_SHAPES)]}"
                                "disable-logging = true\n")
            self.threads[name] = 2 if "threads = 2" in self.texts[name] else 1
            self.processes[name] = int(self.texts[name].split("processes = ")[1].split()[0])
            (self.dir / f"{name}.ini").write_text(self.texts[name])
        self.log = open(self.root / "emperor.log", "wb")
        self.proc = subprocess.Popen(
            [liege, "emperor", str(self.dir), "--api", f"{HOST}:{self.api_port}", "--run-dir", str(self.root / "run")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.token = None
        deadline = now() + 60
        while now() < deadline:
            try:
                states = {v["name"]: v for v in self.api("/api/vassals")["vassals"]}
                if all(states.get(n, {}).get("state") == "running" and states[n]["workers"] for n in self.ports):
                    break
            except (OSError, ValueError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emperor exited with {self.proc.returncode}; see {self.root}/emperor.log")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the vassals did not all start in 60 s; see {self.root}/emperor.log")
        token_file = self.api("/api/emperor").get("token_file")
        self.token = Path(token_file).read_text().strip()

    def api(self, path, method="GET"):
        conn = http.client.HTTPConnection(HOST, self.api_port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if method == "POST" else {}
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status >= 400:
                raise ValueError(f"{method} {path}: {response.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            print("soak: the emperor did not stop within 30 s of SIGTERM; killing its session", file=sys.stderr)
        # Whatever is left in the session (there should be nothing) is killed, so nothing outlives the run.
        for pid, _, _ in session_processes(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


# --- traffic --------------------------------------------------------------------------------------------------

class Ledger:
    """Every request: (start, end, kind, vassal, cause or None)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.in_flight = defaultdict(int)  # vassal -> requests in flight now

        self.stale_connections = Counter()  # vassal -> idle keep-alive connections found closed before reuse

    def stale(self, vassal):
        with self.lock:
            self.stale_connections[vassal] += 1

    def begin(self, vassal):
        with self.lock:
            self.in_flight[vassal] += 1

    def end(self, start, kind, vassal, cause):
        with self.lock:
            self.in_flight[vassal] -= 1
            self.requests.append((start, now(), kind, vassal, cause))


def classify(error):
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, BrokenPipeError):
        return "broken pipe (sending)"
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed before the response"
    if isinstance(error, http.client.IncompleteRead):
        return "response cut short"
    if isinstance(error, socket.timeout):
        return "timeout"
    if isinstance(error, http.client.HTTPException):
        return f"bad HTTP ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


class Client(threading.Thread):
    KINDS = ["keepalive", "keepalive", "new", "new", "upload", "slow", "stream"]

    def __init__(self, index, emperor, ledger, stop, seed):
        super().__init__(daemon=True, name=f"client-{index}")
        self.emperor, self.ledger, self.stop_event = emperor, ledger, stop
        self.rng = random.Random(seed * 1000 + index)

    def run(self):
        while not self.stop_event.is_set():
            vassal = self.rng.choice(sorted(self.emperor.ports))
            kind = self.rng.choice(self.KINDS)
            getattr(self, kind)(vassal)
            self.stop_event.wait(self.rng.uniform(0, 0.05))

    def one(self, conn, vassal, kind, method, path, body=None, check=None, headers=None):
        """One request on `conn`; False if it failed (the connection is then unusable)."""
        start = now()
        self.ledger.begin(vassal)
        cause = None
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                cause = f"HTTP {response.status}"
            elif check and not check(data):
                cause = "wrong body"
        except (OSError, http.client.HTTPException) as error:
            cause = classify(error)
        self.ledger.end(start, kind, vassal, cause)
        return cause is None

    def connect(self, vassal, timeout=30):
        return http.client.HTTPConnection(HOST, self.emperor.ports[vassal], timeout=timeout)

    def keepalive(self, vassal):
        conn = self.connect(vassal)
        try:
            for i in range(self.rng.randint(2, 20)):
                if i and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
                    # The server closed this idle connection (a draining or killed worker): what every HTTP
                    # client's pool does (urllib3's is_connection_dropped) is to open a new one. That is not a
                    # retry: no request was sent on the dead connection. Counted apart.
                    self.ledger.stale(vassal)
                    conn.close()
                    conn = self.connect(vassal)
                if self.stop_event.is_set() or not self.one(conn, vassal, "keepalive", "GET", "/", check=b"hello".__eq__):
                    break
                # A pause, sometimes long enough for a reload to happen while the connection is idle.
                self.stop_event.wait(self.rng.choice([0, 0, 0.01, 0.2]))
        finally:
            conn.close()

    def new(self, vassal):
        conn = self.connect(vassal)
        try:
            self.one(conn, vassal, "new", "GET", "/", check=b"hello".__eq__, headers={"Connection": "close"})
        finally:
            conn.close()

    def upload(self, vassal):
        body = self.rng.randbytes(self.rng.randint(64 * 1024, 1024 * 1024))
        expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        conn = self.connect(vassal)
        try:
            self.one(conn, vassal, "upload", "POST", "/upload", body=body, check=expected.__eq__,
                     headers={"Content-Type": "application/octet-stream"})
        finally:
            conn.close()

    def slow(self, vassal):
        conn = self.connect(vassal)
        try:
            self.one(conn, vassal, "slow", "GET", f"/slow?ms={self.rng.randint(200, 2000)}", check=b"slow".__eq__)
        finally:
            conn.close()

    def stream(self, vassal):
        chunks = self.rng.randint(5, 50)
        expected = "".join(f"chunk {i}\n" for i in range(chunks)).encode()
        conn = self.connect(vassal)
        try:
            self.one(conn, vassal, "stream", "GET", f"/stream?chunks={chunks}", check=expected.__eq__)
        finally:
            conn.close()


# --- chaos ----------------------------------------------------------------------------------------------------

class Chaos(threading.Thread):
    ACTIONS = ["touch", "chain-reload", "sighup", "kill-worker", "kill-worker", "kill-master", "break"]

    def __init__(self, emperor, ledger, stop, args):
        super().__init__(daemon=True, name="chaos")
        self.emperor, self.ledger, self.stop_event, self.args = emperor, ledger, stop, args
        self.rng = random.Random(args.seed)
        self.timeline = []  # (time, action, vassal, detail, in_flight_on_that_vassal)
        self.broken = {}  # vassal -> repair time
        self.errors = []

    def note(self, action, vassal, detail):
        with self.ledger.lock:
            in_flight = self.ledger.in_flight[vassal] if vassal else sum(self.ledger.in_flight.values())
        self.timeline.append((now(), action, vassal, detail, in_flight))

    def run(self):
        while not self.stop_event.wait(self.rng.uniform(0.5, 1.5) * self.args.chaos_interval):
            for vassal, due in list(self.broken.items()):
                if now() >= due:
                    self.repair(vassal)
            try:
                self.act(self.rng.choice(self.ACTIONS))
            except (OSError, ValueError, KeyError, http.client.HTTPException) as error:
                self.errors.append(f"{now():.1f}: {type(error).__name__}: {error}")
        for vassal in list(self.broken):
            self.repair(vassal)

    def ini(self, vassal):
        return self.emperor.dir / f"{vassal}.ini"

    def repair(self, vassal):
        self.ini(vassal).write_text(self.emperor.texts[vassal])
        del self.broken[vassal]
        self.note("repair", vassal, "original file written back (a reload)")

    def status(self, vassal):
        return self.emperor.api(f"/api/vassals/{vassal}")

    def act(self, action):
        vassal = self.rng.choice(sorted(self.emperor.ports))
        if action == "touch":
            os.utime(self.ini(vassal))
            self.note("touch", vassal, "graceful reload")
        elif action == "chain-reload":
            self.emperor.api(f"/api/vassals/{vassal}/chain-reload", method="POST")
            self.note("chain-reload", vassal, "API")
        elif action == "sighup":
            os.kill(self.emperor.proc.pid, signal.SIGHUP)
            self.note("sighup", None, "emperor: reload every vassal")
        elif action == "kill-worker":
            workers = [w["pid"] for w in self.status(vassal)["workers"] if w.get("pid")]
            if workers:
                pid = self.rng.choice(workers)
                self.note("kill-worker", vassal, f"SIGKILL worker {pid}")
                os.kill(pid, signal.SIGKILL)
        elif action == "kill-master":
            pid = self.status(vassal).get("pid")
            if pid:
                self.note("kill-master", vassal, f"SIGKILL master {pid}")
                os.kill(pid, signal.SIGKILL)
        elif action == "break" and vassal not in self.broken:
            self.ini(vassal).write_text(self.emperor.texts[vassal] + BROKEN)
            self.broken[vassal] = now() + self.args.repair_after
            self.note("break", vassal, "unknown option written: the old version must keep serving")


# --- watching -------------------------------------------------------------------------------------------------

class Watch(threading.Thread):
    def __init__(self, emperor, stop, interval=5.0):
        super().__init__(daemon=True, name="watch")
        self.emperor, self.stop_event, self.interval = emperor, stop, interval
        self.samples = []  # (time, emperor rss, emperor fds, {vassal: (master rss, master fds)}, processes)

    def sample(self):
        masters = {}
        try:
            for v in self.emperor.api("/api/vassals")["vassals"]:
                if v.get("pid"):
                    masters[v["name"]] = (rss_kib(v["pid"]), fd_count(v["pid"]))
        except (OSError, ValueError, http.client.HTTPException):
            pass
        pid = self.emperor.proc.pid
        processes = session_processes(pid)
        zombies = sum(1 for p in processes if p[2].endswith("<zombie>"))
        self.samples.append((now(), rss_kib(pid), fd_count(pid), masters, len(processes), zombies))

    def run(self):
        self.sample()
        while not self.stop_event.wait(self.interval):
            self.sample()
        self.sample()


# --- the report -----------------------------------------------------------------------------------------------

def thirds(values):
    """Median of the first and of the last third of a series (robust to a reload's momentary peak)."""
    values = [v for v in values if v is not None]
    if len(values) < 3:
        return (values[0], values[-1]) if values else (None, None)
    k = max(1, len(values) // 3)
    return statistics.median(values[:k]), statistics.median(values[-k:])


def report(args, t0, ledger, chaos, watch, emperor):
    requests = ledger.requests
    failed = [r for r in requests if r[4] is not None]
    kills = [e for e in chaos.timeline if e[1] in ("kill-worker", "kill-master")]
    # A kill explains a failure on its vassal that was in flight when the kill happened (the request
    # started before it and ended after it, allowing 50 ms for the signal to land and the client to notice).
    explained = {}
    for i, (start, end, _, vassal, _) in enumerate(failed):
        for kill in kills:
            if kill[2] == vassal and start <= kill[0] + 0.05 and end >= kill[0]:
                explained[i] = kill
                break
    per_kill = Counter(id(k) for k in explained.values())

    def rel(t):
        return f"{t - t0:8.2f}s"

    print(f"\n=== soak: {args.minutes} min, {len(emperor.ports)} vassals, {args.clients} clients, seed {args.seed} ===")
    by_kind = Counter(r[2] for r in requests)
    failed_by_kind = Counter(r[2] for r in failed)
    print(f"requests: {len(requests)} ({len(requests) / max(now() - t0, 1):.0f}/s), failed: {len(failed)}")
    for kind in sorted(by_kind):
        print(f"  {kind:10s} {by_kind[kind]:8d} requests, {failed_by_kind[kind]:5d} failed")
    print(f"idle keep-alive connections the server had closed, found before reuse and reopened (not failures): "
          f"{sum(ledger.stale_connections.values())}")
    print("failures by cause (explained = in flight on a vassal when one of its processes was SIGKILLed):")
    causes = Counter(r[4] for r in failed)
    for cause, count in causes.most_common():
        n_explained = sum(1 for i, r in enumerate(failed) if r[4] == cause and i in explained)
        print(f"  {count:6d}  {cause}  ({n_explained} explained, {count - n_explained} unexplained)")

    print("\ntimeline (in flight = requests open on that vassal at that moment):")
    for event in chaos.timeline:
        t, action, vassal, detail, in_flight = event
        cost = per_kill.get(id(event), 0) if action.startswith("kill") else None
        after = [r for r in failed if r[1] >= t and r[1] < t + 3 and (vassal is None or r[3] == vassal)]
        extra = f", {cost} failed request(s) explained" if cost is not None else ""
        unexplained_after = [r for r in after if failed.index(r) not in explained]
        if unexplained_after:
            extra += f", {len(unexplained_after)} unexplained failure(s) within 3 s: " + ", ".join(
                sorted({r[4] for r in unexplained_after}))
        print(f"  {rel(t)}  {action:12s} {vassal or '*':4s} {detail} (in flight {in_flight}{extra})")
    for error in chaos.errors:
        print(f"  chaos action failed: {error}")

    unexplained = [r for i, r in enumerate(failed) if i not in explained]
    if unexplained:
        print("\nunexplained failures (first 30):")
        for start, end, kind, vassal, cause in unexplained[:30]:
            print(f"  {rel(start)} -> {rel(end)}  {vassal} {kind:10s} {cause}")

    print("\nresources (median of the first third -> of the last third; max):")
    er, ef = [s[1] for s in watch.samples], [s[2] for s in watch.samples]
    procs = [s[4] for s in watch.samples]
    zombies = [s[5] for s in watch.samples]
    a, b = thirds(er)
    print(f"  emperor RSS   {a} -> {b} KiB (max {max(v for v in er if v is not None)})")
    a_fd, b_fd = thirds(ef)
    print(f"  emperor fds   {a_fd} -> {b_fd} (max {max(v for v in ef if v is not None)})")
    for vassal in sorted(emperor.ports):
        mr = [s[3].get(vassal, (None, None))[0] for s in watch.samples]
        mf = [s[3].get(vassal, (None, None))[1] for s in watch.samples]
        if any(v is not None for v in mr):
            a, b = thirds(mr)
            c, d = thirds(mf)
            print(f"  master {vassal:4s}   RSS {a} -> {b} KiB (max {max(v for v in mr if v is not None)}), "
                  f"fds {c} -> {d}")
    a_p, b_p = thirds(procs)
    print(f"  processes     {a_p} -> {b_p} (max {max(procs)}), zombies seen: max {max(zombies)}")

    problems = []
    if unexplained:
        problems.append(f"{len(unexplained)} unexplained failed request(s)")
    # A worker kill may cost the requests in flight in that one worker (threads of it); with one thread that
    # is one. A master kill takes its workers with it: the cost is bounded by what was in flight on the vassal.
    for event in kills:
        cost = per_kill.get(id(event), 0)
        vassal = event[2]
        budget = emperor.threads[vassal] * (emperor.processes[vassal] if event[1] == "kill-master" else 1)
        if cost > budget:
            problems.append(f"{event[1]} at {rel(event[0]).strip()} cost {cost} requests (in flight: {event[4]})")
    if a_fd is not None and b_fd is not None and b_fd > a_fd + 8:
        problems.append(f"emperor fds grew {a_fd} -> {b_fd}")
    if a_p is not None and b_p is not None and b_p > a_p + 2:
        problems.append(f"processes grew {a_p} -> {b_p}")
    print("\nverdict: " + ("OK" if not problems else "; ".join(problems)))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--liege", default=str(ROOT / "target" / "release" / "liege"))
    ap.add_argument("--vassals", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--chaos-interval", type=float, default=4.0, help="mean seconds between actions")
    ap.add_argument("--repair-after", type=float, default=6.0, help="seconds a broken vassal file stays broken")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (emperor.log) after the run")
    args = ap.parse_args()
    if not os.access(args.liege, os.X_OK):
        sys.exit(f"soak: no liege binary at {args.liege} (cargo build --release, or --liege PATH)")

    emperor = Emperor(args.liege, args.vassals, args.keep)
    print(f"soak: emperor pid {emperor.proc.pid}, API {HOST}:{emperor.api_port}, vassals {emperor.ports}, "
          f"dir {emperor.root}", flush=True)
    stop = threading.Event()
    ledger = Ledger()
    clients = [Client(i, emperor, ledger, stop, args.seed) for i in range(args.clients)]
    chaos = Chaos(emperor, ledger, stop, args)
    watch = Watch(emperor, stop)
    t0 = now()
    status = 2
    try:
        watch.start()
        for client in clients:
            client.start()
        chaos.start()
        end = t0 + args.minutes * 60
        while now() < end and emperor.proc.poll() is None:
            time.sleep(min(10, max(0.1, end - now())))
            with ledger.lock:
                done, bad = len(ledger.requests), sum(1 for r in ledger.requests if r[4])
            print(f"soak: {now() - t0:6.0f}s  {done} requests, {bad} failed, {len(chaos.timeline)} actions", flush=True)
        if emperor.proc.poll() is not None:
            print(f"soak: the emperor exited with {emperor.proc.returncode}!", file=sys.stderr)
        stop.set()
        chaos.join(30)
        for client in clients:
            client.join(40)
        watch.join(10)
        status = report(args, t0, ledger, chaos, watch, emperor)
        if emperor.proc.poll() is not None:
            status = 1
    finally:
        stop.set()
        emperor.stop()
        if args.keep:
            print(f"soak: kept {emperor.root}")
    sys.exit(status)


if __name__ == "__main__":
    main()
