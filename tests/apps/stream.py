"""Streams: yields a first chunk, waits, yields a second one.

  /?gate=NAME   wait (at most 20 s) until the file $STREAM_GATES/NAME exists, so a test can prove the first
                chunk reached the client while the app was still blocked
  /             sleep 1 s between the two chunks
"""
import os
import time
from urllib.parse import parse_qs

GATES = os.environ.get("STREAM_GATES", "/nonexistent-gates")


def application(environ, start_response):
    qs = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    gate = qs.get("gate")

    def gen():
        yield b"first\n"
        if gate:
            path = os.path.join(GATES, gate)
            deadline = time.monotonic() + 20
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.01)
            yield b"gate-open\n" if os.path.exists(path) else b"gate-timeout\n"
        else:
            time.sleep(1)
        yield b"second\n"

    start_response("200 OK", [("Content-Type", "text/plain")])
    return gen()
