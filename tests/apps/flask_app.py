"""A small Flask app (Flask unmodified, from PyPI, loaded through `virtualenv = <repo>/.venv`)."""
import importlib.metadata
import os
import sys

import flask

app = flask.Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"


@app.route("/info")
def info():
    return flask.jsonify(sys_prefix=sys.prefix, executable=sys.executable, flask_file=flask.__file__,
                         flask_version=importlib.metadata.version("flask"), pid=os.getpid(),
                         path=flask.request.path, args=flask.request.args.to_dict(),
                         host=flask.request.host, url=flask.request.url)


@app.route("/form", methods=["POST"])
def form():
    files = {k: f.read().decode("latin-1") for k, f in flask.request.files.items()}
    return flask.jsonify(form=flask.request.form.to_dict(), files=files)


@app.route("/json", methods=["POST"])
def json_echo():
    return flask.jsonify(got=flask.request.get_json())


@app.route("/boom")
def boom():
    raise RuntimeError("flask-boom")


@app.route("/stream")
def stream():
    def gen():
        for i in range(100):
            yield f"line {i}\n"
    return flask.Response(gen(), mimetype="text/plain")


@app.route("/redirect")
def redirect():
    return flask.redirect("/")


application = app
