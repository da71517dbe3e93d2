"""The bad-input corpus (tests/data/bad/cases.yaml) through both shells.

Each case asserts the exact ``OmgError`` class and message, the CLI's exit code (2 usage, 1 other),
a single message and no traceback in a notebook, and that no file of the project (or beside it) changed.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from IPython.utils.capture import capture_output

from omgmagics import errors

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text())


def tree_digest(root: Path) -> dict[str, str]:
    # .omg/lock is the project lock's file (omgmagics/lock.py): a writer verb opens it before it
    # runs and empties it when it ends; it holds no project state
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parts[-2:] != (".omg", "lock")}


def _fill(text: str, root: Path) -> str:
    return text.replace("{bad}", str(BAD)).replace("{root}", str(root))


@pytest.fixture
def case_project(tmp_path):
    from omgmagics.scaffold import init_project

    init_project("proj", parent=tmp_path)
    return tmp_path, tmp_path / "proj"


def _apply_setup(project: Path, setup: dict) -> None:
    for name, src in (setup or {}).get("copy", {}).items():
        shutil.copy(BAD / src, project / name)
    for name, text in (setup or {}).get("append", {}).items():
        with open(project / name, "a") as fh:
            fh.write(text)
    for name, text in (setup or {}).get("write", {}).items():
        (project / name).write_text(text)


def test_corpus_is_large_and_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 45
    # every verb group has its bad inputs
    assert {c["argv"][0] for c in CASES} >= {"ml", "data", "feature", "train", "optim", "deploy", "ops"}
    assert all(hasattr(errors, c["error"]) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, case_project, run_cli, ipython):
    root, project = case_project
    _apply_setup(project, case.get("setup"))
    argv = [_fill(a, root) for a in case["argv"]]
    cls = getattr(errors, case["error"])
    before = tree_digest(root)

    code, out, err = run_cli(argv, cwd=project)
    message = err.strip().removeprefix("error: ")
    if "message" in case:
        assert message == _fill(case["message"], root)
    else:
        assert re.match(_fill(case["match"], root), message, re.S), message
    assert code == cls.exit_code == (2 if issubclass(cls, errors.UsageError) else 1)
    assert tree_digest(root) == before

    import os

    os.chdir(project)
    line = " ".join(shlex.quote(a) for a in argv[1:])
    with capture_output() as cap:
        ipython.run_cell(f"%omg{argv[0]} {line}")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", cap.stdout + cap.stderr)
    # Parser messages name the shell's own prog (%omgml status); core messages are shell-neutral.
    in_magic = message.replace(f"omg {argv[0]} ", f"%omg{argv[0]} ")
    assert f"{case['error']}: " in shown
    assert shown.count(in_magic) + (shown.count(message) if in_magic != message else 0) == 1, shown
    assert "Traceback" not in shown
    assert tree_digest(root) == before
