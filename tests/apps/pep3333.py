"""A WSGI app that drives every PEP 3333 feature, wrapped in wsgiref.validate.validator (`application`).

`raw_application` is the same app without the validator (so the server sees a real wsgi.file_wrapper object
and can use sendfile). WSGIWarning is an error here: any validator complaint is a 500 with a traceback.

Marker files go to $PEP3333_MARKERS (set with --env): close-<token> when the response iterable's close() ran.
Routes (query string `token=`, `n=`, `name=` as noted):
  /environ            JSON of the CGI/WSGI keys (body read with read(CONTENT_LENGTH))
  /read               read(CONTENT_LENGTH) then read(1) must be b'' (input bounded by the body)
  /read-chunks?n=     read(n) until b''
  /readline           readline() until b''
  /readline-size?n=   readline(n) until b''
  /readlines          readlines()
  /readlines-hint?n=  readlines(n) until []
  /iter               for line in wsgi.input
  /errors?token=      write/writelines/flush on wsgi.errors
  /write              the write() callable, then an iterable
  /close?token=       an iterable with close()
  /close-abort?token= a very long iterable; the client disconnects early; close() must still run
  /exc-info           start_response 200, then again with exc_info before any body: the 500 wins
  /exc-info-late      body started, then start_response with exc_info: must re-raise (no 'never' in body)
  /file-wrapper?name=&blksize=  wsgi.file_wrapper over $PEP3333_MARKERS/name
  /file-wrapper-bytesio         wsgi.file_wrapper over a BytesIO (no fileno)
  /generator          a generator with empty chunks in between
  /fixed              1000 fixed bytes with Content-Length (for HEAD)
  /no-content         204
  /multi-header       two Set-Cookie headers
"""
import io
import json
import os
import sys
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

MARKERS = os.environ.get("PEP3333_MARKERS", "/nonexistent-markers")

ENV_KEYS = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "REQUEST_URI",
            "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]


def _marker(name, content=""):
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(content)


def _lat(b):
    return b.decode("latin-1")


def _json(start_response, obj, status="200 OK"):
    data = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class ClosingIterable:
    def __init__(self, chunks, token):
        self.chunks = chunks
        self.token = token

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        _marker(f"close-{self.token}", "closed")


class EndlessIterable:
    """Up to ~256 MiB in 64 KiB chunks, recording how far it got when closed."""

    def __init__(self, token):
        self.token = token
        self.produced = 0

    def __iter__(self):
        block = b"z" * 65536
        for _ in range(4096):
            self.produced += 1
            yield block

    def close(self):
        _marker(f"close-{self.token}", str(self.produced))


class TrackedFile(io.FileIO):
    """A real file (with fileno, so sendfile applies) that records when the server closes it."""
    token = None

    def close(self):
        if not self.closed and self.token:
            _marker(f"fileclose-{self.token}", "closed")
        super().close()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    inp = environ["wsgi.input"]
    clen = int(environ.get("CONTENT_LENGTH") or 0)

    if path.startswith("/environ"):
        body = inp.read(clen)
        out = {k: environ.get(k) for k in ENV_KEYS}
        out["wsgi.version"] = list(environ["wsgi.version"])
        out["http"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        out["body"] = _lat(body)
        out["pid"] = os.getpid()
        return _json(start_response, out)

    if path == "/read":
        body = inp.read(clen)
        extra = inp.read(1)
        return _json(start_response, {"body": _lat(body), "extra": _lat(extra)})

    if path == "/read-chunks":
        n = int(qs.get("n", "3"))
        parts = []
        for _ in range(100000):
            d = inp.read(n)
            if not d:
                break
            parts.append(_lat(d))
        return _json(start_response, {"parts": parts})

    if path == "/readline":
        lines = []
        for _ in range(100000):
            line = inp.readline()
            if not line:
                break
            lines.append(_lat(line))
        return _json(start_response, {"lines": lines})

    if path == "/readline-size":
        n = int(qs.get("n", "4"))
        lines = []
        for _ in range(100000):
            line = inp.readline(n)
            if not line:
                break
            lines.append(_lat(line))
        return _json(start_response, {"lines": lines})

    if path == "/readlines":
        return _json(start_response, {"lines": [_lat(x) for x in inp.readlines()]})

    if path == "/readlines-hint":
        n = int(qs.get("n", "10"))
        batches = []
        for _ in range(100000):
            batch = inp.readlines(n)
            if not batch:
                break
            batches.append([_lat(x) for x in batch])
        return _json(start_response, {"batches": batches})

    if path == "/iter":
        return _json(start_response, {"lines": [_lat(x) for x in inp]})

    if path == "/errors":
        token = qs.get("token", "x")
        err = environ["wsgi.errors"]
        err.write(f"wsgi-errors-write-{token}\n")
        err.writelines([f"wsgi-errors-writelines-{token}-a\n", f"wsgi-errors-writelines-{token}-b\n"])
        err.flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"logged"]

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"via-write-1;")
        write(b"via-write-2;")
        return [b"via-iterable"]

    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingIterable([b"one;", b"two;", b"three"], qs.get("token", "x"))

    if path == "/close-abort":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return EndlessIterable(qs.get("token", "x"))

    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("exc-info-early")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain"),
                                                         ("X-Replaced", "yes")], sys.exc_info())
        return [b"replaced-by-exc-info"]

    if path == "/exc-info-late":
        def gen():
            yield b"partial-"
            try:
                raise ValueError("exc-info-late")
            except ValueError:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"never"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/file-wrapper":
        fname = os.path.join(MARKERS, qs["name"])
        blksize = int(qs.get("blksize", "8192"))
        token = qs.get("token")
        f = TrackedFile(fname, "rb")
        f.token = token
        headers = [("Content-Type", "application/octet-stream")]
        if qs.get("length") == "1":
            headers.append(("Content-Length", str(os.path.getsize(fname))))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, blksize)

    if path == "/file-wrapper-bytesio":
        data = b"bytesio-" * 1000
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 1000)

    if path == "/generator":
        def gen():
            yield b"a"
            yield b""
            yield b"b"
            yield b""
            yield b""
            yield b"c"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/fixed":
        body = b"f" * 1000
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")])
        return [body]

    if path == "/no-content":
        start_response("204 No Content", [])
        return []

    if path == "/multi-header":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2; Path=/")])
        return [b"two cookies"]

    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such route: " + path.encode("latin-1")]


application = validator(app)
raw_application = app
