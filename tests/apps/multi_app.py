"""uWSGI's multi-app module: `uwsgi.applications` maps mountpoints to apps or to names of apps here."""
import uwsgi


def _app(name):
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{name} {environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()]
    return application


first = _app("first")
second = _app("second")

uwsgi.applications = {"/one": first, "/two": "second"}
