"""An app that yields str instead of bytes (a WSGI error). Routes:
  /text-first        the first chunk is a str            -> 500 (no header sent yet), logged
  /text-list         returns ["a str in a list"]         -> 500, logged
  /text-after-bytes  b"ok;" then a str                   -> response cut short, logged
  /text-status       status line given as bytes          -> 500, logged
  anything else     200 "ok <pid>"
"""
import os


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/text-first":
        def gen():
            yield "not bytes"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/text-list":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str in a list"]
    if path == "/text-after-bytes":
        def gen():
            yield b"ok;"
            yield "then a str"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/text-status":
        start_response(b"200 OK", [("Content-Type", "text/plain")])
        return [b"bytes status"]
    body = f"ok {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
