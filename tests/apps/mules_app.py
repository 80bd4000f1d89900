"""The app of tests/test_mules.py: sends messages to mules and says what the uwsgi module answers here.

GET /send?to=N|NAME|any&msg=TEXT -> uwsgi.mule_msg(TEXT[, N or NAME]) (body: True/False, or the error);
    &size=N sends N bytes of "x" instead
GET /ids -> "worker W mule M"
At import (in the master with preload) it installs a mule_msg_hook: a message-only mule hands each message to
it, and it appends "hook <mule id> <message>" to $MULE_OUT, then to the hook of install_mule_msg_hook
("extra <mule id> <message>")."""

import os
import urllib.parse

import uwsgi

OUT = os.environ["MULE_OUT"]


def hook(message):
    with open(OUT, "a") as f:
        f.write("hook %d %s\n" % (uwsgi.mule_id(), message.decode()))


uwsgi.mule_msg_hook = hook


def extra_hook(message):
    with open(OUT, "a") as f:
        f.write("extra %d %s\n" % (uwsgi.mule_id(), message.decode()))


# What uwsgidecorators' @mulefunc relies on: called after mule_msg_hook, for every message.
uwsgi.install_mule_msg_hook(extra_hook)


def application(environ, start_response):
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    if environ["PATH_INFO"] == "/send":
        to = query.get("to", "any")
        message = query.get("msg", "hello").encode()
        if "size" in query:
            message = b"x" * int(query["size"])
        try:
            if to == "any":
                body = repr(uwsgi.mule_msg(message))
            elif to.isdigit():
                body = repr(uwsgi.mule_msg(message, int(to)))
            else:
                body = repr(uwsgi.mule_msg(message, to))
        except Exception as e:  # the error's type and text, for the test
            body = "%s: %s" % (type(e).__name__, e)
    else:
        body = "worker %d mule %d" % (uwsgi.worker_id(), uwsgi.mule_id())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
