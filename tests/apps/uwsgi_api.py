"""Uses every attribute of the `uwsgi` module liege provides: version, worker_id(), numproc, masterpid(), opt,
post_fork_hook, reload(), log(), started_on, total_requests().

At import (in the master with preload, in each worker with lazy-apps) it records what it saw. The
post_fork_hook writes $UWSGI_API_MARKERS/fork-<pid> (JSON: pid, ppid, worker_id) in every worker.
  /info          JSON of everything
  /log?msg=M     uwsgi.log(M)
  /reload        uwsgi.reload()
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

MARKERS = os.environ.get("UWSGI_API_MARKERS", "/nonexistent-markers")


def _plain(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


IMPORTED = {
    "pid": os.getpid(),
    "worker_id": uwsgi.worker_id(),
    "masterpid": uwsgi.masterpid(),
    "numproc": uwsgi.numproc,
    "version": _plain(uwsgi.version),
    "version_type": type(uwsgi.version).__name__,
    "started_on": uwsgi.started_on,
    "opt": _plain(dict(uwsgi.opt)),
    "time": time.time(),
}


def hook():
    info = {"pid": os.getpid(), "ppid": os.getppid(), "worker_id": uwsgi.worker_id()}
    with open(os.path.join(MARKERS, f"fork-{os.getpid()}"), "w") as f:
        json.dump(info, f)


uwsgi.post_fork_hook = hook


def _json(start_response, obj):
    data = json.dumps(obj, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/info":
        return _json(start_response, {
            "pid": os.getpid(),
            "worker_id": uwsgi.worker_id(),
            "masterpid": uwsgi.masterpid(),
            "numproc": uwsgi.numproc,
            "version": _plain(uwsgi.version),
            "started_on": uwsgi.started_on,
            "started_on_type": type(uwsgi.started_on).__name__,
            "total_requests": uwsgi.total_requests(),
            "total_requests_type": type(uwsgi.total_requests()).__name__,
            "opt": _plain(dict(uwsgi.opt)),
            "imported": IMPORTED,
            "has_hook": callable(getattr(uwsgi, "post_fork_hook", None)),
        })
    if path == "/log":
        uwsgi.log(qs.get("msg", "uwsgi-log-default"))
        return _json(start_response, {"logged": True})
    if path == "/reload":
        result = uwsgi.reload()
        return _json(start_response, {"reload": _plain(result), "pid": os.getpid()})
    return _json(start_response, {"pid": os.getpid()})
