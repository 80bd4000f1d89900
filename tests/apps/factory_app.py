"""App factories: `module = factory_app:create_app()` or `factory_app:create_app('x', shout=True)`."""
import json


def create_app(greeting="hello", shout=False, extra=None):
    text = greeting.upper() if shout else greeting

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"greeting": text, "extra": extra, "script_name": environ.get("SCRIPT_NAME"),
                            "path_info": environ.get("PATH_INFO")}).encode()]

    return application


def returns_none():
    return None


def plain(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain from factory_app"]
