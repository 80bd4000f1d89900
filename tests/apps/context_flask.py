"""Flask's stream_with_context: the generator runs inside the request's app and request contexts."""
import time

import flask

app = flask.Flask(__name__)


@app.route("/stream")
def stream():
    flask.g.rid = flask.request.args["id"]

    @flask.stream_with_context
    def generate():
        yield f"start {flask.request.args['id']}\n"
        for i in range(3):
            time.sleep(0.005)
            yield f"{i} {flask.request.args['id']} {flask.g.rid} {flask.current_app.name}\n"
        yield "end\n"

    return flask.Response(generate(), mimetype="text/plain")
