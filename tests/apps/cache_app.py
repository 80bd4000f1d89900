"""Drives uwsgi.cache_* from requests: /set, /update, /get, /del, /exists, /inc, /num, /keys, /clear, /hammer.

Query: k (key), v (value), ttl (expires seconds), c (cache name), n (math delta). Answers JSON with the
function's return value (bytes as latin-1 text) and the worker pid.
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi


def _q(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def application(environ, start_response):
    q = _q(environ)
    op = environ["PATH_INFO"].strip("/")
    key, cache = q.get("k", "k"), q.get("c")
    ttl = int(q.get("ttl", "0"))
    try:
        if op == "set":
            result = uwsgi.cache_set(key, q.get("v", ""), ttl, cache)
        elif op == "update":
            result = uwsgi.cache_update(key, q.get("v", "").encode(), ttl, cache)
        elif op == "get":
            if "sleep" in q:
                time.sleep(float(q["sleep"]))
            result = uwsgi.cache_get(key, cache)
        elif op == "del":
            result = uwsgi.cache_del(key, cache)
        elif op == "exists":
            result = uwsgi.cache_exists(key, cache)
        elif op == "inc":
            result = uwsgi.cache_inc(key, int(q.get("n", "1")), ttl, cache)
        elif op == "dec":
            result = uwsgi.cache_dec(key, int(q.get("n", "1")), ttl, cache)
        elif op == "num":
            result = uwsgi.cache_num(key, cache)
        elif op == "keys":
            result = sorted(uwsgi.cache_keys(cache))
        elif op == "clear":
            result = uwsgi.cache_clear(cache)
        elif op == "hammer":
            # A tight loop of updates (bounded to 60 s), reporting its pid first through a marker file.
            with open(q["marker"], "w") as f:
                f.write(str(os.getpid()))
            deadline = time.monotonic() + 60
            i = 0
            while time.monotonic() < deadline:
                uwsgi.cache_update(f"hammer{i % 50}", b"x" * (i % 30 + 1), 0, cache)
                i += 1
            result = i
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown op"]
    except Exception as err:  # the test asserts on the exception type
        result = {"error": type(err).__name__, "message": str(err)}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"result": _jsonable(result), "pid": os.getpid()}).encode()]
