"""An app with a spooler callable, for tests/test_spooler.py.

GET /spool?kind=K&k=v...&body=B&at=T&priority=P&spooler=DIR  spools a task (every query item an argument,
`body` the body) and answers the spool file's path. GET /info answers what the uwsgi module says about the
spoolers (JSON). Each task run appends a JSON line to $SPOOL_OUT; the `kind` argument chooses what the task
does: ok (SPOOL_OK), retry (SPOOL_RETRY until its second run), sleep (a minute: for spooler-harakiri),
ignore (SPOOL_IGNORE), raise (an exception: retried)."""

import json
import os
import time
from urllib.parse import parse_qsl

import uwsgi

OUT = os.environ["SPOOL_OUT"]


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def record(**entry):
    with open(OUT, "a") as out:
        out.write(json.dumps(entry) + "\n")


def spooler(env):
    args = {_text(k): v for k, v in env.items()}
    name = _text(args.pop("spooler_task_name"))
    body = _text(args.pop("body", b""))
    values = {k: _text(v) for k, v in args.items()}
    kind = values.get("kind", "ok")
    runs_file = f"{OUT}.{values.get('id', name)}.runs"
    runs = int(open(runs_file).read()) + 1 if os.path.exists(runs_file) else 1
    with open(runs_file, "w") as f:
        f.write(str(runs))
    record(kind=kind, name=name, body=body, args=values, pid=os.getpid(), dir=_text(uwsgi.spooler_dir()),
           cwd=os.getcwd(), time=time.time(), runs=runs, keys_are_bytes=all(isinstance(k, bytes)
                                                                           for k in env if k not in
                                                                           ("spooler_task_name", "body")))
    if kind == "retry":
        return uwsgi.SPOOL_RETRY if runs < 2 else uwsgi.SPOOL_OK
    if kind == "sleep":
        time.sleep(60)
    if kind == "ignore":
        return uwsgi.SPOOL_IGNORE
    if kind == "raise":
        raise RuntimeError("task failed on purpose")
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def post_fork():
    open(f"{OUT}.postfork.{os.getpid()}", "w").close()


uwsgi.post_fork_hook = post_fork


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/spool":
        items = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        task = {k.encode(): v.encode() for k, v in items.items()}
        if b"body" in task:
            task[b"body"] = task[b"body"] * 1000  # a body bigger than the 64 KiB of arguments allows is fine
        try:
            answer = uwsgi.spool(task)
        except ValueError as err:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [str(err).encode()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [answer]
    if path == "/spool-kwargs":
        answer = uwsgi.send_to_spooler(kind=b"ok", id=b"kw", body=b"kwargs-body")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [answer]
    if path == "/info":
        info = {
            "spooler_pid": uwsgi.spooler_pid(),
            "spooler_pids": uwsgi.spooler_pids(),
            "spoolers": [_text(d) for d in uwsgi.spoolers],
            "jobs": [_text(j) for j in uwsgi.spooler_jobs()],
            "opt_spooler": "spooler" in uwsgi.opt,
            "codes": [uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE],
            "i_am_the_spooler": uwsgi.i_am_the_spooler(),
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]
    if path == "/frequency":
        uwsgi.set_spooler_frequency(int(environ.get("QUERY_STRING") or "1"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
