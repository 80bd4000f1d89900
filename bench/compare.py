#!/usr/bin/env python3
"""Side-by-side benchmark of liege against uWSGI (pyuwsgi), Gunicorn and Granian.

Stdlib only. Usually started through `bench/run`, which prepares bench/.venv, wrk and the liege build.

For each app and each server, one after another in ONE run and with the same number of processes:
start the server in its own process group, wait (bounded) until it answers, check the body, warm up,
then run `wrk --latency` against it while measuring the CPU time of the server's whole process tree
(from /proc/PID/stat), read the PSS of the tree (from /proc/PID/smaps_rollup), stop the server
(signal to its process group, SIGKILL after a grace period) and verify nothing is left.

Only 127.0.0.1 is ever targeted; every load is bounded in time (wrk -d, plus a subprocess timeout).
See bench/README.md for the meaning of each column and the caveats.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
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

import nginx_conf
import scenarios

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS_DIR = BENCH / 'apps'
VENV_BIN = BENCH / '.venv' / 'bin'
RESULTS = BENCH / 'results'
CLK_TCK = os.sysconf('SC_CLK_TCK')
HOST = '127.0.0.1'

ALL_SERVERS = scenarios.ALL_SERVERS


# --------------------------------------------------------------------------------------------- apps

def _check_hello(body):
    return body == b'Hello, World!'


def _check_seed(body):
    return body.startswith(b'hello worldhello world2123456789') and b'997998999\n' in body


def _check_io(body):
    return body == b'ok\n'


APPS = {
    'hello': {'file': 'hello.py', 'module': 'hello', 'check': _check_hello},
    'seed': {'file': 'seed_app.py', 'module': 'seed_app', 'check': _check_seed},
    'io': {'file': 'io_bound.py', 'module': 'io_bound', 'check': _check_io},
}


# ------------------------------------------------------------------------------------------ servers

def tool(name):
    """A tool from bench/.venv/bin, else from PATH."""
    p = VENV_BIN / name
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f'{name} not found in {VENV_BIN} nor on PATH (run bench/run to install it)')
    return found


def server_spec(name, app, port, args, threads=None, processes=None, unix=None, socket_kind='http', backlog=None,
                nginx_dir=None):
    """argv, stop signal and wrk connection count for one server.

    threads=None: no thread flags at all (each server's own default); threads=N: N Python threads per process.
    processes: worker processes (default --processes). unix=PATH: listen on that unix socket instead of
    127.0.0.1:port (only liege and uWSGI, behind nginx); socket_kind 'uwsgi' = the binary uwsgi protocol
    (liege --socket, uWSGI --socket; server name 'uwsgi'). backlog=N: the same listen backlog for everyone
    (liege/uWSGI --listen, Gunicorn/Granian --backlog). name 'nginx': the `return 200` floor (nginx_dir).
    """
    app_file = str(APPS_DIR / APPS[app]['file']) if app else None
    module = APPS[app]['module'] if app else None
    addr = unix or f'{HOST}:{port}'
    n = str(processes or args.processes)
    conns = args.io_connections if threads is not None else args.connections
    stop = signal.SIGTERM
    if unix and name not in ('liege', 'liege-pip', 'uwsgi', 'uwsgi-http11'):
        raise ValueError(f'{name} does not serve behind nginx here')
    if socket_kind == 'uwsgi' and name not in ('liege', 'liege-pip', 'uwsgi'):
        raise ValueError(f'{name} does not speak the uwsgi protocol')
    if name == 'nginx':
        argv = nginx_conf.write_config(nginx_dir, port, args.nginx_workers)
        return argv, signal.SIGQUIT, conns
    if name in ('liege', 'liege-pip'):
        exe = args.liege if name == 'liege' else args.liege_pip
        if exe is None or not Path(exe).exists():
            raise FileNotFoundError(f'{exe} does not exist (bench/run builds the binary; --liege-pip names a venv\'s '
                                    'liege command)')
        sock = '--socket' if socket_kind == 'uwsgi' else '--http-socket'
        argv = [str(exe), sock, addr, '--wsgi-file', app_file,
                '--processes', n, '--master', '--disable-logging']
        if threads is not None and threads > 1:
            argv += ['--threads', str(threads)]
        if backlog:
            argv += ['--listen', str(backlog)]
        # Later options win, so these can also undo the defaults above (--disable-logging=false).
        argv += shlex.split(args.liege_args)
    elif name in ('uwsgi-http11', 'uwsgi-http', 'uwsgi'):
        sock = {'uwsgi-http11': '--http11-socket', 'uwsgi-http': '--http-socket', 'uwsgi': '--socket'}[name]
        argv = [tool('uwsgi'), sock, addr, '--wsgi-file', app_file,
                '--processes', n, '--master', '--disable-logging']
        if threads is not None and threads > 1:
            argv += ['--threads', str(threads)]
        if backlog:
            argv += ['--listen', str(backlog)]
        if name == 'uwsgi-http11':
            # http11 pins each kept-alive connection to one worker (thread): more clients than
            # processes x threads would just wait, so wrk gets at most that many connections.
            slots = int(n) * (threads or 1)
            conns = args.http11_connections or slots
        # uWSGI 2.0: SIGTERM on the master means "reload", SIGINT/SIGQUIT mean stop.
        stop = signal.SIGINT
    elif name == 'gunicorn':
        # Gunicorn has no access log unless --access-logfile is given.
        argv = [tool('gunicorn'), '-w', n, '-b', addr, '--chdir', str(APPS_DIR),
                '--log-level', 'warning']
        if backlog:
            argv += ['--backlog', str(backlog)]
        argv += [f'{module}:application']
    elif name == 'granian':
        argv = [tool('granian'), '--interface', 'wsgi', '--workers', n, '--host', HOST, '--port', str(port),
                '--no-access-log', '--log-level', 'warning', '--working-dir', str(APPS_DIR)]
        if threads is not None:
            argv += ['--blocking-threads', str(threads)]
        if backlog:
            argv += ['--backlog', str(backlog)]
        argv += [f'{module}:application']
    else:
        raise ValueError(f'unknown server {name!r}')
    return argv, stop, conns


# ------------------------------------------------------------------------------------------- /proc

def _read_stat(pid):
    """(ppid, pgrp, state, cpu_ticks incl. reaped children, starttime) or None if gone."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            data = f.read().decode('ascii', 'replace')
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(')') + 2:].split()
    # rest[0] = state (field 3); field n is rest[n - 3]
    state = rest[0]
    ppid, pgrp = int(rest[1]), int(rest[2])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    starttime = int(rest[19])
    return ppid, pgrp, state, utime + stime + cutime + cstime, starttime


def _all_stats():
    out = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            st = _read_stat(int(d))
            if st is not None:
                out[int(d)] = st
    return out


def process_tree(root, pgid=None):
    """{pid: stat} for root, all its descendants (via ppid), and everything in process group pgid."""
    stats = _all_stats()
    children = {}
    for pid, st in stats.items():
        children.setdefault(st[0], []).append(pid)
    tree = {}
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree[pid] = stats[pid]
        todo.extend(children.get(pid, ()))
    if pgid is not None:
        for pid, st in stats.items():
            if st[1] == pgid:
                tree.setdefault(pid, st)
    return tree


def tree_cpu_ticks(tree):
    # utime+stime of each process covers all its threads; cutime+cstime keeps the time of
    # children that exited and were reaped during the window, so the delta stays honest.
    return sum(st[3] for st in tree.values() if st[2] != 'Z')


def pss_kib(pid):
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


def tcp_passive_opens():
    """The kernel's count of accepted TCP connections (/proc/net/snmp Tcp: PassiveOpens), machine-wide.

    Its delta over a run ÷ requests = new connections per request: ~1 when every request really came on a
    new connection, ~0 on keep-alive. A server that ignores the client's `Connection: close` shows ~0 here.
    Other sessions' loopback connections count too (a few per second: noise next to thousands)."""
    try:
        with open('/proc/net/snmp') as f:
            rows = [line.split() for line in f if line.startswith('Tcp:')]
        return int(rows[1][rows[0].index('PassiveOpens')])
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu():
    with open('/proc/stat') as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals[:8]), idle


# -------------------------------------------------------------------------------------- lifecycle

class Server:
    """One server process group; always stopped by stop(), also from the global cleanup."""

    running = []

    def __init__(self, name, argv, stop_signal, log_path):
        self.name = name
        self.argv = argv
        self.stop_signal = stop_signal
        self.log_path = log_path
        self.seen = {}  # pid -> starttime of every process ever seen in the tree
        self.log = open(log_path, 'wb')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=str(APPS_DIR))
        self.pgid = self.proc.pid
        Server.running.append(self)

    def tree(self):
        t = process_tree(self.proc.pid, self.pgid)
        for pid, st in t.items():
            self.seen.setdefault(pid, st[4])
        return t

    def _alive_members(self):
        alive = []
        for pid, st in _all_stats().items():
            if st[2] == 'Z':
                continue
            if st[1] == self.pgid or self.seen.get(pid) == st[4]:
                alive.append(pid)
        return alive

    def stop(self, grace=10.0):
        """Signal the group, SIGKILL after `grace` s; return the pids still alive at the end (should be [])."""
        if self not in Server.running:
            return []
        self.tree()
        try:
            os.killpg(self.pgid, self.stop_signal)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not self._alive_members():
                break
            time.sleep(0.05)
        left = self._alive_members()
        if left or self.proc.poll() is None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 5
            while self._alive_members() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.killed = bool(left)
        Server.running.remove(self)
        self.log.close()
        return self._alive_members()

    def log_tail(self, n=15):
        try:
            lines = Path(self.log_path).read_text(errors='replace').splitlines()
        except OSError:
            return ''
        return '\n'.join(lines[-n:])


def stop_all():
    for s in list(Server.running):
        try:
            s.stop(grace=3.0)
        except Exception as e:  # keep cleaning the others
            print(f'  cleanup of {s.name} failed: {e}', file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(server, port, timeout, retry_statuses=()):
    """GET / until the server answers; (status, body, seconds) or raise with the reason.

    retry_statuses: answers that mean "not yet" (nginx's 502 while the server behind it still starts).
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f'exited with code {server.proc.returncode} before answering')
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=10)
            c.request('GET', '/')
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status not in retry_statuses:
                return r.status, body, time.monotonic() - t0
            last = f'HTTP {r.status}'
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f'no answer within {timeout:.0f} s (last error: {last!r})')


def wait_listening(server, addr, timeout):
    """Until something accepts on `addr` (a unix socket path or (host, port)): the uwsgi protocol cannot be
    probed with a GET. The probe connection is closed without a request (both servers shrug that off)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f'exited with code {server.proc.returncode} before listening on {addr}')
        try:
            with socket.socket(socket.AF_INET if isinstance(addr, tuple) else socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(addr if isinstance(addr, tuple) else str(addr))
            return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f'not listening on {addr} within {timeout:.0f} s (last error: {last!r})')


# -------------------------------------------------------------------------------------------- wrk

_UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1000.0, 'm': 60000.0, 'h': 3600000.0}


def _ms(text):
    m = re.fullmatch(r'([\d.]+)(us|ms|s|m|h)', text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {'requests': None, 'rps': None, 'p50_ms': None, 'p99_ms': None, 'avg_ms': None, 'max_ms': None,
         'non2xx': 0, 'socket_errors': {'connect': 0, 'read': 0, 'write': 0, 'timeout': 0}}
    m = re.search(r'^\s*(\d+) requests in ([\d.]+)(\w+)', out, re.M)
    if m:
        r['requests'] = int(m.group(1))
    m = re.search(r'^Requests/sec:\s+([\d.]+)', out, re.M)
    if m:
        r['rps'] = float(m.group(1))
    m = re.search(r'^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)', out, re.M)
    if m:
        r['avg_ms'], r['max_ms'] = _ms(m.group(1)), _ms(m.group(3))
    for pct, key in (('50', 'p50_ms'), ('99', 'p99_ms')):
        m = re.search(rf'^\s*{pct}%\s+(\S+)', out, re.M)
        if m:
            r[key] = _ms(m.group(1))
    m = re.search(r'Non-2xx or 3xx responses:\s+(\d+)', out)
    if m:
        r['non2xx'] = int(m.group(1))
    m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
    if m:
        r['socket_errors'] = dict(zip(('connect', 'read', 'write', 'timeout'), map(int, m.groups())))
    return r


def run_wrk(args, port, conns, duration, latency=True, headers=(), threads=None):
    wrk_threads = max(1, min(threads or args.wrk_threads, conns))
    argv = ['wrk', f'-t{wrk_threads}', f'-c{conns}', f'-d{duration}s', '--timeout', f'{args.wrk_timeout}s']
    for h in headers:
        argv += ['-H', h]
    if latency:
        argv.append('--latency')
    argv.append(f'http://{HOST}:{port}/')
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=duration + 30)
    if p.returncode != 0:
        raise RuntimeError(f'wrk failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}')
    return argv, p.stdout


# ----------------------------------------------------------------------------------------- one run

class NewcomerProbe:
    """During a measured run, a newcomer every `interval` s: a fresh connection, `GET /`, read, close.

    Under overload, wrk's latency only covers answered requests on connections it already holds; this asks
    whether a client arriving now is served, and how fast (a server that pins connections to busy workers
    lets newcomers wait until --wrk-timeout). Bounded: at most duration / interval probes, each capped by
    `timeout`, and the thread is joined after wrk ends."""

    def __init__(self, port, duration, timeout, interval=0.25):
        self.port, self.timeout, self.interval = port, timeout, interval
        self.limit = max(1, int(duration / interval))
        self.latencies, self.failures = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for _ in range(self.limit):
            if self.stop.is_set():
                return
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
                c.request('GET', '/')
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    self.latencies.append(1000 * (time.monotonic() - t0))
                else:
                    self.failures.append(f'HTTP {r.status}')
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(type(e).__name__)
            self.stop.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(self.timeout + 5)

    def result(self):
        lat = sorted(self.latencies)
        n = len(lat) + len(self.failures)
        return {'newcomers': n, 'newcomer_failures': len(self.failures),
                'newcomer_failure_kinds': sorted(set(self.failures)),
                'newcomer_p50_ms': statistics.median(lat) if lat else None,
                'newcomer_max_ms': lat[-1] if lat else None}


def _measure_cpu(servers):
    return {k: tree_cpu_ticks(srv.tree()) for k, srv in servers.items()}


def bench_one(args, case):
    """Start the case's server (and nginx in front of it, if any), check, warm up, measure, stop.

    case: a dict from scenarios.case(): app, server, label, threads, processes, conns, wrk_threads,
    headers (extra wrk -H), front (None or an nginx_conf front), backlog, ref.
    """
    app, name, label, threads, front = case['app'], case['server'], case['label'], case['threads'], case['front']
    port = free_port()
    res = {'app': app, 'server': label, 'server_kind': name, 'threads': threads, 'front': front,
           'ref': case.get('ref'), 'processes_asked': case.get('processes') or args.processes,
           'workers_variant': case.get('processes') is not None,
           'wrk_headers': list(case.get('headers') or ()), 'status': 'ok'}
    tmp = Path(tempfile.mkdtemp(prefix='lb-', dir='/tmp'))  # short: a unix socket path has 108 bytes
    started = {}
    try:
        tcp_up = bool(front) and args.nginx_upstream == 'tcp'
        sock = tmp / 'app.sock' if front and not tcp_up else None
        up_port = free_port() if tcp_up else None
        kind = 'uwsgi' if front in ('uwsgi', 'uwsgi-ka') else 'http'
        try:
            argv, stop_sig, conns = server_spec(
                name, app, up_port or port, args, threads, processes=case.get('processes'), unix=sock,
                socket_kind=kind, backlog=case.get('backlog'), nginx_dir=tmp / 'nginx')
        except FileNotFoundError as e:
            res.update(status='skipped', error=str(e))
            return res
        if case.get('conns'):
            conns = case['conns']
        res['command'] = argv
        res['connections'] = conns
        if front:
            res['nginx_upstream'] = args.nginx_upstream
        safe = re.sub(r'[^A-Za-z0-9_.-]+', '_', label)
        log_path = args.logdir / f'{app or "none"}-{safe}{"" if threads is None else f"-t{threads}"}.log'
        print(f'  {label:<30} c{conns:<5}... ', end='', flush=True)
        try:
            server = Server(label, argv, stop_sig, log_path)
        except OSError as e:
            res.update(status='failed', error=f'could not start: {e}')
            print(res['error'])
            return res
        started['server'] = server
        target = server
        try:
            if front:
                wait_listening(server, sock or (HOST, up_port), args.start_timeout)
                nargv = nginx_conf.write_config(tmp / 'nginx', port, args.nginx_workers, front=front,
                                                upstream=f'unix:{sock}' if sock else f'{HOST}:{up_port}',
                                                keepalive=args.nginx_keepalive)
                res['nginx_command'] = nargv
                res['nginx_conf'] = (tmp / 'nginx' / 'nginx.conf').read_text()
                target = Server(f'nginx-{label}', nargv, signal.SIGQUIT, args.logdir / f'nginx-{safe}.log')
                started['nginx'] = target
            status, body, took = wait_ready(target, port, args.start_timeout,
                                            retry_statuses=(502, 503, 504) if front else ())
        except RuntimeError as e:
            tail = server.log_tail()
            last = next((l.strip() for l in reversed(tail.splitlines()) if l.strip()), '')
            res.update(status='failed', error=f'{e}' + (f' — log: {last}' if last else ''), log_tail=tail)
            print(f'FAILED: {res["error"]}')
            return res
        res['ready_after_s'] = round(took, 3)
        res['first_status'] = status
        check = APPS[app]['check'] if app else _check_hello
        res['body_ok'] = check(body)
        res['body_len'] = len(body)
        if status != 200:
            res.update(status='failed', error=f'first GET / answered {status}: {body[:200]!r}')
            print(f'FAILED: {res["error"]}')
            return res
        if not res['body_ok']:
            print(f'(unexpected body, {len(body)} bytes: {body[:60]!r}) ', end='')
        headers, wthreads = case.get('headers') or (), case.get('wrk_threads')
        if args.warmup > 0:
            run_wrk(args, port, conns, args.warmup, latency=False, headers=headers, threads=wthreads)
        cpu0 = _measure_cpu(started)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        m0 = machine_cpu()
        opens0 = tcp_passive_opens()
        t0 = time.monotonic()
        if case.get('probe'):
            with NewcomerProbe(port, args.duration, args.wrk_timeout) as probe:
                wrk_argv, out = run_wrk(args, port, conns, args.duration, headers=headers, threads=wthreads)
            res.update(probe.result())
        else:
            wrk_argv, out = run_wrk(args, port, conns, args.duration, headers=headers, threads=wthreads)
        wall = time.monotonic() - t0
        opens1 = tcp_passive_opens()
        m1 = machine_cpu()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = _measure_cpu(started)
        w = parse_wrk(out)
        res['wrk_command'] = wrk_argv
        res['wrk'] = w
        res['wrk_output'] = out
        res['rps'] = w['rps']
        res['p50_ms'] = w['p50_ms']
        res['p99_ms'] = w['p99_ms']
        res['max_ms'] = w['max_ms']
        res['requests'] = w['requests']
        if opens0 is not None and opens1 is not None and w['requests']:
            # TCP connections accepted per request (by nginx, when it is in front: its upstream is a unix socket)
            res['conns_per_req'] = (opens1 - opens0) / w['requests']
        # wrk counts a connection the server closes after its response (uwsgi --http-socket does so on
        # every request) as a socket "read" error, so read errors are kept apart from the real failures.
        se = w['socket_errors']
        res['errors'] = w['non2xx'] + se['connect'] + se['write'] + se['timeout']
        res['timeouts'] = se['timeout']
        res['read_errors'] = se['read']
        cpu_s = (cpu1['server'] - cpu0['server']) / CLK_TCK
        res['server_cpu_s'] = cpu_s
        res['server_cpu_pct'] = round(100 * cpu_s / wall, 1)
        res['cpu_us_per_req'] = (1e6 * cpu_s / w['requests']) if w['requests'] else None
        nginx_s = 0.0
        if 'nginx' in started:
            nginx_s = (cpu1['nginx'] - cpu0['nginx']) / CLK_TCK
            res['nginx_cpu_pct'] = round(100 * nginx_s / wall, 1)
            res['nginx_cpu_us_per_req'] = (1e6 * nginx_s / w['requests']) if w['requests'] else None
        wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        res['wrk_cpu_pct'] = round(100 * wrk_cpu / wall, 1)
        busy = (m1[0] - m0[0]) - (m1[1] - m0[1])
        res['machine_busy_pct'] = round(100 * busy / max(1, m1[0] - m0[0]) * os.cpu_count(), 1)
        # The rest: the kernel's loopback/softirq work not charged to a process, plus anything else running
        # on the machine. Tens of % is normal; much more means another load skewed this measurement.
        res['other_cpu_pct'] = round(res['machine_busy_pct'] - res['server_cpu_pct'] - res['wrk_cpu_pct']
                                     - res.get('nginx_cpu_pct', 0), 1)
        # PSS after the run, over the server's whole tree (not nginx's); "workers" = every process but the root.
        tree = server.tree()
        pss = {pid: pss_kib(pid) for pid in tree if tree[pid][2] != 'Z'}
        pss = {pid: v for pid, v in pss.items() if v is not None}
        root = server.proc.pid
        workers = [v for pid, v in pss.items() if pid != root]
        res['processes'] = len(pss)
        res['pss_mib'] = sum(pss.values()) / 1024
        res['pss_root_mib'] = pss.get(root, 0) / 1024
        res['pss_worker_avg_mib'] = (sum(workers) / len(workers) / 1024) if workers else None
        extra = ''
        if 'nginx' in started:
            extra = f', nginx {fmt_num(res["nginx_cpu_us_per_req"], 1)} CPU-µs/req'
        print(f'{w["rps"] or 0:,.0f} req/s, p50 {fmt_ms(w["p50_ms"])} p99 {fmt_ms(w["p99_ms"])}, '
              f'{fmt_num(res["cpu_us_per_req"], 1)} CPU-µs/req{extra}, PSS {res["pss_mib"]:.1f} MiB '
              f'({res["processes"]} procs), errors {res["errors"]}, read errors {res["read_errors"]}'
              f'; CPU: server {res["server_cpu_pct"]:.0f}%, wrk {res["wrk_cpu_pct"]:.0f}%, '
              f'other {res["other_cpu_pct"]:.0f}%')
    except Exception as e:
        res.update(status='failed', error=f'{type(e).__name__}: {e}')
        print(f'FAILED: {res["error"]}')
    finally:
        for key in ('nginx', 'server'):  # nginx first: the server must not see it retry a dead upstream
            srv = started.get(key)
            if srv is None:
                continue
            left = srv.stop(args.stop_grace)
            if key == 'server':
                res['stopped_with_sigkill'] = getattr(srv, 'killed', False)
            if left:
                res.setdefault('leftover_pids', []).extend(left)
                print(f'  WARNING: {srv.name} left processes behind: {left}', file=sys.stderr)
            if res['status'] == 'ok' and getattr(srv, 'killed', False):
                print(f'  note: {srv.name} needed SIGKILL after {args.stop_grace:.0f} s')
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def python_floor(app, repeats=5, target_seconds=0.3):
    """CPU-µs per call of the app alone in a Python loop (bench/floor.py in bench/.venv's interpreter)."""
    py = str(VENV_BIN / 'python') if (VENV_BIN / 'python').exists() else sys.executable
    argv = [py, str(BENCH / 'floor.py'), str(APPS_DIR / APPS[app]['file']), '--repeats', str(repeats),
            '--target-seconds', str(target_seconds)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=str(APPS_DIR))
    if p.returncode != 0:
        raise RuntimeError(f'floor.py failed ({p.returncode}): {p.stderr.strip()[-400:]}')
    return json.loads(p.stdout)


# ------------------------------------------------------------------------------- static files (--scenario static)

STATIC_SIZES = {'1k': 1024, '1m': 1 << 20}


def _nginx_static_conf(workdir, port, root, processes):
    for sub in ('client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs'):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    user = 'user root;\n' if os.geteuid() == 0 else ''
    conf = workdir / 'nginx.conf'
    conf.write_text(f"""daemon off;
master_process on;
worker_processes {processes};
{user}pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    types {{ application/octet-stream bin; }}
    server {{
        listen {HOST}:{port};
        location /s/ {{ alias {root}/; }}
        location / {{ return 200 "ok"; }}
    }}
}}
""")
    return conf


def bench_static(args):
    """liege's static-map against nginx serving the same 1 KiB and 1 MiB files: req/s and server CPU-µs
    per request (the whole process tree, from /proc), same process count, same wrk load."""
    work = Path(tempfile.mkdtemp(prefix='liege-bench-static-'))
    root = work / 'files'
    root.mkdir()
    for name, size in STATIC_SIZES.items():
        (root / f'{name}.bin').write_bytes(os.urandom(size))
    rows = []
    try:
        for server_name in ('liege', 'nginx'):
            port = free_port()
            if server_name == 'liege':
                argv = [str(args.liege), '--http-socket', f'{HOST}:{port}', '--wsgi-file',
                        str(APPS_DIR / APPS['hello']['file']), '--processes', str(args.processes), '--master',
                        '--disable-logging', '--static-map', f'/s={root}'] + shlex.split(args.liege_args)
                stop = signal.SIGTERM
            else:
                nginx = shutil.which('nginx') or '/usr/sbin/nginx'
                if not os.access(nginx, os.X_OK):
                    rows.append({'server': 'nginx', 'status': 'skipped', 'error': 'nginx not installed'})
                    continue
                conf = _nginx_static_conf(work / 'nginx', port, root, args.processes)
                argv = [nginx, '-p', str(work / 'nginx'), '-c', str(conf), '-e', str(work / 'nginx' / 'logs' / 'error.log')]
                stop = signal.SIGQUIT
            server = Server(server_name, argv, stop, args.logdir / f'static-{server_name}.log')
            try:
                wait_ready(server, port, args.start_timeout)
                for name in STATIC_SIZES:
                    url_path = f'/s/{name}.bin'
                    res = {'server': server_name, 'file': name, 'status': 'ok', 'command': argv}
                    run_wrk_path(args, port, args.connections, args.warmup, url_path)
                    cpu0 = tree_cpu_ticks(server.tree())
                    t0 = time.monotonic()
                    wrk_argv, out = run_wrk_path(args, port, args.connections, args.duration, url_path)
                    wall = time.monotonic() - t0
                    cpu_s = (tree_cpu_ticks(server.tree()) - cpu0) / CLK_TCK
                    w = parse_wrk(out)
                    res.update(rps=w['rps'], p99_ms=w['p99_ms'], requests=w['requests'], wrk_command=wrk_argv,
                               errors=w['non2xx'] + sum(w['socket_errors'].values()),
                               server_cpu_pct=round(100 * cpu_s / wall, 1),
                               cpu_us_per_req=(1e6 * cpu_s / w['requests']) if w['requests'] else None)
                    print(f'  {server_name:<6} {name:>3}: {w["rps"] or 0:,.0f} req/s, p99 {fmt_ms(w["p99_ms"])}, '
                          f'{fmt_num(res["cpu_us_per_req"], 1)} CPU-µs/req, server CPU {res["server_cpu_pct"]:.0f}%, '
                          f'errors {res["errors"]}')
                    rows.append(res)
            except Exception as e:
                rows.append({'server': server_name, 'status': 'failed', 'error': f'{type(e).__name__}: {e}'})
                print(f'  {server_name}: FAILED: {e}')
            finally:
                server.stop(args.stop_grace)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def run_wrk_path(args, port, conns, duration, path):
    wrk_threads = max(1, min(args.wrk_threads, conns))
    argv = ['wrk', f'-t{wrk_threads}', f'-c{conns}', f'-d{duration}s', '--timeout', f'{args.wrk_timeout}s',
            '--latency', f'http://{HOST}:{port}{path}']
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=duration + 30)
    if p.returncode != 0:
        raise RuntimeError(f'wrk failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}')
    return argv, p.stdout


# ------------------------------------------------------------------------------------------ output

def fmt_num(v, nd=0):
    if v is None:
        return '-'
    return f'{v:,.{nd}f}'


def fmt_ms(v):
    if v is None:
        return '-'
    return f'{v * 1000:.0f}µs' if v < 1 else f'{v:.2f}ms' if v < 100 else f'{v:.0f}ms'


def fmt_ratio(v):
    return '-' if v is None else f'{v:.2f}×'


def median_result(rounds):
    """Merge one server's results over rounds: medians of the numbers, all raw values kept."""
    ok = [r for r in rounds if r['status'] == 'ok' and r.get('rps')]
    if not ok:
        return dict(rounds[-1], rounds=len(rounds))
    out = dict(ok[0])
    for key in ('rps', 'p50_ms', 'p99_ms', 'max_ms', 'cpu_us_per_req', 'nginx_cpu_us_per_req', 'nginx_cpu_pct',
                'pss_mib', 'pss_worker_avg_mib', 'errors', 'timeouts', 'read_errors', 'requests', 'conns_per_req',
                'newcomers', 'newcomer_failures', 'newcomer_p50_ms', 'newcomer_max_ms',
                'server_cpu_pct', 'wrk_cpu_pct', 'machine_busy_pct', 'other_cpu_pct'):
        vals = [r[key] for r in ok if r.get(key) is not None]
        if vals:
            out[key] = statistics.median(vals)
    out['rounds'] = len(rounds)
    out['rounds_ok'] = len(ok)
    out['rps_all'] = [r['rps'] for r in ok]
    out['cpu_us_per_req_all'] = [r['cpu_us_per_req'] for r in ok]
    return out


def print_table(title, rows, note=None):
    """One table; `liege÷it` divides each row by its reference row (row['ref'], by default the `liege` row)."""
    ok = [r for r in rows if r['status'] == 'ok']
    by_label = {r['server']: r for r in ok}
    liege = by_label.get('liege') or next((r for r in ok if r.get('server_kind') == 'liege'), None)
    others = [r for r in ok if r.get('server_kind', r['server']) != 'liege' and r['server'] not in ('nginx', 'nginx close')]
    fronted = any(r.get('front') for r in rows)
    probed = any(r.get('newcomers') for r in rows)
    hdr = ['server', 'conns', 'req/s', 'p50', 'p99', 'max', 'CPU-µs/req'] + (['nginx µs/req'] if fronted else []) + [
        'new conn/req'] + (['newcomer p50', 'newcomer max', 'newcomer fail'] if probed else []) + [
        'CPU %', 'other %', 'PSS MiB', 'PSS/wkr', 'procs', 'errors', 'read err', 'liege÷it req/s', 'liege÷it CPU']
    lines = []
    for r in rows:
        if r['status'] != 'ok':
            err = r.get('error', '').splitlines()[0] if r.get('error') else ''
            lines.append([r['server'], str(r.get('connections', '-')), r['status'].upper() + ': ' + err[:160]])
            continue
        rr = cr = None
        ref = by_label.get(r.get('ref') or '') if r.get('ref') else None
        if ref and r is not ref:
            rr = ref['rps'] / r['rps'] if r['rps'] else None
            if ref.get('cpu_us_per_req') and r.get('cpu_us_per_req'):
                cr = ref['cpu_us_per_req'] / r['cpu_us_per_req']
        name = r['server'] + (' (BAD BODY)' if r.get('body_ok') is False else '')
        errs = fmt_num(r['errors']) + (f' ({fmt_num(r["timeouts"])} t/o)' if r.get('timeouts') else '')
        lines.append([name, str(r['connections']), fmt_num(r['rps']), fmt_ms(r.get('p50_ms')), fmt_ms(r['p99_ms']),
                      fmt_ms(r.get('max_ms')), fmt_num(r['cpu_us_per_req'], 1)]
                     + ([fmt_num(r.get('nginx_cpu_us_per_req'), 1)] if fronted else [])
                     + [fmt_num(r.get('conns_per_req'), 2)]
                     + ([fmt_ms(r.get('newcomer_p50_ms')), fmt_ms(r.get('newcomer_max_ms')),
                         f"{fmt_num(r.get('newcomer_failures'))}/{fmt_num(r.get('newcomers'))}"] if probed else [])
                     + [fmt_num(r.get('server_cpu_pct'), 0), fmt_num(r.get('other_cpu_pct'), 0),
                        fmt_num(r['pss_mib'], 1), fmt_num(r['pss_worker_avg_mib'], 1), str(r['processes']),
                        errs, fmt_num(r.get('read_errors')), fmt_ratio(rr), fmt_ratio(cr)])
    full = [l for l in lines if len(l) == len(hdr)]
    widths = [max([len(hdr[i])] + [len(l[i]) for l in full]) for i in range(len(hdr))]
    print(f'\n== {title}')
    print('  '.join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(hdr, widths))))
    for l in lines:
        if len(l) == 3:
            print(f'{l[0].ljust(widths[0])}  {l[1].rjust(widths[1])}  {l[2]}')
        else:
            print('  '.join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(l, widths))))
    summary = {}
    refs = {r.get('ref') for r in ok if r.get('ref')}
    if len(refs) > 1:  # rows compared within their own groups (nginx fronts): no cross-group "best"
        liege = None
    if liege and others:
        best_rps = max(others, key=lambda r: r['rps'])
        with_cpu = [r for r in others if r.get('cpu_us_per_req')]
        best_cpu = min(with_cpu, key=lambda r: r['cpu_us_per_req']) if with_cpu else None
        summary = {'best_other_rps': best_rps['server'], 'rps_ratio': liege['rps'] / best_rps['rps']}
        msg = (f'liege vs best of the others: req/s {fmt_ratio(summary["rps_ratio"])} of {best_rps["server"]} '
               f'({fmt_num(liege["rps"])} vs {fmt_num(best_rps["rps"])})')
        if best_cpu and liege.get('cpu_us_per_req'):
            summary.update(best_other_cpu=best_cpu['server'],
                           cpu_ratio=liege['cpu_us_per_req'] / best_cpu['cpu_us_per_req'])
            msg += (f'; CPU/req {fmt_ratio(summary["cpu_ratio"])} of {best_cpu["server"]} '
                    f'({fmt_num(liege["cpu_us_per_req"], 1)} vs {fmt_num(best_cpu["cpu_us_per_req"], 1)} µs)')
        uw = [r for r in others if r['server'].startswith('uwsgi') and r.get('pss_worker_avg_mib')]
        if uw and liege.get('pss_worker_avg_mib'):
            u = min(uw, key=lambda r: r['pss_worker_avg_mib'])
            summary['pss_worker_ratio_vs_uwsgi'] = liege['pss_worker_avg_mib'] / u['pss_worker_avg_mib']
            msg += f'; PSS/worker {fmt_ratio(summary["pss_worker_ratio_vs_uwsgi"])} of {u["server"]}'
        print(msg)
    elif not liege and refs == {'liege'}:
        print('(no liege result: ratios left out)')
    if note:
        print(note)
    return summary


# -------------------------------------------------------------------------------------------- main

def tool_versions(args):
    v = {'python': sys.version.split()[0], 'platform': platform.platform(), 'cpus': os.cpu_count()}

    def cmd(key, argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            v[key] = (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
        except Exception as e:  # noqa: BLE001 - a missing tool is reported in the results
            v[key] = f'unavailable ({e.__class__.__name__})'

    cmd('uwsgi', [tool_or(args, 'uwsgi'), '--version'])
    cmd('gunicorn', [tool_or(args, 'gunicorn'), '--version'])
    cmd('granian', [tool_or(args, 'granian'), '--version'])
    cmd('wrk', ['wrk', '-v'])
    cmd('nginx', ['nginx', '-v'])
    if Path(args.liege).exists():
        cmd('liege', [str(args.liege), '--version'])
    if args.liege_pip and Path(args.liege_pip).exists():
        cmd('liege-pip', [str(args.liege_pip), '--version'])
    try:
        v['loadavg_before'] = Path('/proc/loadavg').read_text().split()[:3]
    except OSError:
        pass
    return v


def tool_or(args, name):
    try:
        return tool(name)
    except FileNotFoundError:
        return name


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (wrk -c1000 and the servers under it inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    ap = argparse.ArgumentParser(
        description='Benchmark liege against uWSGI (pyuwsgi), Gunicorn, Granian and nginx, one after another in one run.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument('--scenario', default='main',
                    help='comma-separated: ' + ', '.join(scenarios.SCENARIOS) + ', or all (see bench/README.md); '
                         'static alone: liege static-map vs nginx on a 1 KiB and a 1 MiB file')
    ap.add_argument('--apps', default='hello,seed', help='apps for the main and newconn scenarios (hello, seed)')
    ap.add_argument('--servers', default=','.join(ALL_SERVERS),
                    help='servers, in order: ' + ', '.join(ALL_SERVERS) + ' (the io scenario drops gunicorn; '
                         'behind nginx, any uwsgi-* selects uWSGI); also liege-pip (with --liege-pip)')
    ap.add_argument('--processes', type=int, default=4, help='worker processes for every server')
    ap.add_argument('--duration', type=int, default=10, help='seconds of measured load per server')
    ap.add_argument('--warmup', type=int, default=2, help='seconds of unmeasured load before each measurement')
    ap.add_argument('--connections', type=int, default=10, help='wrk connections (main, newconn, nginx, floors)')
    ap.add_argument('--http11-connections', type=int, default=None,
                    help='wrk connections for uwsgi-http11 in the main and io scenarios (default: processes × '
                         'threads, as it pins one kept-alive connection per worker thread)')
    ap.add_argument('--io-connections', type=int, default=64, help='wrk connections in the io scenario')
    ap.add_argument('--io-threads', default='1,8', help='threads per process to try in the io scenario')
    ap.add_argument('--backlog', type=int, default=1024,
                    help='listen backlog given to every server in keepalive-wide and overload (liege\'s default; '
                         'uWSGI\'s own is 100)')
    ap.add_argument('--nginx-workers', type=int, default=1, help='nginx worker_processes (front and floor)')
    ap.add_argument('--nginx-upstream', choices=['unix', 'tcp'], default='unix',
                    help='how nginx reaches the server: a unix socket, or 127.0.0.1:PORT (then the `new conn/req` '
                         'column counts nginx\'s upstream connections, showing which front reuses them)')
    ap.add_argument('--nginx-keepalive', type=int, default=16, help='`keepalive N` of the nginx upstream blocks')
    ap.add_argument('--no-floors', action='store_true',
                    help='skip the floors (nginx return 200, the app alone in Python) that every run measures')
    ap.add_argument('--wrk-threads', type=int, default=2, help='wrk -t')
    ap.add_argument('--wrk-timeout', type=int, default=5, help='wrk --timeout in seconds')
    ap.add_argument('--rounds', type=int, default=1,
                    help='repeat each table\'s server list this many times (interleaved) and report medians')
    ap.add_argument('--start-timeout', type=float, default=30, help='seconds a server gets to answer its first GET')
    ap.add_argument('--stop-grace', type=float, default=10, help='seconds between the stop signal and SIGKILL')
    ap.add_argument('--liege', '--liege-bin', dest='liege', default=str(ROOT / 'target' / 'release' / 'liege'),
                    help='liege binary')
    ap.add_argument('--liege-pip', default=None,
                    help="the `liege` command of a venv with liege's wheel installed (server liege-pip: the "
                         'extension-module build, measured beside the binary)')
    ap.add_argument('--liege-args', default='',
                    help="extra liege options, appended (shell-quoted string), e.g. "
                         "--liege-args='--disable-logging=false --log-format=json' to measure the request log")
    ap.add_argument('--json', default=None, help='result file (default bench/results/<timestamp>.json)')
    ap.add_argument('--dry-run', action='store_true', help='print the tables and cases a run would measure, and its '
                                                           'estimated duration, then exit')
    args = ap.parse_args()

    static_only = args.scenario == 'static'
    try:
        chosen = scenarios.parse_scenarios('main' if static_only else args.scenario)
    except ValueError as e:
        ap.error(str(e))
    if shutil.which('wrk') is None and not args.dry_run:
        ap.error('wrk not found (bench/run installs it)')
    servers = [s.strip() for s in args.servers.split(',') if s.strip()]
    bad = [s for s in servers if s not in ALL_SERVERS + scenarios.EXTRA_SERVERS]
    if bad:
        ap.error(f'unknown servers: {bad}')
    apps = [a.strip() for a in args.apps.split(',') if a.strip()]
    if any(a not in ('hello', 'seed') for a in apps):
        ap.error('--apps takes hello and/or seed')
    if args.processes < 1 or args.duration < 1 or args.rounds < 1 or args.connections < 1:
        ap.error('processes, duration, rounds and connections must be >= 1')
    args.liege = Path(args.liege)
    if 'liege-pip' in servers and not args.liege_pip:
        ap.error('the liege-pip server needs --liege-pip VENV/bin/liege')
    groups = scenarios.build_groups(args, chosen, servers, apps)
    est = scenarios.estimate_seconds(args, groups)
    if args.dry_run:
        for g in groups:
            print(f'-- {g["title"]}')
            for c in g['cases']:
                print(f'     {c["label"]}')
        print(f'{sum(len(g["cases"]) for g in groups)} cases × {args.rounds} round(s): about {est / 60:.1f} min')
        return 0
    nofile = raise_nofile()
    if 'overload' in chosen and args.duration <= args.wrk_timeout:
        print(f'note: --duration {args.duration} ≤ --wrk-timeout {args.wrk_timeout}: a starved client cannot time out '
              'within the run, so the overload tables cannot show unfairness')

    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.logdir = RESULTS / f'{stamp}-logs'
    args.logdir.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else RESULTS / f'{stamp}.json'

    if 'liege' in servers and not args.liege.exists():
        print(f'note: {args.liege} does not exist: liege is reported as skipped')
    liege_info = {}
    snapshot_dir = None
    if 'liege' in servers and args.liege.exists():
        # Bench a private copy: a concurrent `cargo build` must not swap the binary between runs.
        snapshot_dir = Path(tempfile.mkdtemp(prefix='liege-bench-'))
        snap = snapshot_dir / 'liege'
        shutil.copy2(args.liege, snap)
        liege_info = {'source': str(args.liege), 'sha256': hashlib.sha256(snap.read_bytes()).hexdigest(),
                      'mtime': datetime.datetime.fromtimestamp(args.liege.stat().st_mtime).isoformat()}
        args.liege = snap

    # Ctrl-C and SIGTERM both end in the finally below, which stops every server still running.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (&)
    signal.signal(signal.SIGHUP, on_term)

    out = {'started': stamp, 'scenarios': chosen, 'args': {k: str(v) for k, v in vars(args).items()},
           'versions': tool_versions(args), 'liege_binary': liege_info, 'nofile': nofile, 'tables': [],
           'python_floors': {}}
    if liege_info:
        print(f'liege: {liege_info["source"]} (built {liege_info["mtime"][:19]}, sha256 {liege_info["sha256"][:12]})')
    print(f'liege bench {stamp}: {", ".join(chosen)}; {args.processes} processes, {args.duration} s per server, '
          f'warm-up {args.warmup} s, {os.cpu_count()} CPUs, load {" ".join(out["versions"].get("loadavg_before", []))}'
          f'; {sum(len(g["cases"]) for g in groups)} cases × {args.rounds} round(s), about {est / 60:.1f} min')
    floor_apps = sorted({c['app'] for g in groups for c in g['cases'] if c['app'] in ('hello', 'seed')})
    py_raw = {a: [] for a in floor_apps}
    if static_only:
        print(f'\n-- static files (1 KiB, 1 MiB): liege static-map vs nginx, {args.processes} processes, '
              f'wrk -c{args.connections} -d{args.duration}s')
        try:
            out['static'] = bench_static(args)
        finally:
            stop_all()
        json_path.write_text(json.dumps(out, indent=1, default=str))
        print(f'\nresults: {json_path}')
        return
    try:
        if floor_apps and (not args.no_floors or 'floors' in chosen):
            print('\n-- floors: the app alone in a Python loop (bench/floor.py), CPU-µs per call')
            for rnd in range(args.rounds):
                for a in floor_apps:
                    try:
                        f = python_floor(a)
                        py_raw[a].append(f)
                        print(f'  {a:<6} {f["us_per_call"]:.2f} µs/call ({f["calls"]:,} calls × {f["repeats"]})')
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                        print(f'  {a:<6} FAILED: {e}')
        for g in groups:
            title, key, runs = g['title'], g['key'], g['cases']
            print(f'\n-- {title}')
            per = {c['label']: [] for c in runs}
            try:
                for rnd in range(args.rounds):
                    if args.rounds > 1:
                        print(f' round {rnd + 1}/{args.rounds}')
                    order = runs if rnd % 2 == 0 else list(reversed(runs))
                    for c in order:
                        per[c['label']].append(bench_one(args, c))
            finally:  # an interrupted group still reports what it measured
                rows = [median_result(per[c['label']]) for c in runs if per[c['label']]]
                if rows:
                    out['tables'].append({'key': key, 'title': title, 'note': g.get('note'), 'rows': rows, 'raw': per})
    except KeyboardInterrupt:
        print('\ninterrupted: stopping servers', file=sys.stderr)
        out['interrupted'] = True
    finally:
        stop_all()
        if snapshot_dir:
            shutil.rmtree(snapshot_dir, ignore_errors=True)

    pyfloors = {}
    for a, vals in py_raw.items():
        if vals:
            pyfloors[a] = dict(vals[0], us_per_call=statistics.median(v['us_per_call'] for v in vals),
                               rounds=[v['us_per_call'] for v in vals])
    out['python_floors'] = pyfloors
    nfloors = scenarios.nginx_floors(out['tables'])
    print(f'\n\n######## results ({stamp}; medians over {args.rounds} round(s) where > 1)')
    for tbl in out['tables']:
        tbl['summary'] = print_table(tbl['title'], tbl['rows'], tbl.get('note'))
        extra = scenarios.floor_lines(tbl, nfloors, pyfloors) + scenarios.target_lines(tbl, nfloors, pyfloors)
        for line in extra:
            print(line)
        tbl['floor_and_target_lines'] = extra
    if pyfloors or nfloors:
        print('\n== floors (what no server goes below)')
        for k, r in nfloors.items():
            print(f'  nginx return 200, {"keep-alive" if k == "ka" else "Connection: close"} c{r["connections"]}, '
                  f'{args.nginx_workers} worker(s): {r["cpu_us_per_req"]:.1f} CPU-µs/req at {fmt_num(r["rps"])} req/s')
        for a, f in pyfloors.items():
            print(f'  {a} app alone in Python {f["python"]}: {f["us_per_call"]:.2f} CPU-µs/call')
        print(f'  targets (issue 10): seed ≤ {scenarios.TARGET_SEED_VS_PYTHON}× the Python floor; hello ≤ '
              f'{scenarios.TARGET_HELLO_VS_NGINX}× the nginx floor (keep-alive, same wrk load); new connections ≥ '
              f'{scenarios.TARGET_NEWCONN_VS_UWSGI}× uWSGI req/s with p99 ≤ uWSGI\'s')
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=1, default=str))
    print(f'\nJSON: {json_path}\nserver logs: {args.logdir}')
    return 130 if out.get('interrupted') else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    finally:
        stop_all()
