"""liege: the `py-tracebacker` report, in uWSGI's layout (plugins/python/tracebacker.c):

    *** uWSGI Python tracebacker output ***

    thread_id = MainThread filename = /app/views.py lineno = 12 function = slow line = time.sleep(5)
    ...

one line per frame of each thread, outermost first, a blank line after each thread. The thread asking (the
tracebacker's own) is left out, as uWSGI's C thread has no Python frame of its own.
"""
import sys
import threading
import traceback


def report():
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    me = threading.get_ident()
    out = ["*** uWSGI Python tracebacker output ***\n\n"]
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        name = names.get(ident, "<UnnamedPythonThread>")
        for entry in traceback.extract_stack(frame):
            out.append(
                f"thread_id = {name} filename = {entry.filename} lineno = {entry.lineno} "
                f"function = {entry.name} line = {entry.line or ''}\n"
            )
        out.append("\n")
    return "".join(out)
