"""Distributed tuning on a real PostgreSQL cluster (issue #9): several worker processes share one
Optuna study through ``omg train tune --storage postgresql://... --study NAME``.

- ``--workers 2`` and ``--workers 4`` (one CLI call, local worker processes): every finished or failed
  trial belongs to one of the workers, no trial number repeats, the best trial is the same from every
  worker's view of the storage and is the one the kit refitted;
- two separate ``omg train tune`` processes for the same study (as two hosts would run it), one killed
  with SIGKILL while it runs a trial: the heartbeat (``tuning.heartbeat_s: 1`` here) marks that trial
  failed, the survivor retries it and finishes the study.

Tiny synthetic data (600 rows), at most 150 boosting rounds per trial.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from omgmagics.errors import ConfigError
from tests.helpers.modeling import make_project

TUNING = """\
tuning:
  heartbeat_s: 1
  search_space:
    xgboost:
      n_estimators: 150
"""
HOST = socket.gethostname()
OMG = Path(sys.executable).with_name("omg")
ENV = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "demo", n=600, extra_yaml=TUNING)


def _study(url: str, name: str):
    import optuna

    from omgmagics.modeling.tune import make_storage

    # A storage object of its own: what one more worker process would see.
    return optuna.load_study(study_name=name, storage=make_storage(url, 1))


def _running_trial(trials: list, worker: str):
    """The trial `worker` is fitting (every parameter sampled, still running) among `trials`, or
    None. A trial caught while its parameters are being drawn one by one is not "fitting": its retry
    would keep the drawn ones and sample the rest."""
    from optuna.trial import TrialState

    from omgmagics.modeling.spaces import SPACES

    sampled = {name for name, spec in SPACES["xgboost"].items() if isinstance(spec, dict)}
    return next((t for t in trials if t.state == TrialState.RUNNING
                 and t.user_attrs.get("worker") == worker and set(t.params) == sampled), None)


def _tune_args(url: str, study: str, trials: int, workers: int = 1) -> list[str]:
    return ["train", "tune", "--trials", str(trials), "--storage", url, "--study", study,
            "--workers", str(workers), "--no-register", "--format", "json"]


def _check_shared_study(url: str, study: str, workers: int, trials: int, report: dict) -> None:
    from optuna.trial import TrialState

    done = _study(url, study).get_trials(deepcopy=False)
    states = Counter(t.state for t in done)
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}, states
    per_worker = Counter(t.user_attrs["worker"] for t in done)
    assert len(per_worker) == workers, per_worker
    assert all(w.startswith(f"{HOST}:") and n >= 1 for w, n in per_worker.items()), per_worker
    counted = states[TrialState.COMPLETE] + states[TrialState.PRUNED] + states[TrialState.FAIL]
    assert counted == sum(per_worker.values()) == len(done)
    numbers = [t.number for t in done]
    assert len(set(numbers)) == len(numbers) and sorted(numbers) == list(range(len(done)))
    # Every worker stops once the study holds `trials` finished trials; the ones still running
    # then finish too, so at most workers - 1 more.
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    assert trials <= finished <= trials + workers - 1
    best = {(s.best_trial.number, s.best_value) for s in (_study(url, study) for _ in per_worker)}
    assert len(best) == 1
    (number, value), = best
    assert report["data"]["best_value"] == pytest.approx(value)
    assert report["summary"]["completed"] == states[TrialState.COMPLETE]
    assert report["summary"]["pruned"] == states[TrialState.PRUNED]


def _hold_until_all_joined(url: str, study: str, workers: int, proc: subprocess.Popen,
                           timeout: float = 150) -> set[int]:
    """Freeze (SIGSTOP) each worker at its first trial until `workers` of them hold one, then let
    them all go on: every worker takes part however long its start-up takes on a loaded machine
    (the default heartbeat is 30 s, so a short freeze fails no trial)."""
    frozen: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(frozen) < workers:
            assert proc.poll() is None, f"omg train tune exited early ({proc.returncode})"
            assert time.monotonic() < deadline, f"only {len(frozen)} of {workers} workers started"
            for trial in _trials(url, study):
                pid = int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
                if pid and pid not in frozen:
                    os.kill(pid, signal.SIGSTOP)
                    frozen.add(pid)
            time.sleep(0.1)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    return frozen


def _trials(url: str, study: str) -> list:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []
    finally:
        storage.engine.dispose()


@pytest.mark.parametrize("workers,trials", [(2, 8), (4, 12)])
def test_workers_share_one_study(tmp_path, postgres_url, workers, trials):
    """``omg train tune --workers N`` on PostgreSQL: N processes, one study."""
    root = make_project(tmp_path / "demo", n=600, extra_yaml=TUNING.replace("  heartbeat_s: 1\n", ""))
    study = f"shared-{workers}"
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([str(OMG), *_tune_args(postgres_url, study, trials, workers)],
                                cwd=root, env=ENV, stdout=stdout, stderr=stderr,
                                start_new_session=True)
    try:
        pids = _hold_until_all_joined(postgres_url, study, workers, proc)
        assert proc.pid in pids  # the command's own process is one of the workers
        assert proc.wait(180) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # with its worker processes
            proc.wait(10)
    report = json.loads(out.read_text())
    assert report["summary"]["study"] == study
    assert report["summary"]["storage"] == postgres_url
    _check_shared_study(postgres_url, study, workers, trials, report)


def test_heartbeat_setting(root, postgres_url):
    from omgmagics.modeling.tune import heartbeat_seconds, make_storage
    from omgmagics.project import Project

    assert heartbeat_seconds(Project.at(root)) == 1
    storage = make_storage(postgres_url, 3)
    assert storage.get_heartbeat_interval() == 3
    storage.engine.dispose()
    text = (root / "omg.yaml").read_text()
    (root / "omg.yaml").write_text(text.replace("heartbeat_s: 1", "heartbeat_s: 0"))
    with pytest.raises(ConfigError, match=re.escape(
            "tuning.heartbeat_s must be a whole number of seconds >= 1, got 0. Fix it in omg.yaml "
            "(default 30).")):
        heartbeat_seconds(Project.at(root))
    (root / "omg.yaml").write_text(text.replace("  heartbeat_s: 1\n", ""))
    assert heartbeat_seconds(Project.at(root)) == 30


def test_killed_worker_trial_is_failed_by_the_heartbeat(root, postgres_url, tmp_path):
    """Two ``omg train tune`` processes for one study, as two hosts run it; one dies mid-trial."""
    from optuna.trial import TrialState

    study, trials = "killed", 20
    args = [str(OMG), *_tune_args(postgres_url, study, trials)]
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    victim = subprocess.Popen(args, cwd=root, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    tag = f"{HOST}:{victim.pid}"
    survivor = None
    try:
        running = None
        deadline = time.monotonic() + 150
        while running is None:
            assert victim.poll() is None, "the victim finished before it ran a trial"
            assert time.monotonic() < deadline, "the victim never ran a trial"
            now = _trials(postgres_url, study)
            if survivor is None and now:
                # The victim made the study (and the MLflow experiment): the second host joins.
                with open(out, "w") as stdout, open(err, "w") as stderr:
                    survivor = subprocess.Popen(args, cwd=root, env=ENV, stdout=stdout,
                                                stderr=stderr)
            mid = _running_trial(now, tag)
            if mid is None:
                time.sleep(0.05)
                continue
            # Freeze the victim, then make sure that trial is still running: kill it mid-trial.
            victim.send_signal(signal.SIGSTOP)
            again = _running_trial(_trials(postgres_url, study), tag)
            if again is not None and again.number == mid.number:
                running = again
            else:
                victim.send_signal(signal.SIGCONT)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        assert survivor.wait(180) == 0, err.read_text()[-3000:]
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    report = json.loads(out.read_text())
    me = f"{HOST}:{survivor.pid}"

    done = _study(postgres_url, study).get_trials(deepcopy=False)
    killed = done[running.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["worker"] == tag
    # RetryHeartbeatStaleTrialCallback queued the same parameters again; the survivor ran them.
    retry = [t for t in done if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry[0].user_attrs["worker"] == me
    states = Counter(t.state for t in done)
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}, states
    assert states[TrialState.FAIL] == 1
    per_worker = Counter(t.user_attrs["worker"] for t in done)
    assert set(per_worker) == {tag, me}
    assert sum(per_worker.values()) == len(done) == len({t.number for t in done})
    assert trials <= states[TrialState.COMPLETE] + states[TrialState.PRUNED] <= trials + 1
    assert report["data"]["best_value"] == pytest.approx(_study(postgres_url, study).best_value)
