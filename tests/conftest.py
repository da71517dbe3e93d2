"""Shared fixtures: projects on small real data, the CLI in-process, a testing IPython shell."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

TINY_FRAC = 0.02  # ~980 rows of the Adult demo data: enough for every phase, fast


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test runs in its own working directory with quiet, deterministic settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    yield


def set_yaml_value(path: Path, key: str, value: str) -> None:
    """Replace the value of the first ``key:`` line of a YAML file (comments kept)."""
    text = path.read_text()
    new, n = re.subn(rf"^(\s*{re.escape(key)}:)\s*[^#\n]*", rf"\1 {value}", text, count=1, flags=re.M)
    assert n == 1, f"{key} not found in {path}"
    path.write_text(new)


@pytest.fixture
def demo_project(tmp_path) -> Path:
    """A fresh project on a 2% sample of the bundled Adult data; returns its folder."""
    from omgmagics.scaffold import init_project

    init_project("demo", parent=tmp_path)
    root = tmp_path / "demo"
    set_yaml_value(root / "omg.yaml", "sample_frac", str(TINY_FRAC))
    return root


@pytest.fixture
def run_cli(capsys):
    """Run ``omg ARGS`` in-process from `cwd`; returns (exit code, stdout, stderr)."""
    from omgmagics.cli import main

    def run(args: list[str], cwd: str | os.PathLike | None = None):
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        finally:
            os.chdir(old)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def _shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"  # no history database on disk
    ip = InteractiveShell.instance(config=cfg)
    ip.run_line_magic("load_ext", "omgmagics")
    return ip


@pytest.fixture
def ipython(_shell):
    """The testing shell with omgmagics loaded; its namespace is reset for each test."""
    keep = set(_shell.user_ns_hidden)
    for name in [n for n in _shell.user_ns if n not in keep and not n.startswith("_")]:
        del _shell.user_ns[name]
    return _shell


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session (see tests/postgres.py)."""
    from .postgres import find_bin, postgres_cluster

    if find_bin() is None:
        pytest.skip("PostgreSQL server binaries missing (make test installs Debian's postgresql)")
    with postgres_cluster() as url:
        yield url
