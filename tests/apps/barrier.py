"""Proves requests run in parallel inside ONE worker: each request waits at a barrier that opens only when
BARRIER_PARTIES requests are inside the app at the same time (503 if that never happens within BARRIER_TIMEOUT s)."""
import os
import threading

PARTIES = int(os.environ.get("BARRIER_PARTIES", "4"))
barrier = threading.Barrier(PARTIES)
TIMEOUT = float(os.environ.get("BARRIER_TIMEOUT", "20"))


def application(environ, start_response):
    if environ["PATH_INFO"] == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    try:
        barrier.wait(timeout=TIMEOUT)
    except threading.BrokenBarrierError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"the other requests never arrived\n"]
    body = f"{os.getpid()} {threading.get_ident()} multithread={environ['wsgi.multithread']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
