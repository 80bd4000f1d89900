"""I/O-bound WSGI app for bench/ (issue 3): sleeps 10 ms per request, releasing the GIL."""

import time

SLEEP = 0.010


def application(env, start_response):
    time.sleep(SLEEP)
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '3')])
    return [b'ok\n']
