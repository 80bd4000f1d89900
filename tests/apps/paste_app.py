"""A PasteDeploy app factory (`use = call:paste_app:make_app` in a paste ini).

The app answers "<greeting> <pid>" and logs one INFO line per request on the logger "pasteapp" (visible only
when the paste file's logging sections were applied: Python's last-resort handler shows warnings and up).
"""
import logging
import os

log = logging.getLogger("pasteapp")


def make_app(global_conf, greeting="hello", **local_conf):
    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        log.info("served %s", path)
        body = f"{greeting} {os.getpid()} here={global_conf.get('here', '')}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return application
