"""Answers with the status the path asks for (request-log tests).

  /status/NNN   status NNN, body "status NNN pid PID"
  anything else 200, body "ok pid PID"
"""
import os


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    status = "200 OK"
    text = f"ok pid {os.getpid()}"
    if path.startswith("/status/"):
        code = path[len("/status/"):][:3]
        status = f"{code} Status {code}"
        text = f"status {code} pid {os.getpid()}"
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
