"""The retrain queue: priority order, folding of duplicate triggers, one job at a time under a lock,
recovery of a job whose worker died, and a trigger arriving while a retrain runs."""

from __future__ import annotations

import multiprocessing as mp
import re

import pytest

from omgmagics.errors import UsageError
from omgmagics.ops.queue import RetrainQueue


def test_priority_order_then_age(tmp_path):
    q = RetrainQueue(tmp_path)
    low, _ = q.enqueue("schedule", "low")
    manual, _ = q.enqueue("manual", "normal")
    drift, _ = q.enqueue("drift", "high", alerts=["a1"])
    perf, _ = q.enqueue("performance", "high", alerts=["p1"])
    assert [j.id for j in q.pending()] == [drift.id, perf.id, manual.id, low.id]
    with q.worker() as got:
        assert got
        assert [q.claim("w").id for _ in range(4)] == [drift.id, perf.id, manual.id, low.id]
        assert q.claim("w") is None


def test_duplicate_triggers_are_folded(tmp_path):
    q = RetrainQueue(tmp_path)
    first, how = q.enqueue("drift", "normal", "window 1", alerts=["a1"])
    assert how == "queued"
    again, how = q.enqueue("drift", "normal", alerts=["a1"])
    assert (again.id, how, again.requests) == (first.id, f"folded into queued job {first.id}", 2)
    merged, how = q.enqueue("drift", "high", "window 2", alerts=["a2"])
    assert merged.id == first.id and merged.alerts == ["a1", "a2"] and merged.priority_name == "high"
    assert merged.reason == "window 1; window 2"
    other, how = q.enqueue("manual")
    assert other.id != first.id and how == "queued"
    assert len(q.pending()) == 2


def test_trigger_while_a_retrain_runs_is_queued_not_run_twice(tmp_path):
    q = RetrainQueue(tmp_path)
    job, _ = q.enqueue("drift", alerts=["a1"])
    with q.worker() as got:
        assert got
        running = q.claim("w1")
        assert running.id == job.id and running.state == "running"
        # the same evidence again: already being answered by the running job
        same, how = q.enqueue("drift", alerts=["a1"])
        assert (same.id, how) == (job.id, f"already covered by running job {job.id}")
        # new evidence: one new queued job, however often it is asked for
        new, how = q.enqueue("drift", alerts=["a1", "a2"])
        assert how == "queued" and new.id != job.id
        assert q.enqueue("drift", alerts=["a2"])[1] == f"folded into queued job {new.id}"
        # a manual request while a manual retrain runs waits for the next run
        manual, _ = q.enqueue("manual")
        q2 = q.claim("w1")
        assert q2.id == new.id  # (the drift job was first in line; the manual one still waits)
        again, how = q.enqueue("manual")
        assert (again.id, how) == (manual.id, f"folded into queued job {manual.id}")
        # a second worker cannot start while the first holds the lock
        with q.worker() as second:
            assert second is False
        q.finish(job.id, result={"decision": "keep"})
    assert [j.id for j in q.pending()] == [manual.id]
    assert q.get(job.id).state == "done" and q.get(job.id).result == {"decision": "keep"}
    assert q.get(new.id).state == "running"


def _hold_lock(folder, started, release):
    q = RetrainQueue(folder)
    with q.worker() as got:
        started.put(got)
        release.wait(30)


def test_the_lock_holds_across_processes(tmp_path):
    ctx = mp.get_context("spawn")
    started, release = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), started, release))
    proc.start()
    try:
        assert started.get(timeout=60) is True
        q = RetrainQueue(tmp_path)
        with q.worker() as got:
            assert got is False
    finally:
        release.set()
        proc.join(30)
    with RetrainQueue(tmp_path).worker() as got:
        assert got is True


def test_a_job_left_running_by_a_dead_worker_is_failed(tmp_path):
    q = RetrainQueue(tmp_path)
    job, _ = q.enqueue("manual")
    with q.worker():
        q.claim("w1")
    # the worker "died": the job is still running but nobody holds the lock
    assert q.get(job.id).state == "running"
    with q.worker() as got:
        assert got
    j = q.get(job.id)
    assert j.state == "failed" and j.error == "the worker stopped before the job finished (process ended)"


def test_bad_requests(tmp_path):
    q = RetrainQueue(tmp_path)
    with pytest.raises(UsageError, match=re.escape("Unknown retrain trigger 'drfit'. Available: drift, "
                                                   "manual, performance, schedule. Did you mean: drift?")):
        q.enqueue("drfit")
    with pytest.raises(UsageError, match=re.escape("No retrain job 9. See `omg ops pipeline --action "
                                                   "history`.")):
        q.get(9)
