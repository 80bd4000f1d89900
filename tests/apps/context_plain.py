"""Per-request state set in the app call and read while the response is iterated and in its close().

/ctx?id=X&n=N&delay=S sets a ContextVar, a threading.local and a Werkzeug Local to X, then streams N lines
(sleeping S seconds before each) describing what the generator sees; close() writes what it sees to
$CONTEXT_DIR/X.json. /peek reports the same state without setting anything (a leak check), /sleepy yields,
sleeps 0.3 s and yields again (chunk timing), /hang yields a chunk and then blocks (harakiri mid-stream),
/flood?id=X yields 64 KiB chunks (128 MiB in all), noting in $CONTEXT_DIR/X.count how many it produced.
"""
import contextvars
import json
import os
import threading
import time
from urllib.parse import parse_qs

from werkzeug.local import Local, LocalProxy

request_id = contextvars.ContextVar("liege_test_request_id")
thread_state = threading.local()
werkzeug_local = Local()
werkzeug_proxy = LocalProxy(werkzeug_local, "value")


def snapshot(where):
    try:
        proxied = str(werkzeug_proxy)
    except RuntimeError:  # unbound: "object is not bound"
        proxied = None
    return {
        "where": where,
        "thread": threading.get_ident(),
        "contextvar": request_id.get(None),
        "threading_local": getattr(thread_state, "value", None),
        "werkzeug_local": getattr(werkzeug_local, "value", None),
        "werkzeug_proxy": proxied,
    }


class Body:
    """An iterable with its own close(), as PEP 3333 describes it."""

    def __init__(self, rid, call, lines, delay):
        self.rid, self.call, self.lines, self.delay = rid, call, lines, delay

    def __iter__(self):
        yield (json.dumps(self.call) + "\n").encode()
        for _ in range(self.lines):
            if self.delay:
                time.sleep(self.delay)
            yield (json.dumps(snapshot("generator")) + "\n").encode()

    def close(self):
        seen = snapshot("close")
        seen["call_thread"] = self.call["thread"]
        path = os.path.join(os.environ["CONTEXT_DIR"], f"{self.rid}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(seen, f)
        os.replace(path + ".tmp", path)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/ctx":
        rid = query["id"]
        request_id.set(rid)
        thread_state.value = rid
        werkzeug_local.value = rid
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        return Body(rid, snapshot("call"), int(query.get("n", "3")), float(query.get("delay", "0")))
    if path == "/peek":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(snapshot("call")).encode()]
    if path == "/sleepy":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return sleepy()
    if path == "/flood":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return flood(os.path.join(os.environ["CONTEXT_DIR"], query["id"] + ".count"))
    if path == "/hang":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return hang()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def sleepy():
    yield b"first\n"
    time.sleep(0.3)
    yield b"second\n"


def hang():
    yield b"started\n"
    time.sleep(60)
    yield b"never\n"


def flood(count_path):
    chunk = b"x" * 65536
    for produced in range(1, 2049):
        if produced % 16 == 0:
            with open(count_path, "w") as f:
                f.write(str(produced))
        yield chunk
