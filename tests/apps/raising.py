"""An app that raises. Routes (token= in the query string makes messages unique per test):
  /raise               exception before start_response            -> 500, traceback in the log
  /raise-after-start   exception after start_response, no body    -> 500
  /raise-in-iter       generator raising before its first chunk   -> 500
  /raise-late          generator raising after a first chunk      -> response cut short, traceback logged
  /raise-in-close      body fine, close() raises                  -> 200 delivered, traceback logged
  anything else        200 "ok <pid>"
"""
import os
from urllib.parse import parse_qs


class BoomInClose:
    def __init__(self, token):
        self.token = token

    def __iter__(self):
        return iter([b"body-before-close-error"])

    def close(self):
        raise RuntimeError(f"close-boom-{self.token}")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    token = parse_qs(environ.get("QUERY_STRING", "")).get("token", ["x"])[0]
    if path == "/raise":
        raise RuntimeError(f"boom-{token}")
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError(f"after-start-boom-{token}")
    if path == "/raise-in-iter":
        def gen():
            raise RuntimeError(f"iter-boom-{token}")
            yield b"never"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/raise-late":
        def gen():
            yield b"first-part;"
            raise RuntimeError(f"late-boom-{token}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/raise-in-close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return BoomInClose(token)
    body = f"ok {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
