"""Helpers for liege's integration tests: the binary, free ports, condition waits, a process wrapper, a raw
HTTP/1.x client and a uwsgi-protocol client.

Everything here talks to 127.0.0.1 or to unix sockets in temporary directories only. Every loop is bounded in
count and in time.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
APPS = TESTS / "apps"
VENV = REPO / ".venv"

# Generous, because up to three test processes share two cores with several liege instances each.
READY_TIMEOUT = float(os.environ.get("LIEGE_TEST_READY_TIMEOUT", "45"))
IO_TIMEOUT = 15.0


def liege_bin() -> Path:
    explicit = os.environ.get("LIEGE_BIN")
    return Path(explicit) if explicit else REPO / "target" / "release" / "liege"


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (never the same twice in one test process)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free port")


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.02):
    """Polls cond() until it returns something truthy (returned) or the deadline passes (TimeoutError).

    Exceptions raised by cond() propagate: a condition that cannot become true should say so at once.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = cond()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.2)


# --------------------------------------------------------------------------------------------------------------
# /proc helpers


@dataclass
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split on the last ')'.
    lpar, rpar = raw.index("("), raw.rindex(")")
    rest = raw[rpar + 2:].split()
    return ProcStat(pid=int(raw[:lpar]), comm=raw[lpar + 1:rpar], state=rest[0], ppid=int(rest[1]),
                    pgrp=int(rest[2]))


def all_procs() -> list[ProcStat]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None:
                out.append(st)
    return out


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) children of pid."""
    return sorted(p.pid for p in all_procs() if p.ppid == pid and p.state != "Z")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) members of a process group."""
    return sorted(p.pid for p in all_procs() if p.pgrp == pgid and p.state != "Z")


def pid_alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st.state != "Z"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a liege process: ours, minus anything that would steer the embedded Python."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV", "CONDA", "LIEGE_TEST"))}
    env.pop("LIEGE_BIN", None)
    env.pop("LD_LIBRARY_PATH", None)  # the binary must find libpython by itself (rpath)
    env.setdefault("LANG", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------------------
# Raw HTTP/1.x client


class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response head arrived."""


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    complete: bool = True  # False: the connection ended before the framing said the body was complete
    chunked: bool = False
    raw_head: bytes = b""
    interim: list["Response"] = field(default_factory=list)  # 1xx responses that came first

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (f"<Response {self.version} {self.status} {self.reason!r} headers={self.headers!r} "
                f"body={body!r} complete={self.complete}>")


class HTTPConn:
    """One client connection with an explicit read buffer, so several responses can be read from one stream."""

    def __init__(self, sock: socket.socket, timeout: float = IO_TIMEOUT):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    @classmethod
    def tcp(cls, port: int, host: str = "127.0.0.1", timeout: float = IO_TIMEOUT) -> "HTTPConn":
        return cls(socket.create_connection((host, port), timeout=timeout), timeout)

    @classmethod
    def unix(cls, path: str | os.PathLike, timeout: float = IO_TIMEOUT) -> "HTTPConn":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(os.fspath(path))
        return cls(s, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, timeout: float) -> None:
        self.sock.settimeout(timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self) -> bool:
        """Reads more into the buffer; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_until(self, delim: bytes, limit: int = 1 << 20) -> bytes | None:
        for _ in range(1 << 20):
            idx = self.buf.find(delim)
            if idx >= 0:
                out, self.buf = self.buf[:idx + len(delim)], self.buf[idx + len(delim):]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"no {delim!r} within {limit} bytes")
            if not self._fill():
                return None
        raise ValueError("unbounded read")

    def _read_exact(self, n: int) -> bytes:
        for _ in range(1 << 24):
            if len(self.buf) >= n or not self._fill():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_available(self, timeout: float = 0.5) -> bytes:
        """Whatever arrives within timeout (for "nothing more came" checks)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            self._fill()
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(old)
        out, self.buf = self.buf, b""
        return out

    def read_to_eof(self, max_bytes: int = 1 << 30) -> bytes:
        while len(self.buf) < max_bytes and self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the peer closes (EOF or reset) within timeout without sending anything more."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                return False
            return not self._fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def read_head(self) -> Response:
        # Tolerate nothing before the status line: a server must not send stray bytes.
        head = self._read_until(b"\r\n\r\n")
        if head is None:
            raise ConnectionClosed(f"connection closed before a response head; got {self.buf!r}")
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ValueError(f"bad status line {lines[0]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"bad response header line {line!r}")
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        return Response(status=int(m.group(2)), reason=(m.group(3) or b"").decode("latin-1"),
                        version=m.group(1).decode(), headers=headers, raw_head=head)

    def read_response(self, method: str = "GET", stop_at_interim: bool = False) -> Response:
        """Reads one response, following its framing (Content-Length, chunked, or close-delimited)."""
        interim = []
        for _ in range(100):
            resp = self.read_head()
            if 100 <= resp.status < 200 and resp.status != 101:
                if stop_at_interim:
                    return resp
                interim.append(resp)
                continue
            break
        else:
            raise ValueError("too many interim responses")
        resp.interim = interim
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if method.upper() == "HEAD" or resp.status in (204, 304):
            return resp
        if "chunked" in te:
            resp.chunked = True
            body, complete = [], False
            for _ in range(1 << 22):
                size_line = self._read_until(b"\r\n", limit=4096)
                if size_line is None:
                    break
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers, then the empty line
                    for _ in range(1000):
                        line = self._read_until(b"\r\n", limit=65536)
                        if line is None or line == b"\r\n":
                            complete = line is not None
                            break
                    break
                data = self._read_exact(size + 2)
                body.append(data[:size])
                if len(data) < size + 2:
                    break
            resp.body, resp.complete = b"".join(body), complete
        elif cl is not None:
            n = int(cl)
            resp.body = self._read_exact(n)
            resp.complete = len(resp.body) == n
        else:
            resp.body = self.read_to_eof()
        return resp

    def request(self, method: str, path: str, headers: Sequence[tuple[str, str]] | None = None,
                body: bytes = b"", version: str = "HTTP/1.1") -> Response:
        self.send(build_request(method, path, headers, body, version))
        return self.read_response(method)


def build_request(method: str, path: str, headers: Sequence[tuple[str, str]] | None = None,
                  body: bytes = b"", version: str = "HTTP/1.1", host: str = "127.0.0.1") -> bytes:
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names and version == "HTTP/1.1":
        hdrs.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("latin-1") + body


def http_request(port: int, method: str = "GET", path: str = "/",
                 headers: Sequence[tuple[str, str]] | None = None, body: bytes = b"",
                 version: str = "HTTP/1.1", timeout: float = IO_TIMEOUT, close: bool = True) -> Response:
    """One request on a new connection (with Connection: close unless close=False)."""
    hdrs = list(headers or [])
    if close and version == "HTTP/1.1" and not any(k.lower() == "connection" for k, _ in hdrs):
        hdrs.append(("Connection", "close"))
    with HTTPConn.tcp(port, timeout=timeout) as c:
        return c.request(method, path, hdrs, body, version)


def http_get(port: int, path: str = "/", **kw) -> Response:
    return http_request(port, "GET", path, **kw)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[Response | None, bool]:
    """Sends raw bytes on a new connection; returns (first response or None, closed_by_peer_afterwards).

    If no response came within timeout, the write side is shut (EOF for an incomplete request) and we read
    again.
    """
    with HTTPConn.tcp(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            try:
                resp = c.read_response()
            except socket.timeout:
                c.shutdown_write()
                resp = c.read_response()
        except (ConnectionClosed, ConnectionResetError, socket.timeout):
            return None, True
        return resp, c.is_closed_by_peer(timeout)


# --------------------------------------------------------------------------------------------------------------
# uwsgi protocol client


def uwsgi_packet(variables: dict[str, str | bytes] | Iterable[tuple[str | bytes, str | bytes]],
                 modifier1: int = 0, modifier2: int = 0) -> bytes:
    """uwsgi request header + vars: u8 modifier1 | u16le datasize | u8 modifier2, then u16le len + key,
    u16le len + value for each var."""
    items = variables.items() if isinstance(variables, dict) else variables
    payload = b""
    for k, v in items:
        kb = k.encode("latin-1") if isinstance(k, str) else k
        vb = v.encode("latin-1") if isinstance(v, str) else v
        payload += struct.pack("<H", len(kb)) + kb + struct.pack("<H", len(vb)) + vb
    return struct.pack("<BHB", modifier1, len(payload), modifier2) + payload


def uwsgi_vars(method: str = "GET", path: str = "/", query: str = "", body: bytes = b"",
               headers: dict[str, str] | None = None, server_port: str = "80",
               remote_addr: str = "127.0.0.1", remote_port: str = "54321") -> dict[str, str]:
    """The vars nginx's uwsgi_params would send for this request."""
    from urllib.parse import unquote
    v = {
        "QUERY_STRING": query,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": (headers or {}).get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "REQUEST_URI": path + ("?" + query if query else ""),
        "PATH_INFO": unquote(path, encoding="latin-1"),
        "DOCUMENT_ROOT": "/nonexistent",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": remote_port,
        "SERVER_PORT": server_port,
        "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost",
    }
    for k, val in (headers or {}).items():
        if k.lower() not in ("content-type", "content-length"):
            v["HTTP_" + k.upper().replace("-", "_")] = val
    return v


def uwsgi_connect(addr: str | os.PathLike | tuple[str, int], timeout: float = IO_TIMEOUT) -> HTTPConn:
    if isinstance(addr, tuple):
        return HTTPConn.tcp(addr[1], addr[0], timeout)
    return HTTPConn.unix(addr, timeout)


def uwsgi_request(addr, variables: dict[str, str], body: bytes = b"", timeout: float = IO_TIMEOUT,
                  method: str | None = None) -> Response:
    with uwsgi_connect(addr, timeout) as c:
        c.send(uwsgi_packet(variables) + body)
        return c.read_response(method or variables.get("REQUEST_METHOD", "GET"))


# --------------------------------------------------------------------------------------------------------------
# The liege process wrapper


class LiegeExited(AssertionError):
    pass


class Liege:
    """One `liege` process (master) started in its own session, so the whole group can be ended at once.

    stderr and stdout go to files in logdir, readable while it runs (.logs(), .stdout(), .output()).
    """

    def __init__(self, args: Sequence[str | os.PathLike], *, cwd: str | os.PathLike, logdir: Path,
                 env: dict[str, str] | None = None, http_port: int | None = None,
                 uwsgi_addr=None, name: str = "liege", binary: Path | None = None):
        self.args = [os.fspath(a) for a in args]
        self.cwd = os.fspath(cwd)
        self.logdir = Path(logdir)
        self.env = clean_env(env)
        self.http_port = http_port
        self.uwsgi_addr = uwsgi_addr
        self.name = name
        self.binary = binary or liege_bin()
        self.proc: subprocess.Popen | None = None
        self.seen_pids: set[int] = set()
        self.stderr_path = self.logdir / f"{name}.stderr.log"
        self.stdout_path = self.logdir / f"{name}.stdout.log"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "Liege":
        self.logdir.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([os.fspath(self.binary), *self.args], cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env,
                                         start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        assert self.http_port is not None
        return self.http_port

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"liege pid {self.pid} did not exit within {timeout}s\n{self.describe()}")

    def _probe(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise LiegeExited(f"liege exited with {self.proc.returncode} before it was ready\n{self.describe()}")
        try:
            if self.http_port is not None:
                http_get(self.http_port, self._ready_path, timeout=5)
                return True
            if self.uwsgi_addr is not None:
                uwsgi_request(self.uwsgi_addr, uwsgi_vars(path=self._ready_path), timeout=5)
                return True
        except (OSError, ConnectionClosed, ValueError):
            return False
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT, workers: int | None = None,
                   path: str = "/") -> "Liege":
        """Waits until a request on the HTTP port (or the uwsgi socket) gets any response, and, if given,
        until the master has `workers` live children."""
        self._ready_path = path
        try:
            wait_for(self._probe, timeout, f"liege to answer on {self.http_port or self.uwsgi_addr}")
            if workers is not None:
                wait_for(lambda: len(self.worker_pids()) == workers, timeout, f"{workers} workers")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.describe()}") from None
        return self

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def worker_pids(self) -> list[int]:
        pids = children_of(self.pid) if self.alive() else []
        self.seen_pids.update(pids)
        return pids

    def group_members(self) -> list[int]:
        return group_members(self.pid) if self.proc is not None else []

    def stop(self, grace: float = 3.0) -> None:
        """Ends the master and every process of its group: SIGINT (quick stop), then SIGKILL after grace."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(3):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                continue
            break
        # Workers that left the group (setsid) but are still ours: kill them one by one.
        for pid in sorted(self.seen_pids):
            st = proc_stat(pid)
            if st is None or st.state == "Z":
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if os.path.basename(exe).startswith("liege"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- logs ------------------------------------------------------------------------------------------------
    def logs(self) -> str:
        """What liege wrote to stderr so far."""
        return self.stderr_path.read_bytes().decode("utf-8", "replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace") if self.stdout_path.exists() else ""

    def output(self) -> str:
        """stderr followed by stdout (apps' print() goes to stdout, as under uWSGI)."""
        return self.logs() + self.stdout()

    def log_mark(self) -> int:
        """An offset into stderr: pass it to logs_since() to see only what came after."""
        return self.stderr_path.stat().st_size if self.stderr_path.exists() else 0

    def logs_since(self, mark: int) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern: str | re.Pattern, timeout: float = 10.0, since: int = 0,
                 stream: str = "stderr") -> re.Match:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern

        def find():
            text = self.logs_since(since) if stream == "stderr" else self.output()
            return rx.search(text)
        try:
            return wait_for(find, timeout, f"log matching {rx.pattern!r}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.describe()}") from None

    def describe(self, tail: int = 6000) -> str:
        def clip(text: str) -> str:
            if len(text) <= tail + 3000:
                return text
            return f"{text[:3000]}\n[... {len(text) - 3000 - tail} chars ...]\n{text[-tail:]}"
        rc = self.proc.poll() if self.proc else None
        return (f"--- liege {' '.join(self.args)} (cwd {self.cwd}, pid {self.proc.pid if self.proc else '-'}, "
                f"exit {rc})\n--- stderr:\n{clip(self.logs())}\n--- stdout:\n{clip(self.stdout())}")


def register_for_report(node, obj) -> None:
    """Anything with describe() registered here has its description added to the test's failure report."""
    lst = getattr(node, "_liege_instances", None)
    if lst is None:
        lst = []
        node._liege_instances = lst
    lst.append(obj)


def run_liege(args: Sequence[str | os.PathLike], cwd, timeout: float = 30.0,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs liege to completion (for commands that must exit: --help, config errors). If it is still running
    after timeout, its whole process group is killed and TimeoutError raised with what it printed."""
    argv = [os.fspath(liege_bin()), *map(os.fspath, args)]
    proc = subprocess.Popen(argv, cwd=cwd, env=clean_env(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise TimeoutError(f"liege {' '.join(argv[1:])} still ran after {timeout}s (expected it to exit)\n"
                           f"stderr:\n{err.decode(errors='replace')[-4000:]}") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of it may outlive the call
        except (ProcessLookupError, PermissionError):
            pass
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def big_payload(n: int) -> bytes:
    """The deterministic body the echo app's /__big__ route and the tests both compute."""
    block = bytes(range(256)) * 256
    reps = n // len(block) + 1
    return (block * reps)[:n]


REQUEST_LOG_RE = re.compile(
    r"\[pid: (?P<pid>\d+)\|app: \d+\|req: \d+/\d+\] (?P<addr>\S+) .*?\] "
    r"(?P<method>[A-Z]+) (?P<uri>\S+) => generated (?P<bytes>\d+) bytes in (?P<msecs>\d+) msecs "
    r"\((?P<proto>HTTP/\d\.\d) (?P<status>\d{3})\)")


# ------------------------------------------------------------------------------------------------------------
# The emperor, systemd's notify socket, the stats socket, the seed app: helpers several test files use

EMPEROR_APP = """\
import os
print("imported app version", os.environ.get("VERSION", "?"), flush=True)

def application(environ, start_response):
    body = "%s %s %s\\n" % (os.environ.get("VERSION", "?"), os.environ.get("WHO", "?"), os.getpid())
    if environ.get("PATH_INFO") == "/print":
        print("app says <img src=x onerror=alert(1)>", flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"""

EMPEROR_RAISING_APP = 'raise ZeroDivisionError("broken at import on purpose")\n'


def vassal_ini(version: str = "1", app: str = "app.py", extra: str = "") -> str:
    return f"[uwsgi]\nwsgi-file = {app}\nenv = VERSION={version}\nprocesses = 1\n{extra}"


def free_port_range(width: int) -> tuple[int, int]:
    """`width` consecutive ports that are free now, below the ephemeral range (so client ports never land there)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        low = rng.randrange(20000, 32000 - width)
        ok = True
        for port in range(low, low + width):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return low, low + width - 1
    raise RuntimeError("no free port range")


class Emperor:
    """One `liege emperor` process in its own session (so its process group holds the vassals too)."""

    def __init__(self, binary: Path, root: Path, *, ports: int = 20, extra: list[str] | None = None,
                 env: dict[str, str] | None = None, name: str = "emperor"):
        self.binary = binary
        self.root = root
        self.dir = root / "vassals"
        self.dir.mkdir(exist_ok=True)
        self.run_dir = root / "run"
        self.name = name
        self.low, self.high = free_port_range(ports)
        self.api_port = free_port()
        self.extra = list(extra or [])
        self.env = clean_env(env)
        self.proc: subprocess.Popen | None = None
        self.stderr_path = root / f"{name}.stderr.log"
        self.stdout_path = root / f"{name}.stdout.log"
        self.seen_pids: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> "Emperor":
        argv = [os.fspath(self.binary), "emperor", os.fspath(self.dir), "--run-dir", os.fspath(self.run_dir),
                "--api", f"127.0.0.1:{self.api_port}", "--vassal-port-range", f"{self.low}-{self.high}",
                "--emperor-max-throttle", "4000", *self.extra]
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=self.env, start_new_session=True)
        if wait:
            wait_for(self._api_up, 20, "the emperor's API")
        return self

    def _api_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"emperor exited with {self.proc.returncode}\n{self.describe()}")
        try:
            self.get("/api/vassals")
            return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        """Ends the emperor's process group, then any vassal process of this directory that escaped it."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.vassal_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.seen_pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def vassal_processes(self) -> list[int]:
        """Live processes whose command line is `liege vassal` on a file of this emperor's directory, and their
        workers (same command line, forked)."""
        mine = []
        needle = os.fspath(self.dir).encode()
        for p in all_procs():
            if p.state == "Z":
                continue
            try:
                cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes()
            except OSError:
                continue
            parts = cmdline.split(b"\0")
            if len(parts) > 2 and parts[1] == b"vassal" and needle in parts[2]:
                mine.append(p.pid)
        return mine

    # -- API ---------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, token: str | None = None) -> tuple[int, object]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            return e.code, json.loads(body) if body else None

    def get(self, path: str):
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def vassals(self) -> dict[str, dict]:
        out = {v["name"]: v for v in self.get("/api/vassals")["vassals"]}
        for v in out.values():
            self._remember(v)
        return out

    def vassal(self, name: str) -> dict | None:
        status, body = self.request("GET", f"/api/vassals/{name}")
        if status == 404:
            return None
        assert status == 200, (status, body)
        self._remember(body)
        return body

    def _remember(self, v: dict) -> None:
        if v.get("pid"):
            self.seen_pids.add(v["pid"])
        for w in v.get("workers", []):
            self.seen_pids.add(w["pid"])

    def token(self) -> str:
        return (self.run_dir / "api-token").read_text().strip()

    def wait_state(self, name: str, states: str | tuple[str, ...], timeout: float = READY_TIMEOUT,
                   where=None) -> dict:
        states = (states,) if isinstance(states, str) else states

        def check():
            v = self.vassal(name)
            if v is not None and v["state"] in states and (where is None or where(v)):
                return v
            return None
        try:
            return wait_for(check, timeout, f"vassal {name} in state {states}", interval=0.05)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; now: {self.vassal(name)}\n{self.describe()}") from None

    def port_of(self, name: str) -> int:
        v = self.vassal(name)
        assert v is not None
        http = [s for s in v["sockets"] if s["proto"] == "http"]
        assert http, v
        return int(http[0]["address"].rsplit(":", 1)[1])

    def wait_serving(self, name: str, timeout: float = READY_TIMEOUT) -> tuple[dict, int]:
        v = self.wait_state(name, "running", timeout)
        port = self.port_of(name)
        wait_for(lambda: answers(port), 10, f"vassal {name} answering on {port}")
        return v, port

    # -- report ------------------------------------------------------------------------------------------------
    def logs(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace") if self.stderr_path.exists() else ""

    def describe(self, tail: int = 8000) -> str:
        rc = self.proc.poll() if self.proc else None
        return f"--- emperor (pid {self.proc.pid if self.proc else '-'}, exit {rc}) stderr tail:\n{self.logs()[-tail:]}"


def answers(port: int) -> bool:
    """Whether the server on `port` answers GET / with 200 now."""
    try:
        return http_get(port, "/", timeout=5).status == 200
    except (OSError, ConnectionClosed, ValueError):
        return False


def body_of(port: int, path: str = "/") -> str:
    resp = http_get(port, path, timeout=10)
    assert resp.status == 200, resp
    return resp.text


def write_atomically(path: Path, text: str) -> None:
    """What editors and deploy tools do: write a hidden temporary file, then rename it over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


class FakeSystemd:
    def __init__(self, directory: Path):
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.fspath(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait(self, key: str, value: str | None = None, timeout: float = 30, after: int = 0) -> tuple[int, dict[str, str]]:
        """The first message from index `after` on that sets `key` (to `value`), and its index."""
        def seen():
            self.receive()
            return next(((i, m) for i, (_, m) in enumerate(self.messages)
                         if i >= after and key in m and (value is None or m[key] == value)), None)
        return wait_for(seen, timeout, f"{key}={value or '*'} from liege")

    def close(self) -> None:
        self.sock.close()


def read_stats_socket(address: tuple[str, int] | str, send: bytes = b"") -> bytes:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        if send:
            s.sendall(send)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


# The seed app's output before its per-worker counter (vassals/simple_app.py).
SEED_PREFIX = b"hello world" + b"hello world2" + b"".join(str(i).encode() for i in range(1, 1000)) + b"\n"


def seed_body_counter(body: bytes) -> int:
    """The body must be exactly SEED_PREFIX followed by the worker's request counter."""
    assert body.startswith(SEED_PREFIX), f"body does not start with the seed's output: {body[:120]!r}..."
    tail = body[len(SEED_PREFIX):]
    assert re.fullmatch(rb"\d+", tail), f"after the numbers, expected the counter only, got {tail!r}"
    return int(tail)
