"""Raises what the query asks for, for reload-on-exception:
  /raise?kind=value&msg=M   ValueError(M)
  /raise?kind=fatal&msg=M   exceptions_app.Fatal(M)
  /raise?kind=memory        MemoryError()
  anything else             200 "<pid>"
"""
import os
from urllib.parse import parse_qs


class Fatal(Exception):
    pass


KINDS = {"value": ValueError, "fatal": Fatal, "memory": MemoryError}


def application(environ, start_response):
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if environ.get("PATH_INFO") == "/raise":
        kind = KINDS[query.get("kind", "value")]
        raise kind(query["msg"]) if "msg" in query else kind()
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
