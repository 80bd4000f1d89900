"""A Celery-like side process for attach-daemon tests: runs until told to stop, like `celery worker`.

Usage: celery_like.py DIR [--daemon-pidfile PATH]. Writes DIR/pid (its pid), appends a line to DIR/beats
every 0.1 s, prints "celery_like ready <pid>" to stdout (which lands in the vassal's log), and on SIGTERM
(Celery's warm shutdown) appends "stopped <pid>" to DIR/events and exits 0. With --daemon-pidfile it forks,
the parent exits and the child writes PATH, as a program that daemonizes itself does.
"""
import os
import signal
import sys
import time

directory = sys.argv[1]
if "--daemon-pidfile" in sys.argv:
    pidfile = sys.argv[sys.argv.index("--daemon-pidfile") + 1]
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")

running = True


def stop(signum, frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
with open(os.path.join(directory, "pid.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(directory, "pid.tmp"), os.path.join(directory, "pid"))
with open(os.path.join(directory, "events"), "a") as f:
    f.write(f"started {os.getpid()}\n")
print(f"celery_like ready {os.getpid()}", flush=True)
deadline = time.monotonic() + 300  # never outlive a broken test by much
while running and time.monotonic() < deadline:
    with open(os.path.join(directory, "beats"), "a") as f:
        f.write(f"{os.getpid()} {time.time()}\n")
    time.sleep(0.1)
with open(os.path.join(directory, "events"), "a") as f:
    f.write(f"stopped {os.getpid()}\n")
