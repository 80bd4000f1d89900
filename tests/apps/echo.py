"""Echoes the WSGI environ as JSON: every str/bool/int value, tuples as lists, plus the request body read
through wsgi.input (as latin-1 text), the worker pid and the body length.

Extra routes with fixed responses (matched on the last path segment): /__fixed__ (1000 bytes, Content-Length), /__gen__ (generator, no length),
/__single__ (a one-element list, no length),
/__big__?size=N (N deterministic bytes in 64 KiB chunks, see liegetest.big_payload),
/__bigone__?size=N (the same bytes as a one-element list: the app is done before they are written).
"""
import json
import os
from urllib.parse import parse_qs


def _jsonable(v):
    if v is None or isinstance(v, (str, bool, int, float)):
        return True, v
    if isinstance(v, tuple):
        return True, list(v)
    return False, None


def _big(n):
    block = bytes(range(256)) * 256
    sent = 0
    while sent < n:
        chunk = block[: min(len(block), n - sent)]
        sent += len(chunk)
        yield chunk


def application(environ, start_response):
    # Fixed routes match on the last path segment, so they work under any prefix (e.g. behind nginx).
    route = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    if route == "__fixed__":
        body = b"0123456789" * 100
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if route == "__gen__":
        def gen():
            for i in range(10):
                yield b"chunk%d\n" % i
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if route == "__single__":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"single-chunk-body"]
    if route == "__big__":
        n = int(parse_qs(environ.get("QUERY_STRING", "")).get("size", ["1048576"])[0])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _big(n)
    if route == "__bigone__":
        n = int(parse_qs(environ.get("QUERY_STRING", "")).get("size", ["1048576"])[0])
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return [b"".join(_big(n))]

    body = environ["wsgi.input"].read()
    out = {}
    for k, v in environ.items():
        ok, jv = _jsonable(v)
        if ok:
            out[k] = jv
    out["_pid"] = os.getpid()
    out["_body"] = body.decode("latin-1")
    out["_body_len"] = len(body)
    out["_types"] = {k: type(v).__name__ for k, v in environ.items()}
    data = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
