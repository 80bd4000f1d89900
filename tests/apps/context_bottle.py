"""Bottle encodes a generator's str chunks with the thread-local `response`'s charset while iterating."""
import time

import bottle

app = bottle.Bottle()


@app.route("/gen")
def gen():
    rid = bottle.request.query.id

    def generate():
        yield f"a {rid}\n"
        time.sleep(0.005)
        yield f"b {bottle.request.query.id}\n"
        yield "c\n"

    return generate()


application = app
