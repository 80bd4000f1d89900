#!/usr/bin/env python3
"""Checks that liege's modules depend on each other one way only (the rule in docs/modules.md).

Every `crate::...`, `super::...` and `self::...` path in `src/**/*.rs` (comments and string literals stripped) is
an edge from the module of the file to the module it names. Each module belongs to one *unit* (the longest
entry of `UNITS` that prefixes it); an edge between two units must be listed in `ALLOWED`. The process kinds
(`emperor`, `master`, `worker`) sit on top and never use each other; everything they share lives below them.

    tests/check_modules.py            check src/, print each forbidden edge with file and line; exit 1 if any
    tests/check_modules.py --graph    print the unit graph as it is (to update docs/modules.md)
    tests/check_modules.py --src DIR  check another tree (the checker's own tests use this)

What it does not see: a bare path to a child module (`api::serve` in emperor/mod.rs), which can only point
down into the file's own module, and macros that build paths. Standard library only: tests/run runs it
before building anything, and tests/test_modules.py runs it (and tests it) under pytest.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Which unit may use which. A unit always may use itself; `crate` (src/lib.rs, which only declares modules)
# and the binary (src/main.rs, which wires the process kinds together) are not checked.
SHARED_BOTTOM = {"backoff", "latency", "launch", "privileges", "process", "systemd"}
ALLOWED: dict[str, set[str]] = {
    # The command line shared by the binary and the extension module: above the three process kinds it wires.
    "cli": {"emperor", "master", "worker", "control", "logging", "python"} | SHARED_BOTTOM,
    # The three kinds of process: on top, never importing each other.
    "emperor": {"emperor::api", "emperor::registry", "emperor::logs", "control", "logging", "stats"} | SHARED_BOTTOM,
    "master": {"master::daemons", "master::hooks", "master::lifecycle", "cache", "control", "logging", "python", "scoreboard", "spool", "stats"}
    | SHARED_BOTTOM,
    # Under the master: side processes (attach-daemon*) and hooks (hook-*, exec-*), pure decisions plus
    # their few effects; they know nothing of workers or Python.
    "master::daemons": {"control"} | SHARED_BOTTOM,
    "master::hooks": {"master::daemons", "logging"} | SHARED_BOTTOM,
    "master::lifecycle": set(SHARED_BOTTOM),
    "worker": {"control", "logging", "python", "routing", "scoreboard", "static_files", "stats"} | SHARED_BOTTOM,
    # Under the emperor: its HTTP API, which reads the emperor's model of its vassals (registry, logs).
    "emperor::api": {"emperor::registry", "emperor::logs", "control", "stats"} | SHARED_BOTTOM,
    "emperor::registry": {"emperor::logs", "control", "stats"} | SHARED_BOTTOM,
    "emperor::logs": set(SHARED_BOTTOM),
    # Shared pieces, each only above what it lists.
    "python": {"cache", "control", "logging", "scoreboard", "spool"} | SHARED_BOTTOM,
    "control": {"stats", "scoreboard"} | SHARED_BOTTOM,
    "stats": {"cache", "scoreboard"} | SHARED_BOTTOM,
    # Request-path pieces the worker uses: pure route programs, static-file lookups; the shared-memory cache
    # (created by the master, used by the `uwsgi` module in workers, reported in the stats document).
    "routing": set(SHARED_BOTTOM),
    "static_files": set(SHARED_BOTTOM),
    "cache": set(SHARED_BOTTOM),
    "scoreboard": set(SHARED_BOTTOM),
    # Spool files and the spoolers' shared table: written by workers (uwsgi.spool), run by spooler processes.
    "spool": set(SHARED_BOTTOM),
    # logging::router (the log process), logging::dispatch and logging::encode are part of this unit.
    "logging": set(SHARED_BOTTOM),
    "process": set(),
    # Dropping root (uid, gid, cap, emperor-tyrant): used by the emperor and the master.
    "privileges": set(),
    "systemd": set(),
    "latency": set(),
    "backoff": set(),
    # Which program (binary or interpreter) starts a liege process image: used by the CLI, emperor, master.
    "launch": set(),
}
UNITS = sorted(ALLOWED, key=lambda unit: -unit.count("::"))
UNCHECKED_FILES = {"lib.rs", "main.rs"}


@dataclass(frozen=True)
class Edge:
    file: str
    line: int
    source: str  # module of the file (or of the inline module the path is in)
    target: str  # module the path names

    def units(self) -> tuple[str | None, str | None]:
        return unit_of(self.source), unit_of(self.target)


def unit_of(module: str) -> str | None:
    for unit in UNITS:
        if module == unit or module.startswith(unit + "::"):
            return unit
    return None


def module_of(path: Path, src: Path) -> list[str]:
    """`src/emperor/api/mod.rs` -> ["emperor", "api"]; `src/stats/window.rs` -> ["stats", "window"]."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


_TOKEN = re.compile(
    r"""
      (?P<line_comment>//[^\n]*)
    | (?P<block_open>/\*)
    | (?P<raw_string>b?r(?P<hashes>\#*)")
    | (?P<string>b?"(?:\\.|[^"\\])*")
    | (?P<char>b?'(?:\\.|[^\\'\n])')
    | (?P<path>\b(?:crate|super|self)(?:\s*::\s*(?:\w+|\{))+)
    | (?P<inline_mod>\bmod\s+(?P<mod_name>\w+)\s*\{)
    | (?P<open>\{)
    | (?P<close>\})
    """,
    re.VERBOSE,
)


_KINDS = ("line_comment", "block_open", "raw_string", "string", "char", "path", "inline_mod", "open", "close")


def _skip_block_comment(text: str, start: int) -> int:
    """Index just past the block comment opened at `start` (they nest in Rust)."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _use_tree_targets(text: str, start: int) -> tuple[list[list[str]], int]:
    """The paths named by a `{...}` use tree starting at `start` (just past the `{`), and the index after it."""
    paths: list[list[str]] = []
    current: list[str] = []
    i = start
    while i < len(text):
        match = re.compile(r"\s*(\w+|::|\{|\}|,)").match(text, i)
        if not match:
            i += 1
            continue
        token, i = match.group(1), match.end()
        if token == "{":
            inner, i = _use_tree_targets(text, i)
            paths.extend(current + p for p in inner)
            current = []
        elif token == "}":
            if current:
                paths.append(current)
            return paths, i
        elif token == ",":
            if current:
                paths.append(current)
            current = []
        elif token == "::":
            continue
        elif token == "as":
            # `a::b as c`: the rename names nothing new.
            rename = re.compile(r"\s*\w+").match(text, i)
            i = rename.end() if rename else i
        else:
            current.append(token)
    return paths, i


def edges_in(path: Path, src: Path) -> list[Edge]:
    text = path.read_text(encoding="utf-8")
    file_module = module_of(path, src)
    relative = str(path.relative_to(src.parent))
    # Inline modules (`mod tests { ... }`) change what `super` and `self` mean: (name, brace depth at opening).
    inline: list[tuple[str, int]] = []
    depth = 0
    edges: list[Edge] = []
    i = 0
    while True:
        match = _TOKEN.search(text, i)
        if not match:
            break
        kind = next(group for group in _KINDS if match.group(group) is not None)
        i = match.end()
        if kind == "block_open":
            i = _skip_block_comment(text, match.start())
        elif kind == "raw_string":
            end = text.find('"' + match.group("hashes"), i)
            i = len(text) if end < 0 else end + 1 + len(match.group("hashes"))
        elif kind == "inline_mod":
            depth += 1
            inline.append((match.group("mod_name"), depth))
        elif kind == "open":
            depth += 1
        elif kind == "close":
            if inline and inline[-1][1] == depth:
                inline.pop()
            depth -= 1
        elif kind == "path":
            segments = [s for s in re.split(r"\s*::\s*", match.group("path")) if s]
            tails: list[list[str]] = [[]]
            if segments[-1] == "{":
                segments.pop()
                tails, i = _use_tree_targets(text, i)
            here = file_module + [name for name, _ in inline]
            line = text.count("\n", 0, match.start()) + 1
            for tail in tails:
                target = _resolve(segments + tail, here)
                if target is not None:
                    edges.append(Edge(relative, line, "::".join(here), "::".join(target)))
    return edges


def _resolve(segments: list[str], here: list[str]) -> list[str] | None:
    """The absolute module path (without `crate`) a path names, or None for the crate root itself."""
    if segments[0] == "crate":
        absolute = segments[1:]
    else:
        base = list(here)
        while segments and segments[0] in ("super", "self"):
            if segments.pop(0) == "super":
                if not base:
                    return None
                base.pop()
        absolute = base + segments
    return absolute or None


def check(src: Path) -> tuple[list[Edge], dict[tuple[str, str], list[Edge]]]:
    """Forbidden edges, and the whole unit graph (edges between distinct units)."""
    forbidden: list[Edge] = []
    graph: dict[tuple[str, str], list[Edge]] = {}
    lib = src / "lib.rs"
    declared = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", lib.read_text(), re.M)) if lib.exists() else set()
    for path in sorted(src.rglob("*.rs")):
        if path.relative_to(src).as_posix() in UNCHECKED_FILES:
            continue
        for edge in edges_in(path, src):
            source, target = edge.units()
            if source is None:
                forbidden.append(edge)  # a module with no place in the rule: give it one in ALLOWED
                continue
            if target is None:
                if edge.target.split("::")[0] not in declared:
                    continue  # an item of the crate root (lib.rs), not a module
                forbidden.append(edge)  # a module with no place in the rule
                continue
            if source == target:
                continue
            graph.setdefault((source, target), []).append(edge)
            if target not in ALLOWED.get(source, set()):
                forbidden.append(edge)
    return forbidden, graph


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    parser.add_argument("--graph", action="store_true", help="print the unit graph")
    args = parser.parse_args(argv)
    forbidden, graph = check(args.src)
    if args.graph:
        for (source, target), edges in sorted(graph.items()):
            print(f"{source} -> {target}  ({len(edges)} uses, e.g. {edges[0].file}:{edges[0].line})")
    for edge in forbidden:
        source, target = edge.units()
        if source is None or target is None:
            module = edge.source if source is None else edge.target
            why = f"module {module} belongs to no unit of ALLOWED in tests/check_modules.py"
        else:
            why = f"{source} may not use {target or edge.target}"
        print(f"{edge.file}:{edge.line}: {edge.source} -> {edge.target}: {why} (see docs/modules.md)")
    if forbidden:
        print(f"check_modules: {len(forbidden)} edge(s) against the module rule", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
