# file: simple_app.py
# A Python 3 port of the seed document's uWSGI example app. Unchanged in spirit: it prints uWSGI's version at
# import, registers a post-fork hook that prints the worker's pid, and yields 1,002 tiny chunks per request
# (a good test of how a server coalesces small writes) ending with a per-worker request counter.
import os

import uwsgi

print("!!! uWSGI version:", uwsgi.version)


def ciao():
    print("modifica su /tmp")


def ciao2():
    print("nuovo uwsgi_server")
    print(os.getpid())


counter = 0

# if uwsgi.load_plugin(0, 'plugins/example/example_plugin.so', 'ciao'):
#     print("example plugin loaded")
# else:
#     print("unable to load example plugin")
# uwsgi.event_add(uwsgi.EVENT_FILE, "/tmp", ciao)
# uwsgi.event_add(uwsgi.EVENT_DNSSD, "_uwsgi._tcp", ciao2)
# uwsgi.event_add(uwsgi.EVENT_TIMER, 1000, ciao2)

uwsgi.post_fork_hook = ciao2


def application(env, start_response):
    global counter
    # print(env)
    start_response('200 Ok', [('Content-type', 'text/plain')])
    yield b"hello world"
    yield b"hello world2"
    for i in range(1, 1000):
        yield str(i).encode()
    yield b"\n"
    yield str(counter).encode()
    counter += 1
