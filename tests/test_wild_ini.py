"""The wild-ini corpus: 105 real uWSGI ini files from 86 public projects (shared/wild-ini), each read the
way its project runs it (`liege --ini FILE`, with the environment variables the file reads), in liege's
`--check-config` mode, which reads and validates the whole configuration, prints it and exits.

Prints the share of files that get past configuration and the option table (option -> files using it ->
accepted / refused), and asserts the share does not drop below the level reached. A file that fails only
because a host file it includes (`ini = /etc/uwsgi/local.ini`, `for-readline = ../.env`) is not on this
machine counts as passing: that is the host, not the configuration. Every other error counts as a failure,
including liege refusing a real uWSGI option it does not implement (the message says so)."""

from __future__ import annotations

import collections
import os
import re
import shutil
from pathlib import Path

import pytest

from liegetest import REPO, run_liege

# CI lays a copy of shared/ beside the checkout; LIEGE_SHARED points elsewhere (e.g. /work/shared).
SHARED = Path(os.environ.get("LIEGE_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "wild-ini"

# The level reached (files past configuration, of 105; 13 before issue 12): raise it as liege learns more.
MIN_PASSING = 82

# What the files' projects set in their Dockerfiles, units and charts: plausible deploy values.
ENVIRONMENT = {
    "UWSGI_PROCESSES": "4", "UWSGI_THREADS": "2", "UWSGI_USER": "www-data", "UWSGI_GROUP": "www-data",
    "UWSGI_NUMBER_OF_THREADS": "2", "PORT": "8000", "BIND_ADDRESS": "0.0.0.0:8080", "SENTRY_DSN": "",
    "MEDIA_ROOT": "/srv/media", "STATIC_ROOT": "/srv/static", "STATIC_URL_ROOTLESS": "static/",
    "MEDIA_URL_ROOTLESS": "media/", "MOUNT_PATH": "/", "APP_URL_PATH": "/", "DJANGO_URL_PREFIX": "",
    "VIRTUAL_ENV": "/srv/venv", "KPI_SRC_DIR": "/srv/src/kpi", "KPI_LOGS_DIR": "/srv/logs",
    "KPI_PREFIX": "/", "KPI_UWSGI_HARAKIRI": "120", "KPI_UWSGI_WORKER_RELOAD_MERCY": "120",
    "KPI_UWSGI_WORKERS_COUNT": "2", "KOBOCAT_SRC_DIR": "/srv/src/kobocat", "KOBOCAT_LOGS_DIR": "/srv/logs",
    "KC_UWSGI_HARAKIRI": "120", "KC_UWSGI_WORKER_RELOAD_MERCY": "120", "KC_UWSGI_WORKERS_COUNT": "2",
    "CITYFARM_API_ROOT": "/srv/cityfarm", "CITYFARM_API_HTTP_PORT": "8000",
    "CITYFARM_API_MASTER_FIFO": "/tmp/cityfarm.fifo",
}

# How the project starts it, beyond `--ini FILE`: Debian's uwsgi init script (which WeblateOrg/docker's
# image uses) names each app's config through two placeholders.
EXTRA_ARGS = {
    "015-WeblateOrg-docker-weblate.ini": ["--set-ph", "deb-confnamespace=app", "--set-ph", "deb-confname=weblate"],
}

ERROR = re.compile(r"^liege: (?P<path>[^:\n]+):(?P<line>\d+): (?P<message>.*)$", re.M)
# `liege: /etc/uwsgi/local.ini: cannot read config file: ... (referenced at app.ini:2)`
MISSING_INCLUDE = re.compile(r"^liege: (?P<message>.*cannot read config file.*"
                             r"\(referenced at (?P<path>[^:\n]+):(?P<line>\d+)\))$", re.M)
HOST_FILE = re.compile(r"cannot read the file|cannot read config file")


def corpus_files() -> list[Path]:
    return sorted((CORPUS / "files").glob("*.ini"))


def keys_of(path: Path) -> set[str]:
    """The keys of the file's [uwsgi] section (what the option table counts)."""
    keys, section = set(), None
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif section == "uwsgi":
            keys.add(line.split("=", 1)[0].strip())
    return keys


def refused_option(message: str) -> str:
    """The option an error is about (`'static-map' is a uWSGI option...`, `invalid value 'x' for 'y'`)."""
    match = re.search(r"invalid value '.*' for '([^']+)'", message)
    if match:
        return match.group(1)
    match = re.search(r"'([^']+)'", message)
    return match.group(1) if match else message


def check(path: Path, cwd: Path) -> tuple[str, list[tuple[str, str]], bool]:
    """Reads `path` like its project does. Returns the outcome (`ok`, `host` or `refused`), every refusal
    found (by commenting out the refused line and reading again, at most 40 rounds), and whether the whole
    file was read in the end (so options in it that were never refused are known to be accepted)."""
    work = cwd / path.name
    shutil.copy(path, work)
    refusals: list[tuple[str, str]] = []
    removed: list[str] = []
    outcome = "ok"
    args = [*EXTRA_ARGS.get(path.name, []), "--ini", work, "--check-config"]
    for _round in range(40):
        result = run_liege(args, cwd=cwd, env=ENVIRONMENT, timeout=30)
        stderr = result.stderr.decode(errors="replace")
        if result.returncode == 0:
            assert b"# configuration OK" in result.stdout, result.stdout
            return outcome, refusals, True
        error = MISSING_INCLUDE.search(stderr) or ERROR.search(stderr)
        if error is None or HOST_FILE.search(error.group("message")):
            if outcome == "ok":
                outcome = "host"
            refusals.append(("(host file missing)", (error.group("message") if error else stderr.strip())[:160]))
            if error is None or Path(error.group("path")).name != work.name:
                break
        else:
            option = refused_option(error.group("message"))
            # A placeholder only some removed line referred to is an artifact of the removal, not a refusal.
            artifact = "unknown option" in error.group("message") and any(f"%({option})" in line for line in removed)
            if not artifact:
                outcome = "refused"
                refusals.append((option, error.group("message")[:110]))
            if Path(error.group("path")).name != work.name:
                break
        lines = work.read_text(errors="replace").splitlines(keepends=True)
        number = int(error.group("line"))
        removed.append(lines[number - 1])
        lines[number - 1] = "; (removed by test_wild_ini) " + lines[number - 1]
        work.write_text("".join(lines))
    return outcome, refusals, False


def _by_design(message: str) -> bool:
    """A refusal liege makes on purpose: a key that is no uWSGI option, or a mode it says it does not have."""
    return message.startswith("unknown option") or "is not supported by liege: liege runs WSGI" in message \
        or "is not supported by liege: liege serves one" in message


@pytest.mark.skipif(not (CORPUS / "files").is_dir(), reason=f"no wild-ini corpus at {CORPUS} (set LIEGE_SHARED)")
def test_wild_ini_corpus(tmp_path):
    files = corpus_files()
    assert len(files) >= 100, f"expected the 105-file corpus in {CORPUS}"
    outcomes: dict[str, str] = {}
    usage: dict[str, list[str]] = collections.defaultdict(list)
    refused: dict[str, set[str]] = collections.defaultdict(set)
    reasons: dict[str, str] = {}
    unread: set[str] = set()
    first_refusal: dict[str, str] = {}
    file_refusals: dict[str, list[tuple[str, str]]] = {}
    for path in files:
        cwd = tmp_path / path.stem
        cwd.mkdir()
        outcome, refusals, read_to_the_end = check(path, cwd)
        outcomes[path.name] = outcome
        if outcome == "refused":
            first_refusal[path.name] = ", ".join(sorted({option for option, _ in refusals}))
            file_refusals[path.name] = refusals
        for key in keys_of(path):
            usage[key].append(path.name)
            if not read_to_the_end:
                unread.add(key)
        for option, message in refusals:
            refused[option].add(path.name)
            reasons.setdefault(option, message)

    passing = [name for name, outcome in outcomes.items() if outcome in ("ok", "host")]
    print(f"\nwild-ini: {len(passing)}/{len(files)} files get past configuration "
          f"({100 * len(passing) / len(files):.1f} %; {sum(o == 'host' for o in outcomes.values())} of them "
          f"need a host file that is not here)")
    print(f"{'option':36} {'files':>5}  status")
    for option in sorted(usage, key=lambda key: (-len(usage[key]), key)):
        if option in refused:
            status = f"REFUSED in {len(refused[option])}: {reasons[option]}"
        else:
            status = "accepted" if option not in unread else "accepted where reached"
        print(f"{option:36} {len(usage[option]):5}  {status}")
    for option in sorted(set(refused) - set(usage)):
        print(f"{option:36} {'':5}  REFUSED in {len(refused[option])}: {reasons[option]}")
    # Why each failing file fails: a refusal by design (a key no uWSGI option has, which uWSGI ignores in
    # silence and liege refuses with a did-you-mean unless the file says `strict = false`; a loop engine or
    # vhost mode liege does not have, refused with what to do instead), or a feature liege lacks.
    by_design = {name for name, refusals_of in file_refusals.items()
                 if refusals_of and all(_by_design(message) for _, message in refusals_of)}
    print(f"refused by design: {len(by_design)} files (typos and unused keys, loop engines, vhost); past "
          f"configuration or refused by design: {len(passing) + len(by_design)}/{len(files)} "
          f"({100 * (len(passing) + len(by_design)) / len(files):.1f} %)")
    print("failing files and what they need:")
    for name in sorted(first_refusal):
        mark = " (by design)" if name in by_design else ""
        print(f"  {name}{mark}: {first_refusal[name]}")
    assert len(passing) >= MIN_PASSING, f"only {len(passing)} files pass (level reached: {MIN_PASSING})"
