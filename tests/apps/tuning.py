"""For the cheaper and process-tuning tests: /slow?s=SECONDS sleeps, /grow?mb=N keeps N MB of written memory
in this worker, anything else answers at once with the worker's pid."""
import os
import time
from urllib.parse import parse_qs

KEPT = []


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(query.get("s", ["1"])[0]))
    elif path == "/grow":
        # Written bytes (not a zeroed buffer the kernel maps lazily): resident at once.
        KEPT.append(b"x" * (int(query.get("mb", ["1"])[0]) << 20))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
