"""The module rule (docs/modules.md): src/ has no edge against it, and the checker does catch one.

The checker (tests/check_modules.py) is stdlib Python that reads `crate::`/`super::`/`self::` paths; these tests
run it on the real tree and on small made-up trees, so a checker that silently stopped seeing edges fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import check_modules

HERE = Path(__file__).resolve().parent


def make_tree(root: Path, files: dict[str, str]) -> Path:
    src = root / "src"
    modules = sorted({name.split("/")[0].removesuffix(".rs") for name in files})
    (src).mkdir(parents=True)
    (src / "lib.rs").write_text("".join(f"pub mod {m};\n" for m in modules) + "pub fn helper() {}\n")
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def forbidden(src: Path) -> list[tuple[str, str]]:
    return [(edge.source, edge.target) for edge in check_modules.check(src)[0]]


def test_src_follows_the_module_rule():
    result = subprocess.run([sys.executable, str(HERE / "check_modules.py")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_process_kind_importing_another_is_caught(tmp_path):
    src = make_tree(tmp_path, {
        "master/mod.rs": "//! uses [`crate::worker`] in a doc comment only: not an edge\n"
                         "use crate::scoreboard::Scoreboard;\nuse crate::{control, worker::run};\n",
        "worker/mod.rs": "pub fn run() {}\n",
        "scoreboard.rs": "pub struct Scoreboard;\n",
        "control/mod.rs": "",
    })
    assert forbidden(src) == [("master", "worker::run")]
    result = subprocess.run([sys.executable, str(HERE / "check_modules.py"), "--src", str(src)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "src/master/mod.rs:3: master -> worker::run: master may not use worker" in result.stdout


def test_shared_pieces_may_not_reach_up(tmp_path):
    src = make_tree(tmp_path, {
        "scoreboard.rs": 'const NOT_AN_EDGE: &str = "crate::master::x";\nfn f() { crate::master::go(); }\n',
        "master/mod.rs": "pub fn go() {}\n",
    })
    assert forbidden(src) == [("scoreboard", "master::go")]


def test_super_paths_and_inline_modules_resolve(tmp_path):
    src = make_tree(tmp_path, {
        # `super` from a file in emperor/api/ is emperor::api; from emperor/api/mod.rs it is emperor.
        "emperor/api/reads.rs": "use super::Shared;\nuse super::super::registry::State;\n"
                                "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        "emperor/api/mod.rs": "pub struct Shared;\nuse super::vassal::Supervisor;\n",
        "emperor/registry.rs": "pub enum State {}\n",
        "emperor/vassal.rs": "pub struct Supervisor;\n",
    })
    # The API may read the registry but not drive the emperor's vassal tasks.
    assert forbidden(src) == [("emperor::api", "emperor::vassal::Supervisor")]


def test_a_module_without_a_place_in_the_rule_is_reported(tmp_path):
    src = make_tree(tmp_path, {
        "gadget.rs": "use crate::process::unix_now;\n",
        "master/mod.rs": "use crate::gadget;\nuse crate::helper;\n",
        "process.rs": "pub fn unix_now() {}\n",
    })
    # `crate::helper` is an item of lib.rs, not a module: allowed.
    assert sorted(forbidden(src)) == [("gadget", "process::unix_now"), ("master", "gadget")]
