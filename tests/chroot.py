"""Debian chroots for tests that need another distribution's Python or a clean system to install into.

A chroot is made once with `debootstrap --variant=minbase` and cached under `target/chroots/` (never committed);
`tests/run` prepares the ones the suite needs before pytest starts, so a test only finds it ready or skips with
the reason. Each chroot is keyed by its suite and package list, built in a scratch directory and renamed into
place when complete, under a lock, so parallel test workers and an interrupted build never see half a tree.

Programs run inside a chroot through `run_inside()` or a wrapper script from `wrapper()`: a private mount
namespace (`unshare --mount`) binds the host paths the test needs at the same paths inside (a test's temporary
directory, the liege checkout), mounts /proc and /dev, and `chroot`s. The mounts vanish with the namespace when
the program exits, so nothing is left mounted on the host even if a test is killed. The network namespace is
the host's: a vassal in the chroot listens on the same 127.0.0.1.

    python tests/chroot.py prepare trixie python3.13 libpython3.13 python3.13-venv   # prints the root
    python tests/chroot.py prepare                 # every chroot the suite uses (SUITE_CHROOTS), one root a line
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "target" / "chroots"
MIRROR = os.environ.get("LIEGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
READY = ".liege-ready"

# The chroots the suite uses, by name: (suite, packages). tests/run prepares each of them.
# procps: /bin/kill, which the .deb's units run for ExecReload (a Depends of it; tests/test_deb.py installs it).
TRIXIE_PYTHON = ("trixie", ("python3.13", "libpython3.13", "python3.13-venv", "procps"))
SUITE_CHROOTS = (TRIXIE_PYTHON,)


class ChrootUnavailable(RuntimeError):
    """debootstrap, unshare or the mirror is missing; the message says which (tests skip with it)."""


def root_for(suite: str, packages: tuple[str, ...] | list[str]) -> Path:
    """Where the chroot of this suite and package list lives (it may not exist yet)."""
    key = hashlib.sha256(" ".join([suite, *sorted(packages)]).encode()).hexdigest()[:12]
    return CACHE / f"{suite}-{key}"


def ready(suite: str, packages: tuple[str, ...] | list[str]) -> Path | None:
    """The chroot's root if it was completely built, else None (never builds)."""
    root = root_for(suite, packages)
    return root if (root / READY).exists() else None


def prepare(suite: str, packages: tuple[str, ...] | list[str], timeout: float = 900) -> Path:
    """Build the chroot unless it is already there, and return its root.

    Raises ChrootUnavailable with the cause when it cannot be built on this machine.
    """
    root = root_for(suite, packages)
    if (root / READY).exists():
        return root
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise ChrootUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ChrootUnavailable("building a chroot needs root (debootstrap, mount)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / READY).exists():  # another worker built it while this one waited
            return root
        scratch = root.with_name(root.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(scratch), MIRROR]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            shutil.rmtree(scratch, ignore_errors=True)
            raise ChrootUnavailable(f"debootstrap {suite} failed ({done.returncode}):\n{tail}")
        (scratch / READY).write_text(" ".join(argv) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        scratch.rename(root)
    return root


def _inside_script(root: Path, binds: list[Path], cwd: Path | None, overlay: Path | None = None,
                   mounts: dict[str, Path] | None = None) -> str:
    """The shell text that, in a fresh mount namespace, mounts what is needed and chroots.

    `overlay`: a host directory holding an overlayfs upper layer (`upper/`, `work/`, `merged/`): the chroot is
    entered through it, so what runs inside (dpkg -i, say) changes only that layer and the cached root stays
    clean; the same directory on a later call sees the earlier changes. `mounts`: host directories bound at
    another path inside (`{"/etc/liege/vassals": host_dir}`), as a container's volumes are.
    """
    lines = ["set -e", f"R={shlex.quote(str(root))}"]
    if overlay is not None:
        layer = Path(overlay).resolve()
        for part in ("upper", "work", "merged"):
            (layer / part).mkdir(parents=True, exist_ok=True)
        lines.append(f"L={shlex.quote(str(layer))}")
        lines.append('mount -t overlay overlay -o "lowerdir=$R,upperdir=$L/upper,workdir=$L/work" "$L/merged"')
        lines.append('R="$L/merged"')
    for path in binds:
        path = Path(path).resolve()
        inside = f"$R{shlex.quote(str(path))}"
        lines.append(f"mkdir -p {inside} && mount --rbind {shlex.quote(str(path))} {inside}")
    for inside_path, host in (mounts or {}).items():
        inside = f"$R{shlex.quote(inside_path)}"
        lines.append(f"mkdir -p {inside} && mount --rbind {shlex.quote(str(Path(host).resolve()))} {inside}")
    lines.append('mount -t proc proc "$R/proc"')
    lines.append('mount --rbind /dev "$R/dev"')
    lines.append('cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true')
    workdir = shlex.quote(str(cwd)) if cwd is not None else "/"
    lines.append(f'exec chroot "$R" /bin/sh -c \'cd "$0" && exec "$@"\' {workdir} "$@"')
    return "\n".join(lines)


def command(root: Path, argv: list[str], binds: list[Path] = (), cwd: Path | None = None,
            overlay: Path | None = None, mounts: dict[str, Path] | None = None) -> list[str]:
    """The argv that runs `argv` inside the chroot with `binds` visible at their host paths (and `overlay`,
    `mounts` as `_inside_script` says). The program keeps the caller's pid: unshare, sh and chroot each exec."""
    script = _inside_script(root, list(binds), cwd, overlay, mounts)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def run_inside(root: Path, argv: list[str], binds: list[Path] = (), cwd: Path | None = None,
               overlay: Path | None = None, mounts: dict[str, Path] | None = None, **kwargs):
    """subprocess.run of `argv` inside the chroot (kwargs as for subprocess.run)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(command(root, argv, binds, cwd, overlay, mounts), **kwargs)


def wrapper(path: Path, root: Path, exe: str, binds: list[Path] = ()) -> Path:
    """Write an executable script at `path` that runs `exe` inside the chroot with the caller's arguments and
    working directory, e.g. a `python = <path>` interpreter for a vassal on the chroot's CPython."""
    script = _inside_script(root, list(binds), None).replace("cd \"$0\"", "cd \"$LIEGE_CHROOT_CWD\"")
    path.write_text(
        "#!/bin/sh\n"
        f"# Runs {exe} inside the chroot {root} (written by tests/chroot.py).\n"
        'export LIEGE_CHROOT_CWD="$(pwd)"\n'
        f"exec unshare --mount --propagation private sh -c {shlex.quote(script)} sh {shlex.quote(exe)} \"$@\"\n"
    )
    path.chmod(0o755)
    return path


def main(argv: list[str]) -> int:
    if argv == ["prepare"]:
        try:
            for suite, packages in SUITE_CHROOTS:
                print(prepare(suite, packages))
        except (ChrootUnavailable, subprocess.TimeoutExpired) as err:
            print(f"tests/chroot.py: {err}", file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 2 and argv[0] == "prepare":
        try:
            print(prepare(argv[1], argv[2:]))
        except (ChrootUnavailable, subprocess.TimeoutExpired) as err:
            print(f"tests/chroot.py: {err}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
