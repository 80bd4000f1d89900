"""Slow requests and worker control, for signal and lifecycle tests.

Markers go to $SLOW_MARKERS: started-<token> when a /sleep request begins, finished-<token> when it ends.
  /sleep?s=SECONDS&token=T   sleep, then answer "slept T"
  /pid                       JSON {"pid", "worker_id"}
  /exit?code=N               os._exit(N) in the worker (no response)
  anything else              "ok <pid>"
"""
import json
import os
import time
from urllib.parse import parse_qs

MARKERS = os.environ.get("SLOW_MARKERS", "/nonexistent-markers")


def _worker_id():
    try:
        import uwsgi
        return uwsgi.worker_id()
    except Exception:
        return None


def _marker(name):
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        token = qs.get("token", "x")
        _marker(f"started-{token}")
        time.sleep(float(qs.get("s", "1")))
        _marker(f"finished-{token}")
        body = f"slept {token}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/pid":
        body = json.dumps({"pid": os.getpid(), "worker_id": _worker_id()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/exit":
        os._exit(int(qs.get("code", "3")))
    body = f"ok {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
