"""The shared cache (`cache2`, `cache`) and uwsgi.cache_*: one cache seen by every worker, expiry, the
blocksize limit, uWSGI's return values, and a worker SIGKILLed in the middle of updates."""

from __future__ import annotations

import os
import signal
import threading
import time
from urllib.parse import urlencode

import pytest

from liegetest import APPS, http_get, wait_for


def call(srv, op, **query):
    r = http_get(srv.port, f"/{op}?{urlencode(query)}", timeout=20)
    assert r.status == 200, r
    return r.json()


def result(srv, op, **query):
    return call(srv, op, **query)["result"]


@pytest.fixture
def cached(liege):
    def start(*extra, processes=4):
        return liege("--wsgi-file", APPS / "cache_app.py", "--processes", str(processes),
                     "--cache2", "name=main,items=100,blocksize=64,keysize=32", "--cache2",
                     "name=small,items=2,blocksize=16", *extra, workers=processes, ready_path="/num")
    return start


def test_a_value_set_by_one_worker_is_read_by_the_others(cached):
    srv = cached()
    assert result(srv, "set", k="shared", v="from one worker") is True
    seen: dict[int, str] = {}
    lock = threading.Lock()

    def get():
        # Concurrent slow requests land on different workers.
        body = call(srv, "get", k="shared", sleep="0.3")
        with lock:
            seen[body["pid"]] = body["result"]

    for _ in range(10):
        threads = [threading.Thread(target=get) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if len(seen) >= 3:
            break
    assert len(seen) >= 3, seen
    assert set(seen.values()) == {"from one worker"}
    assert set(seen) <= set(srv.worker_pids())


def test_uwsgi_return_values(cached):
    srv = cached(processes=1)
    assert result(srv, "get", k="nothing") is None
    assert result(srv, "set", k="a", v="1") is True
    assert result(srv, "set", k="a", v="2") is None, "cache_set does not overwrite"
    assert result(srv, "update", k="a", v="3") is True
    assert result(srv, "get", k="a") == "3"
    assert result(srv, "exists", k="a") is True
    assert result(srv, "exists", k="b") is None
    assert result(srv, "inc", k="n", n="5") is True
    assert result(srv, "inc", k="n") is True
    assert result(srv, "dec", k="n", n="2") is True
    assert result(srv, "num", k="n") == 4
    assert result(srv, "num", k="a") == 0
    assert result(srv, "keys") == ["a", "n"]
    assert result(srv, "del", k="a") is True
    assert result(srv, "del", k="a") is None
    assert result(srv, "set", k="x", v="in small", c="small") is True
    assert result(srv, "get", k="x") is None, "the default cache is the first one"
    assert result(srv, "get", k="x", c="small") == "in small"
    assert result(srv, "get", k="x", c="nonexistent") is None
    assert result(srv, "keys", c="nonexistent")["error"] == "ValueError"
    assert result(srv, "get", k="x", c="small@127.0.0.1:3031")["error"] == "ValueError"
    assert result(srv, "clear", c="small") is True
    assert result(srv, "keys", c="small") == []


def test_blocksize_and_item_limits(cached):
    srv = cached(processes=1)
    assert result(srv, "set", k="a", v="x" * 16, c="small") is True
    assert result(srv, "set", k="b", v="x" * 17, c="small") is None
    assert result(srv, "set", k="b", v="y", c="small") is True
    assert result(srv, "set", k="c", v="z", c="small") is None, "2 items: full"
    assert result(srv, "set", k="k" * 33, v="v") is None, "keysize 32"
    assert result(srv, "set", k="k" * 32, v="v") is True


def test_expiry(cached):
    srv = cached(processes=2)
    assert result(srv, "set", k="soon", v="gone", ttl="1") is True
    assert result(srv, "set", k="forever", v="kept") is True
    assert result(srv, "get", k="soon") == "gone"
    wait_for(lambda: result(srv, "get", k="soon") is None, 10, "the item to expire")
    assert result(srv, "exists", k="soon") is None
    assert result(srv, "get", k="forever") == "kept"
    # An expired item frees its slot for a new one.
    assert result(srv, "set", k="a", v="1", ttl="1", c="small") is True
    assert result(srv, "set", k="b", v="2", c="small") is True
    assert result(srv, "set", k="c", v="3", c="small") is None
    wait_for(lambda: result(srv, "set", k="c", v="3", c="small") is True, 10, "room after expiry")


def test_bitmap_cache_stores_values_larger_than_blocksize(liege):
    """cache2 bitmap=1: a value spans consecutive blocks of blocksize, up to blocks x blocksize; the cache is full
    when no run of free blocks is long enough, and a delete gives its blocks back (seen by every worker)."""
    srv = liege("--wsgi-file", APPS / "cache_app.py", "--processes", "2",
                "--cache2", "name=big,items=10,blocks=20,blocksize=100,bitmap=1", workers=2, ready_path="/num")
    first = "a" * 450  # 5 blocks
    assert result(srv, "set", k="a", v=first) is True
    for _ in range(4):  # whichever worker answers
        assert result(srv, "get", k="a") == first
    assert result(srv, "set", k="b", v="b" * 1500) is True, "15 more blocks: all 20 used"
    assert result(srv, "set", k="c", v="c") is None, "no block left: full"
    assert result(srv, "set", k="d", v="d" * 2001) is None, "over blocks x blocksize"
    assert result(srv, "del", k="a") is True
    assert result(srv, "set", k="c", v="c" * 500) is True, "a's 5 blocks came back"
    assert result(srv, "update", k="b", v="B" * 99) is True, "b shrinks to one block"
    assert result(srv, "set", k="e", v="e" * 1400) is True
    assert result(srv, "get", k="b") == "B" * 99
    assert result(srv, "get", k="c") == "c" * 500
    assert result(srv, "get", k="e") == "e" * 1400
    # Without bitmap a value is one block at most, as before.
    plain = liege("--wsgi-file", APPS / "cache_app.py", "--cache2", "name=p,items=10,blocks=20,blocksize=100",
                  ready_path="/num")
    assert result(plain, "set", k="a", v="a" * 101) is None
    assert result(plain, "set", k="a", v="a" * 100) is True


def test_old_style_cache_option(liege):
    srv = liege("--wsgi-file", APPS / "cache_app.py", "--cache", "10", "--cache-blocksize", "8", ready_path="/num")
    assert result(srv, "set", k="a", v="12345678") is True
    assert result(srv, "set", k="b", v="123456789") is None
    assert result(srv, "get", k="a", c="default") == "12345678"


def test_without_a_cache_the_functions_answer_like_uwsgi(liege):
    srv = liege("--wsgi-file", APPS / "cache_app.py", ready_path="/num")
    assert result(srv, "get", k="a") is None
    assert result(srv, "set", k="a", v="1") is None
    assert result(srv, "keys")["error"] == "ValueError"


def test_bad_cache2_lines_are_config_errors(liege):
    srv = liege("--wsgi-file", APPS / "cache_app.py", "--cache2", "name=x,items=10,store=/tmp/c", ready=False)
    assert srv.wait_exit() != 0
    assert "not supported" in srv.logs()


def test_a_worker_killed_while_updating_does_not_wedge_the_cache(cached, tmp_path):
    srv = cached(processes=3)
    assert result(srv, "set", k="before", v="kept") is True
    marker = tmp_path / "hammer.pid"
    errors = []

    def hammer():
        try:
            http_get(srv.port, f"/hammer?{urlencode({'marker': marker})}", timeout=90)
        except Exception as err:  # the connection dies with the worker: expected
            errors.append(err)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    wait_for(lambda: marker.exists() and marker.read_text().strip(), 20, "the hammering worker")
    victim = int(marker.read_text())
    time.sleep(0.5)  # let it run thousands of locked updates, so the kill most likely lands inside one
    os.kill(victim, signal.SIGKILL)
    thread.join(30)
    # The others keep working, reads and writes, right away (no wedged lock).
    for i in range(20):
        body = call(srv, "update", k=f"after{i}", v="ok")
        assert body["result"] is True and body["pid"] != victim
        assert result(srv, "get", k=f"after{i}") == "ok"
    assert result(srv, "get", k="before") == "kept"
    keys = result(srv, "keys")
    assert "before" in keys and len(keys) <= 100
    wait_for(lambda: len(srv.worker_pids()) == 3 and victim not in srv.worker_pids(), 20, "the respawn")


def test_caches_in_the_stats_document(liege, short_tmp):
    import json

    from test_stats import read_stats_socket

    path = short_tmp / "stats.sock"
    srv = liege("--wsgi-file", APPS / "cache_app.py", "--cache2", "name=main,items=100,blocksize=64,lastmod=1",
                "--cache2", "name=plain,items=5,blocks=50,blocksize=8,bitmap=1",
                "--stats", os.fspath(path), ready_path="/num")
    assert result(srv, "set", k="a", v="1") is True
    assert result(srv, "get", k="a") == "1"
    assert result(srv, "get", k="b") is None
    assert result(srv, "set", k="a", v="1", c="plain") is True
    doc = json.loads(read_stats_socket(os.fspath(path)))
    cache, plain_cache = doc["caches"]
    assert {k: cache[k] for k in ("name", "max_items", "blocks", "blocksize", "keysize", "items", "hits")} == {
        "name": "main", "max_items": 100, "blocks": 100, "blocksize": 64, "keysize": 2048, "items": 1, "hits": 1}
    assert cache["miss"] >= 1 and cache["last_modified_at"] > 0, "lastmod=1"
    # Without lastmod uWSGI leaves last_modified_at at 0; a bitmap cache reports its blocks.
    assert {k: plain_cache[k] for k in ("name", "max_items", "blocks", "items", "last_modified_at")} == {
        "name": "plain", "max_items": 5, "blocks": 50, "items": 1, "last_modified_at": 0}
    plain = liege("--wsgi-file", APPS / "echo.py", "--stats", os.fspath(short_tmp / "s2.sock"))
    assert "caches" not in json.loads(read_stats_socket(os.fspath(short_tmp / "s2.sock")))
    del plain
