"""For the cheaper test: /slow keeps a worker busy for a second, / answers at once."""
import os
import time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
