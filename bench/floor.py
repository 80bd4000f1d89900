#!/usr/bin/env python3
"""The app alone: CPU-µs per call of a WSGI app in a plain Python loop, with no server at all.

What no server can go below for that app on this interpreter: build the environ a server would (a copy of
a realistic HTTP/1.1 GET environ, with a fresh wsgi.input), call the app with a start_response that only
records status and headers, iterate its body joining the chunks, and call its close(). CPU time is the
process's user + system time (time.process_time), over N calls, repeated; the median repeat is reported.

N is calibrated so one repeat takes about --target-seconds of CPU. Run it with the interpreter the servers
embed (compare.py uses bench/.venv's CPython 3.11):

  bench/.venv/bin/python bench/floor.py bench/apps/hello.py [--repeats 5] [--target-seconds 0.3]

It prints one JSON object: {"app", "calls", "repeats", "us_per_call", "us_per_call_all", "body_len", "python"}.
"""

import argparse
import importlib.util
import io
import json
import statistics
import sys
import time


def load_app(path):
    spec = importlib.util.spec_from_file_location('bench_floor_app', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.application


def base_environ():
    """What a server hands the app for `GET / HTTP/1.1` from wrk (which sends only Host)."""
    return {
        'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '', 'PATH_INFO': '/', 'QUERY_STRING': '', 'REQUEST_URI': '/',
        'CONTENT_TYPE': '', 'CONTENT_LENGTH': '', 'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '8080',
        'SERVER_PROTOCOL': 'HTTP/1.1', 'REMOTE_ADDR': '127.0.0.1', 'REMOTE_PORT': '54321',
        'HTTP_HOST': '127.0.0.1:8080',
        'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http', 'wsgi.errors': sys.stderr,
        'wsgi.multithread': False, 'wsgi.multiprocess': True, 'wsgi.run_once': False,
    }


def make_call(app):
    base = base_environ()
    BytesIO = io.BytesIO

    def start_response(status, headers, exc_info=None):
        start_response.status = status
        start_response.headers = headers
        return None

    def call():
        env = base.copy()
        env['wsgi.input'] = BytesIO(b'')
        body = app(env, start_response)
        try:
            data = b''.join(body)
        finally:
            close = getattr(body, 'close', None)
            if close is not None:
                close()
        return data

    return call


def timed(call, n):
    t0 = time.process_time()
    for _ in range(n):
        call()
    return time.process_time() - t0


def measure(path, repeats=5, target_seconds=0.3):
    app = load_app(path)
    call = make_call(app)
    body = call()
    n = 16
    while True:  # calibrate (also the warm-up)
        took = timed(call, n)
        if took >= target_seconds / 4 or n >= 1 << 24:
            break
        n *= 2
    n = max(1, int(n * target_seconds / max(took, 1e-6)))
    per = [1e6 * timed(call, n) / n for _ in range(repeats)]
    return {'app': str(path), 'calls': n, 'repeats': repeats, 'us_per_call': statistics.median(per),
            'us_per_call_all': per, 'body_len': len(body), 'python': sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('app', help='a WSGI file defining application')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--target-seconds', type=float, default=0.3, help='CPU seconds per repeat')
    a = ap.parse_args()
    print(json.dumps(measure(a.app, a.repeats, a.target_seconds)))


if __name__ == '__main__':
    main()
