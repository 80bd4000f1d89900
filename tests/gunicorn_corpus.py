"""gunicorn's HTTP request corpus (MIT licensed; shipped in its PyPI sdist under tests/requests/{valid,invalid}).

Fetched at test time with `pip download` into target/test-cache/ (reused when present), never committed.
Each case is NAME.http (the raw request, written with visible escapes: gunicorn's tests/treq.py strips the
file's newlines and turns `\\r\\n`, `\\n`, `\\t`, `\\0` and `\\xHH` into bytes) and NAME.py, which sets
`request` to a dict (or a list of dicts) for valid cases and to an exception class for invalid ones. The .py
files call `uri(...)`, use `cfg = Config()` / `cfg.set(...)` and import `gunicorn.http.errors`: this module
provides compatible stubs, so gunicorn itself is not needed.

    python tests/gunicorn_corpus.py --fetch    # download and unpack (tests/run does this first)
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tarfile
import types
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

GUNICORN_VERSION = "27.0.1"
REPO = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO / "target" / "test-cache"
CORPUS = CACHE_ROOT / f"gunicorn-{GUNICORN_VERSION}-requests"


def fetch() -> Path:
    """Returns the directory holding valid/ and invalid/, downloading the sdist first if needed."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / "gunicorn.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (CORPUS / "valid").is_dir() and (CORPUS / "invalid").is_dir():
            return CORPUS
        sdist_dir = CACHE_ROOT / "sdist"
        sdist = sdist_dir / f"gunicorn-{GUNICORN_VERSION}.tar.gz"
        if not sdist.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                            "--no-binary", ":all:", "--no-deps", f"gunicorn=={GUNICORN_VERSION}",
                            "-d", str(sdist_dir)], check=True, stdin=subprocess.DEVNULL)
        tmp = CORPUS.with_name(CORPUS.name + ".tmp")
        if tmp.exists():
            import shutil
            shutil.rmtree(tmp)
        tmp.mkdir()
        prefix = f"gunicorn-{GUNICORN_VERSION}/tests/requests/"
        with tarfile.open(sdist) as tf:
            for member in tf.getmembers():
                if not member.name.startswith(prefix) or not member.isfile():
                    continue
                rel = member.name[len(prefix):]
                if not re.fullmatch(r"(valid|invalid)/[A-Za-z0-9_.-]+\.(http|py)", rel):
                    continue
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src:
                    dest.write_bytes(src.read())
        tmp.rename(CORPUS)
        return CORPUS


# --- stubs for what the .py files use ---------------------------------------------------------------------------


def split_request_uri(uri: str) -> urllib.parse.SplitResult:
    # Same rule as gunicorn.util.split_request_uri: a target starting with // is a path, not a netloc.
    if uri.startswith("//"):
        parts = urllib.parse.urlsplit("." + uri)
        return parts._replace(path=parts.path[1:])
    return urllib.parse.urlsplit(uri)


def uri(data: str) -> dict:
    ret = {"raw": data}
    parts = split_request_uri(data)
    ret["scheme"] = parts.scheme or ""
    ret["host"] = parts.netloc.rsplit(":", 1)[0] or None
    try:
        ret["port"] = parts.port or 80
    except ValueError:
        ret["port"] = 80
    ret["path"] = parts.path or ""
    ret["query"] = parts.query or ""
    ret["fragment"] = parts.fragment or ""
    return ret


class StubConfig:
    """Records cfg.set(name, value): the settings a case changes from gunicorn's defaults."""

    def __init__(self):
        self.settings: dict[str, object] = {}

    def set(self, name, value):
        self.settings[name] = value

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__["settings"].get(name)


_error_classes: dict[str, type] = {}


def _errors_getattr(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _error_classes:
        _error_classes[name] = type(name, (Exception,), {})
    return _error_classes[name]


def _stub_modules() -> dict[str, types.ModuleType]:
    gunicorn = types.ModuleType("gunicorn")
    config = types.ModuleType("gunicorn.config")
    config.Config = StubConfig
    http = types.ModuleType("gunicorn.http")
    errors = types.ModuleType("gunicorn.http.errors")
    errors.__getattr__ = _errors_getattr
    gunicorn.config, gunicorn.http, http.errors = config, http, errors
    return {"gunicorn": gunicorn, "gunicorn.config": config, "gunicorn.http": http, "gunicorn.http.errors": errors}


def load_py(path: Path) -> dict:
    stubs = _stub_modules()
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        ns = {"__name__": "__config__", "__file__": str(path), "uri": uri, "cfg": StubConfig()}
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), ns)
        return ns
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def decode_hex_escapes(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if i + 3 < len(data) and data[i:i + 2] == b"\\x":
            try:
                out.append(int(data[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    return bytes(out)


def load_http(path: Path) -> bytes:
    """The bytes on the wire, decoded exactly as gunicorn's treq.request/badrequest do."""
    data = path.read_bytes()
    data = data.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\000").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    data = decode_hex_escapes(data)
    if b"\\" in data:
        raise AssertionError(f"{path}: unexpected backslash in test data")
    return data


@dataclass
class Case:
    name: str
    kind: str  # "valid" | "invalid"
    data: bytes
    expect: list[dict] = field(default_factory=list)  # valid: one dict per request
    error: str = ""  # invalid: gunicorn's exception name
    settings: dict = field(default_factory=dict)  # non-default gunicorn settings the case relies on

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


def load_cases(kind: str) -> list[Case]:
    root = fetch() / kind
    cases = []
    for http in sorted(root.glob("*.http")):
        py = http.with_suffix(".py")
        ns = load_py(py)
        req = ns["request"]
        c = Case(name=http.stem, kind=kind, data=load_http(http), settings=dict(ns["cfg"].settings))
        if kind == "valid":
            c.expect = req if isinstance(req, list) else [req]
        else:
            c.error = getattr(req, "__name__", repr(req))
        cases.append(c)
    return cases


def environ_key(header_name: str) -> str:
    """A request header's key in the WSGI environ (CGI rules)."""
    key = header_name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return "HTTP_" + key


if __name__ == "__main__":
    if "--fetch" in sys.argv:
        d = fetch()
        print(f"gunicorn {GUNICORN_VERSION} corpus: {d} "
              f"({len(list((d / 'valid').glob('*.http')))} valid, "
              f"{len(list((d / 'invalid').glob('*.http')))} invalid)")
    else:
        for kind in ("valid", "invalid"):
            for c in load_cases(kind):
                print(c.id, c.error or len(c.expect), c.settings or "")
