"""A Flask app meant to be mounted under a prefix (`mount = /flask=mount_flask:app`): url_for must give the
prefixed URL, built from SCRIPT_NAME."""
import os

import flask

app = flask.Flask(__name__)


@app.route("/where")
def where():
    return flask.jsonify(
        url=flask.url_for("where"),
        external=flask.url_for("where", _external=True),
        script_root=flask.request.script_root,
        path=flask.request.path,
        pid=os.getpid(),
    )
