"""For the master-lifecycle limit tests: /pid says which worker answered, /grow holds on to memory,
/sleep blocks in Python far longer than any harakiri."""
import os
import time

hoard = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        hoard.append(bytearray(int(environ.get("QUERY_STRING") or "0") * 1024 * 1024))
    elif path == "/sleep":
        time.sleep(60)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
