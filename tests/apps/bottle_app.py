"""A small Bottle app (unmodified, from PyPI, loaded through `virtualenv =`)."""
import sys

import bottle

app = bottle.Bottle()


@app.route("/")
def index():
    return "hello from bottle"


@app.route("/hello/<name>")
def hello(name):
    return {"hello": name, "query": dict(bottle.request.query), "sys_prefix": sys.prefix,
            "bottle_file": bottle.__file__}


@app.post("/form")
def form():
    return {"form": dict(bottle.request.forms)}


application = app
