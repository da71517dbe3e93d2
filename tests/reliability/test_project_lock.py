"""The project lock, durable atomic writes and the retrain job's compare-and-set of the champion alias.

Real processes, not mocks: a holder is a ``python -c`` process in the lock, the commands are the
``omg`` CLI of the venv; a killed holder is SIGKILLed. Every wait polls with a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omgmagics.errors import BusyError
from omgmagics.lock import LOCK_ENV, WAIT_ENV, holder, lock_path, project_lock
from tests.helpers.ops import small_project, write_log, write_reference

OMG = str(Path(sys.executable).with_name("omg"))
REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys\n"
        "from omgmagics.lock import project_lock\n"
        "with project_lock(sys.argv[1], sys.argv[2]) as token:\n"
        "    print(token, flush=True)\n"
        "    sys.stdin.read()\n")


def _env(**extra: str) -> dict[str, str]:
    """Another terminal's environment: no lock inherited, no waiting unless asked."""
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    env[WAIT_ENV] = "0"
    env.update(extra)
    return env


def _omg(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([OMG, *args], capture_output=True, text=True, timeout=timeout,
                          env=_env() if env is None else env)


class Holder:
    """A process holding the project's lock as `verb` until released or killed."""

    def __init__(self, root: Path, verb: str = "ml run"):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), verb], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=_env())
        self.token = self.proc.stdout.readline().strip()  # printed once the lock is held
        assert self.token, "the holder did not get the lock"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def project(tmp_path) -> Path:
    return small_project(tmp_path)


@pytest.fixture
def held(project):
    h = Holder(project)
    yield h
    h.close()


def _expected(root: Path, pid: int, verb: str = "ml run") -> str:
    started = dt.datetime.fromisoformat(holder(root)["started"]).astimezone()
    return (f"Another omg command holds this project's lock: '{verb}' (pid {pid}, since "
            f"{started:%H:%M:%S}). Wait for it to finish, or stop it; the lock is released when that "
            "process ends.")


def test_a_second_writer_is_refused_naming_the_holder_and_a_reader_runs(project, held):
    info = holder(project)
    assert info["pid"] == held.proc.pid and info["verb"] == "ml run" and info["id"] == held.token
    before = (project / "reports" / "index.html").exists()
    out = _omg("ml", "report", "--project", str(project))
    assert out.returncode == 1
    assert out.stderr.strip() == "error: " + _expected(project, held.proc.pid)
    assert (project / "reports" / "index.html").exists() == before  # refused before it wrote
    out = _omg("data", "split", "--project", str(project))  # any writer verb, the same refusal
    assert out.returncode == 1 and _expected(project, held.proc.pid) in out.stderr
    # read-only verbs take no lock
    status = _omg("ml", "status", "--project", str(project))
    assert status.returncode == 0, status.stderr
    assert _omg("ops", "pipeline", "--project", str(project)).returncode == 0
    assert _omg("feature", "store", "--list", "--project", str(project)).returncode == 0


def test_a_waiting_writer_gets_the_lock_once_the_holder_ends(project, held):
    threading.Thread(target=held.release, daemon=True).start()
    t0 = time.monotonic()
    with project_lock(project, "ml report", wait=30) as token:  # polls until the holder is gone
        assert holder(project)["id"] == token != held.token
    assert time.monotonic() - t0 < 30
    with project_lock(project, "again", wait=0):  # and it was released
        pass


def test_a_killed_holder_never_blocks_the_next_command(project, held):
    held.kill()
    stale = holder(project)
    assert stale["pid"] == held.proc.pid  # the dead holder's record is left behind ...
    out = _omg("ml", "report", "--project", str(project))
    assert out.returncode == 0, out.stderr  # ... and means nothing: the OS released the flock
    assert (project / "reports" / "index.html").is_file()
    assert lock_path(project).read_text() == ""  # a holder that ends normally clears its record


def test_a_child_with_the_holders_token_is_let_in_others_are_not(project, held):
    ok = _omg("ml", "report", "--project", str(project), env=_env(**{LOCK_ENV: held.token}))
    assert ok.returncode == 0, ok.stderr
    stale = _omg("ml", "report", "--project", str(project), env=_env(**{LOCK_ENV: "0" * 32}))
    assert stale.returncode == 1 and "holds this project's lock: 'ml run'" in stale.stderr


def test_reentrant_in_process_and_inherited_by_subprocesses(project):
    from omgmagics.cli import main

    assert LOCK_ENV not in os.environ
    with project_lock(project, "ml run", wait=0) as token:
        assert os.environ[LOCK_ENV] == token
        with project_lock(project, "data split", wait=0) as inner:  # a verb calling a verb
            assert inner == token
        assert main(["ml", "report", "--project", str(project)]) == 0  # through the registry
        # what the runner's papermill kernels do: a child process inherits the environment
        child = subprocess.run([OMG, "ml", "report", "--project", str(project)], capture_output=True,
                               text=True, timeout=60, env={**os.environ, WAIT_ENV: "0"})
        assert child.returncode == 0, child.stderr
        assert holder(project)["id"] == token  # still ours
    assert LOCK_ENV not in os.environ
    other = Holder(project, "data split")  # released: another process takes it at once
    other.release()


def test_the_wait_comes_from_the_environment_and_a_bad_value_is_named(project, monkeypatch):
    from omgmagics.errors import ConfigError
    from omgmagics.lock import DEFAULT_WAIT, default_wait

    monkeypatch.delenv(WAIT_ENV, raising=False)
    assert default_wait() == DEFAULT_WAIT
    monkeypatch.setenv(WAIT_ENV, "2.5")
    assert default_wait() == 2.5
    monkeypatch.setenv(WAIT_ENV, "soon")
    with pytest.raises(ConfigError, match=r"OMG_LOCK_WAIT='soon' is not a number of seconds"):
        default_wait()


def test_busy_error_in_process(project):
    h = Holder(project, "ops retrain")
    try:
        with pytest.raises(BusyError) as err:
            with project_lock(project, "train compare", wait=0.2):
                pass
        assert str(err.value) == _expected(project, h.proc.pid, "ops retrain")
    finally:
        h.close()


def test_every_verb_declares_whether_it_writes():
    from omgmagics.commands import load_all

    reg = load_all()
    read_only = {("ml", "init"), ("ml", "status"), ("ml", "ui"), ("optim", "profile")}
    for group, verbs in reg.items():
        for verb, cmd in verbs.items():
            if not cmd.implemented:
                continue
            want = (group, verb) not in read_only
            if callable(cmd.writes):  # depends on the options: decided on the parsed defaults here
                continue
            assert cmd.writes is want, f"{group} {verb}"

    def lock(group: str, *argv: str) -> bool:
        cmd = reg[group][argv[0]]
        return cmd.takes_lock(cmd.parse(list(argv[1:])))

    assert not lock("ml", "gate", "list") and lock("ml", "gate", "approve", "--phase", "1", "--by", "a")
    assert not lock("ops", "pipeline") and not lock("ops", "pipeline", "--action", "history")
    assert lock("ops", "pipeline", "--action", "run")
    assert not lock("feature", "store", "--list") and lock("feature", "store", "--list", "--duckdb")
    assert lock("feature", "store")
    assert not lock("deploy", "package", "--verify", "models/x/1") and lock("deploy", "package")
    assert not lock("deploy", "serve") and not lock("deploy", "serve", "--init")
    assert lock("deploy", "serve", "--validate") and lock("deploy", "serve", "--background")
    assert not lock("train", "train", "--init") and lock("train", "train")
    assert lock("ops", "retrain") and not lock("ops", "retrain", "--queue-only")
    assert not lock("ops", "retrain", "--decline", "--reason", "seasonal")


# --- durable atomic writes ---------------------------------------------------------------------------
def test_atomic_writes_fsync_the_file_then_its_folder(tmp_path, monkeypatch):
    from omgmagics import atomic

    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    path = atomic.write_json(tmp_path / "state" / "a.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    # the file's data before the rename (the inode survives os.replace), then the folder's entry
    assert synced == [path.stat().st_ino, path.parent.stat().st_ino]

    synced.clear()
    with atomic.atomic_dir(tmp_path / "bundle") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.bin").write_bytes(b"x")
        (tmp / "m.json").write_text("{}")
    final = tmp_path / "bundle"
    want = {(final / "sub" / "x.bin").stat().st_ino, (final / "m.json").stat().st_ino,
            (final / "sub").stat().st_ino, final.stat().st_ino, tmp_path.stat().st_ino}
    assert set(synced) == want


# --- the retrain job's compare-and-set of the champion alias ----------------------------------------
def test_a_champion_moved_during_a_retrain_is_left_where_the_user_put_it(tmp_path):
    import pandas as pd

    from omgmagics.lifecycle.retrain_job import retrain
    from omgmagics.modeling.tracking import connect
    from omgmagics.ops.registry import Registry
    from omgmagics.ops.retrain import history
    from omgmagics.project import Project

    from ..test_ops_retrain import _model, _register

    root = small_project(tmp_path, "retraining: {eval_window: 2d, eval_min_labels: 100, "
                                   "min_improvement: 0.01, rollout: direct}\n")
    project = Project.at(root)
    source = pd.read_csv(root / "data/raw/source.csv")
    assert _register(project, _model(source, ["z"]), "champion")[0] == "1"  # a weak champion
    assert _register(project, _model(source, ["x", "z"]), None)[0] == "2"  # the user's pick
    write_reference(root)
    write_log(root, days=8, per_day=150, shift_from=6, shift=1.5, model_version="1", good_model=False)
    seen: dict[str, object] = {}

    def train(project, data_path, params, phases, progress):
        # the retrain run registers a better challenger ...
        version, run_id = _register(project, _model(pd.read_parquet(data_path), ["x", "z"]), "challenger")
        # ... while somebody promotes v2 by hand in MLflow (outside omg, which the lock refuses:)
        connect(project).set_alias("champion", "2")
        other = _omg("train", "compare", "--project", str(project.root))
        seen["other terminal"] = (other.returncode, other.stderr)
        return {"run_id": run_id, "gates_ok": True, "gate_note": ""}

    out = retrain(project, "manual", reason="weekly", train=train)
    reg = Registry(project)
    assert reg.alias("champion") == "2" and reg.alias("challenger") == "3"
    code, err = seen["other terminal"]
    assert code == 1 and "holds this project's lock: 'ops retrain'" in err
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    message = ("champion moved from v1 to v2 while this retrain ran; its candidate v3 was not promoted "
               "(it was compared with v1, not v2). Compare it by hand with `omg train evaluate --model "
               f"models:/{reg.name}/3` and `omg train evaluate --model models:/{reg.name}@champion`; it "
               "stays registered as challenger")
    assert dec["decision"] == "keep" and dec["reason"].startswith(message + " (the comparison said: "
                                                                  "challenger roc_auc")
    assert dec["champion_moved"] == {"from": "1", "to": "2"}
    assert dec["rollout"] == {"status": "not started", "detail": message}
    assert out.summary["decision"] == "keep" and any(message in m for m in out.messages)
    assert dec["champion"]["version"] == "1" and dec["challenger"]["version"] == "3"
