"""Flask, Django and Bottle from PyPI, unmodified, loaded through `virtualenv = <repo>/.venv`."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from liegetest import APPS, HTTPConn, http_get, http_request


def in_venv(path: str, venv) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(venv) + os.sep)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    for k, (fname, data) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{fname}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


# --- Flask -------------------------------------------------------------------------------------------------------


@pytest.fixture
def flask_srv(liege, venv_dir):
    return liege("--virtualenv", venv_dir, "--pythonpath", APPS, "--module", "flask_app:app",
                 "--processes", "2", workers=2)


def test_flask_index(flask_srv):
    r = http_get(flask_srv.port, "/")
    assert r.status == 200 and r.body == b"hello from flask"


def test_flask_runs_in_the_virtualenv(flask_srv, venv_dir):
    info = http_get(flask_srv.port, "/info?a=1&b=two").json()
    assert in_venv(info["flask_file"], venv_dir), info
    assert os.path.realpath(info["sys_prefix"]) == os.path.realpath(venv_dir), info
    assert info["args"] == {"a": "1", "b": "two"}
    assert info["path"] == "/info"
    assert info["url"] == f"http://127.0.0.1/info?a=1&b=two"


def test_flask_form_and_upload(flask_srv):
    r = http_request(flask_srv.port, "POST", "/form", [("Content-Type", "application/x-www-form-urlencoded")],
                     body=b"name=liege&lang=rust%20%26%20python")
    assert r.status == 200
    assert r.json() == {"form": {"name": "liege", "lang": "rust & python"}, "files": {}}
    ctype, body = multipart({"title": "doc"}, {"upload": ("a.bin", b"\x00\x01binary\xff" * 1000)})
    r = http_request(flask_srv.port, "POST", "/form", [("Content-Type", ctype)], body=body)
    assert r.status == 200
    got = r.json()
    assert got["form"] == {"title": "doc"}
    assert got["files"]["upload"].encode("latin-1") == b"\x00\x01binary\xff" * 1000


def test_flask_json_and_stream_and_redirect(flask_srv):
    r = http_request(flask_srv.port, "POST", "/json", [("Content-Type", "application/json")],
                     body=json.dumps({"x": [1, 2, 3]}).encode())
    assert r.json() == {"got": {"x": [1, 2, 3]}}
    r = http_get(flask_srv.port, "/stream")
    assert r.status == 200 and r.body == "".join(f"line {i}\n" for i in range(100)).encode()
    r = http_get(flask_srv.port, "/redirect")
    assert r.status == 302 and r.header("location") in ("/", "http://127.0.0.1/")
    assert http_get(flask_srv.port, "/missing").status == 404


def test_flask_error_is_500_and_logged(flask_srv):
    mark = flask_srv.log_mark()
    r = http_get(flask_srv.port, "/boom")
    assert r.status == 500
    # Flask logs the traceback through wsgi.errors, which must reach liege's log.
    flask_srv.wait_log("RuntimeError: flask-boom", since=mark)
    assert http_get(flask_srv.port, "/").status == 200


@pytest.mark.parametrize("flag", ["--virtualenv", "--home", "--venv", "-H"])
def test_virtualenv_aliases(liege, venv_dir, flag):
    srv = liege(flag, venv_dir, "--wsgi-file", APPS / "flask_app.py")
    info = http_get(srv.port, "/info").json()
    assert in_venv(info["flask_file"], venv_dir)
    assert os.path.realpath(info["sys_prefix"]) == os.path.realpath(venv_dir)


# --- Django ------------------------------------------------------------------------------------------------------


@pytest.fixture
def django_srv(liege, venv_dir):
    return liege("--virtualenv", venv_dir, "--pythonpath", APPS / "djproj", "--module", "djproj.wsgi:application",
                 "--env", "DJANGO_SETTINGS_MODULE=djproj.settings", "--processes", "2", workers=2)


def test_django_index(django_srv):
    r = http_get(django_srv.port, "/")
    assert r.status == 200 and r.body == b"hello from django"


def test_django_runs_in_the_virtualenv(django_srv, venv_dir):
    info = http_get(django_srv.port, "/info/?q=%C3%A9t%C3%A9").json()
    assert in_venv(info["django_file"], venv_dir), info
    assert info["get"] == {"q": "\u00e9t\u00e9"}
    assert info["host"] == "127.0.0.1"
    assert info["uri"] == "http://127.0.0.1/info/?q=%C3%A9t%C3%A9"


def test_django_post_form_without_csrf(django_srv):
    r = http_request(django_srv.port, "POST", "/form/", [("Content-Type", "application/x-www-form-urlencoded")],
                     body=b"a=1&b=%E2%9C%93")
    assert r.status == 200, r
    assert r.json() == {"post": {"a": "1", "b": "\u2713"}, "files": {}, "method": "POST"}
    ctype, body = multipart({"k": "v"}, {"f": ("x.txt", b"file content\n" * 5000)})
    r = http_request(django_srv.port, "POST", "/form/", [("Content-Type", ctype)], body=body)
    assert r.status == 200
    assert r.json()["files"] == {"f": "file content\n" * 5000}


def test_django_csrf_still_protects_other_views(django_srv):
    r = http_request(django_srv.port, "POST", "/protected/", [("Content-Type", "application/x-www-form-urlencoded")],
                     body=b"a=1")
    assert r.status == 403


def test_django_common_middleware_redirect_and_404(django_srv):
    r = http_get(django_srv.port, "/form")
    assert r.status == 301 and r.header("location") in ("/form/", "http://127.0.0.1/form/")
    assert http_get(django_srv.port, "/nope/").status == 404


def test_django_error_is_500_and_logged(django_srv):
    mark = django_srv.log_mark()
    r = http_get(django_srv.port, "/boom/")
    assert r.status == 500
    django_srv.wait_log("RuntimeError: django-boom", since=mark)
    assert http_get(django_srv.port, "/").status == 200


def test_django_keepalive(django_srv):
    with HTTPConn.tcp(django_srv.port) as c:
        for _ in range(5):
            assert c.request("GET", "/").body == b"hello from django"


# --- Bottle ------------------------------------------------------------------------------------------------------


def test_bottle(liege, venv_dir):
    srv = liege("--venv", venv_dir, "--wsgi-file", APPS / "bottle_app.py", "--callable", "app")
    assert http_get(srv.port, "/").body == b"hello from bottle"
    info = http_get(srv.port, "/hello/world?x=1").json()
    assert info["hello"] == "world" and info["query"] == {"x": "1"}
    assert in_venv(info["bottle_file"], venv_dir)
    r = http_request(srv.port, "POST", "/form", [("Content-Type", "application/x-www-form-urlencoded")],
                     body=b"k=v")
    assert r.json()["form"] == {"k": "v"}
