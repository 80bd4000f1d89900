"""Python 3 port of the seed's simple_app.py (without `import uwsgi`).

Yields 1,003 tiny byte strings per request (2 + 999 numbers + newline + counter) and no Content-Length, so a server
that writes each chunk separately pays for it.
"""

counter = 0


def application(env, start_response):
    global counter
    start_response('200 Ok', [('Content-type', 'text/plain')])
    yield b"hello world"
    yield b"hello world2"
    for i in range(1, 1000):
        yield str(i).encode()
    yield b"\n"
    yield str(counter).encode()
    counter += 1
