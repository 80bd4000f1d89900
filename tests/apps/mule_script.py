"""A mule of tests/test_mules.py (mule = mule_script.py): appends "start <mule id> <pid> <file> <farm>" to
$MULE_OUT, then "<mule id> got <message>" for every message uwsgi.mule_get_msg() returns."""

import os

import uwsgi

OUT = os.environ["MULE_OUT"]


def write(line):
    with open(OUT, "a") as f:
        f.write(line + "\n")


write("start %d %d %s %s" % (uwsgi.mule_id(), os.getpid(), uwsgi.mule_file(), uwsgi.in_farm()))
while True:
    message = uwsgi.mule_get_msg()
    write("%d got %s" % (uwsgi.mule_id(), message.decode()))
