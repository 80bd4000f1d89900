"""uWSGI's glob monitor: `emperor = /etc/uwsgi/apps/*/*.ini` (every matching file is a vassal, in
subdirectories too) and the single-file form `emperor = %D/foo.ini` (kpn's django-minimal), with
`vassals-include` applied to each. Files appear, change and go under the pattern as in a directory."""

from __future__ import annotations

import os

from liegetest import READY_TIMEOUT, wait_for
from liegetest import body_of, write_atomically

APP = """\
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (os.environ.get("WHO", "?"), os.environ.get("SHARED", "-"))).encode()]
"""


def vassal(who: str) -> str:
    return f"[uwsgi]\nwsgi-file = %d/app.py\nprocesses = 1\nenv = WHO={who}\n"


def test_a_glob_of_vassal_files_in_subdirectories(emperor_factory, tmp_path):
    root = tmp_path / "g"
    apps = root / "apps"
    for name in ("shop", "blog"):
        (apps / name).mkdir(parents=True)
        (apps / name / "app.py").write_text(APP)
    (apps / "shop" / "uwsgi.ini").write_text(vassal("shop"))
    (apps / "blog" / "uwsgi.ini").write_text(vassal("blog"))
    (apps / "blog" / "notes.txt").write_text("not a vassal")
    include = root / "defaults.ini"
    include.write_text("[uwsgi]\nenv = SHARED=yes\n")
    e = emperor_factory(root=root, start=False,
                        extra=["--emperor", f"{apps}/*/uwsgi.ini", "--vassals-include", os.fspath(include)])
    e.start()
    # Two files named uwsgi.ini: each vassal is named by its path under the pattern's fixed directory.
    _, shop = e.wait_serving("shop-uwsgi")
    _, blog = e.wait_serving("blog-uwsgi")
    assert body_of(shop) == "shop yes" and body_of(blog) == "blog yes"
    assert set(e.vassals()) == {"shop-uwsgi", "blog-uwsgi"}

    # A new match deploys, an edit reloads, a removal stops: as in a directory.
    (apps / "news").mkdir()
    (apps / "news" / "app.py").write_text(APP)
    (apps / "news" / "uwsgi.ini").write_text(vassal("news"))
    _, news = e.wait_serving("news-uwsgi")
    assert body_of(news) == "news yes"
    write_atomically(apps / "shop" / "uwsgi.ini", vassal("shop2"))
    wait_for(lambda: body_of(e.port_of("shop-uwsgi")) == "shop2 yes", READY_TIMEOUT, "shop to reload")
    (apps / "blog" / "uwsgi.ini").unlink()
    wait_for(lambda: "blog-uwsgi" not in e.vassals(), READY_TIMEOUT, "blog to be gone")


def test_a_single_file_emperor_from_an_ini(emperor_factory, tmp_path):
    # kpn's django-minimal: `emperor = %D/foo.ini` with `vassals-include = %D/vassals-default.ini`.
    root = tmp_path / "one"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "foo.ini").write_text(vassal("foo"))
    (root / "vassals-default.ini").write_text("[uwsgi]\nenv = SHARED=default\n")
    ini = root / "emperor.ini"
    ini.write_text("[uwsgi]\nmaster = true\nthunder-lock = false\nemperor = %D/foo.ini\n"
                   "vassals-include = %D/vassals-default.ini\n")
    e = emperor_factory(root=root, start=False, extra=["--ini", os.fspath(ini)])
    e.start()
    _, port = e.wait_serving("foo")
    assert body_of(port) == "foo default"
    assert set(e.vassals()) == {"foo"}, "only the named file is a vassal"


def test_touch_reload_of_the_emperor_reloads_every_vassal(emperor_factory, tmp_path):
    # kpn's `touch-reload = %p` in the emperor's own file: touching it does what SIGHUP does to the emperor.
    root = tmp_path / "t"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "foo.ini").write_text(vassal("foo"))
    ini = root / "emperor.ini"
    ini.write_text("[uwsgi]\nemperor = %D/foo.ini\ntouch-reload = %p\n")
    e = emperor_factory(root=root, start=False, extra=["--ini", os.fspath(ini)])
    e.start()
    v, _ = e.wait_serving("foo")
    before = v["pid"]
    os.utime(ini, None)
    os.utime(ini, (os.stat(ini).st_atime + 5, os.stat(ini).st_mtime + 5))
    e.wait_state("foo", "running", where=lambda v: v["pid"] != before)
    assert "touch-reload" in e.logs()
