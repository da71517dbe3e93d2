"""Hyper-parameter tuning with Optuna (core layer).

A study per model type (``PROJECT-MODEL``) in the project's SQLite file ``optuna.db`` by default, or any
Optuna storage URL (``tuning.storage`` / ``--storage``, e.g. PostgreSQL shared by many workers). TPE
samples the search space; trials report the validation metric every few boosting rounds (XGBoost and
LightGBM callbacks) or every epoch (MLP) and a median pruner stops the unpromising ones. ``--trials N``
is the study's total: a study that was interrupted continues where it stopped, and stale trials of a
dead worker are failed by the heartbeat (``tuning.heartbeat_s``, default 30 s, stale after 4x; RDB
storages only) and retried once. Each trial records its worker (``host:pid``) as the user attribute
``worker``. The best trial is refitted, logged to MLflow and registered as ``challenger``.

Search spaces: a default per model type, overridable per parameter in ``omg.yaml``
(``tuning.search_space.MODEL.PARAM``) or a ``--space`` YAML file. A parameter is a fixed value, a
range ``{low, high, log, step, type}`` or ``{choices: [...]}`` (:mod:`omgmagics.modeling.spaces`).
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, UsageError
from .spaces import SPACES, check_space, decode_params, resolve_space, suggest  # noqa: F401

REPORT_EVERY = 50  # boosting rounds between reports to the pruner (each costs storage round trips)
HEARTBEAT_S = 30  # default tuning.heartbeat_s


def default_storage(project: Any) -> str:
    return str(project.config.get_path("tuning.storage") or
               f"sqlite:///{Path(project.root).resolve() / 'optuna.db'}")


def redact(url: str) -> str:
    from ..redact import redact_uri

    return redact_uri(url)


def heartbeat_seconds(project: Any) -> int:
    """``tuning.heartbeat_s`` (default 30): how often a running trial proves its worker alive."""
    value = project.config.get_path("tuning.heartbeat_s")
    if value is None:
        return HEARTBEAT_S
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"tuning.heartbeat_s must be a whole number of seconds >= 1, got "
                          f"{value!r}. Fix it in omg.yaml (default {HEARTBEAT_S}).")
    return value


def make_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> Any:
    """An Optuna storage: RDB with a heartbeat every `heartbeat_s` seconds; a running trial whose
    heartbeat is older than 4x that is failed (by the next worker starting a trial) and retried once."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith(("sqlite", "postgresql", "mysql", "oracle", "mssql")):
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are flagged experimental
                storage = RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
                                     grace_period=4 * heartbeat_s,
                                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                         max_retry=1))
            if url.startswith("sqlite"):
                # each pruning report is a commit, and a synced commit costs 10-20 ms on a plain
                # disk; WAL keeps the file consistent (a power cut may lose the last trials)
                from .tracking import fast_sqlite

                fast_sqlite(storage.engine)
            return storage
        except Exception as exc:  # noqa: BLE001 - driver missing, server down ...
            raise ConfigError(f"Cannot open the Optuna storage {redact(url)}: "
                              f"{str(exc).splitlines()[0]}. Check the URL and that its database "
                              "driver is installed.") from None
    if url.startswith(("journal:", "file:")):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.split(":", 1)[1]))
    raise ConfigError(f"Unsupported Optuna storage URL {redact(url)}: use sqlite:///PATH, "
                      "postgresql://..., mysql://... or journal:PATH. (optuna "
                      f"{optuna.__version__})")


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=REPORT_EVERY)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=REPORT_EVERY)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"Unknown pruner '{name}'. Available: hyperband, median, none.")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_objective(mt: Any, space: dict[str, Any], data: Any, *, metric: str, seed: int,
                   early_stopping_rounds: int | None, model_threads: int | None) -> Callable:
    """The Optuna objective: fit on train, report/prune on validation, return the validation score."""
    import optuna

    from ..metrics import get_metric, score
    from .models import fit_model

    higher = get_metric(metric).greater_is_better
    _, step_higher = mt.family_impl.eval_metric(metric, data.task, data.n_classes)
    flip = step_higher != higher

    def objective(trial: Any) -> float:
        # Which worker ran the trial: shared studies show it, and a dead worker's trial is findable.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, space)

        def on_step(step: int, value: float) -> None:
            trial.report(-value if flip else value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        fit = fit_model(mt, params, data, metric=metric, seed=seed,
                        early_stopping_rounds=early_stopping_rounds, on_step=on_step,
                        report_every=mt.family_impl.report_every or REPORT_EVERY,
                        n_jobs=model_threads)
        if fit.best_iteration is not None:
            trial.set_user_attr("best_iteration", int(fit.best_iteration))
        return score(metric, data.y["val"], fit.model.predict_scores(data.X["val"]), data.task)

    return objective


def _worker(root: str, model: str, study_name: str, storage: str, trials: int,
            timeout: float | None, features: str | None, space_file: str | None, seed: int,
            pruner: str, model_threads: int | None) -> None:
    """A separate worker process sharing the study (``--workers``)."""
    import optuna

    from ..project import Project
    from .data import load_model_data
    from .models import get_model_type

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    project = Project.at(root)
    data = load_model_data(project, features)
    mt = get_model_type(model, project.objective_type)
    space = resolve_space(project, model, mt.valid_params(project.objective_type), space_file)
    study = optuna.load_study(study_name=study_name,
                              storage=make_storage(storage, heartbeat_seconds(project)),
                              sampler=optuna.samplers.TPESampler(seed=seed), pruner=_pruner(pruner))
    objective = make_objective(mt, space, data, metric=project.primary_metric, seed=project.seed,
                               early_stopping_rounds=mt.family_impl.tune_patience, model_threads=model_threads)
    _optimize(study, objective, trials, timeout, 1, None)


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _optimize(study: Any, objective: Callable, trials: int, timeout: float | None, n_jobs: int,
              on_trial: Callable | None) -> None:
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    remaining = trials - _finished(study)
    if remaining <= 0:
        return
    callbacks = [MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    if on_trial is not None:
        callbacks.append(on_trial)
    study.optimize(objective, n_trials=remaining, timeout=timeout, n_jobs=n_jobs,
                   callbacks=callbacks, gc_after_trial=False)
    _settle(study, objective)


def _settle(study: Any, objective: Callable) -> None:
    """Leave no trial of a dead worker behind.

    Stale trials are failed (and queued again) only when a worker starts a trial, so a worker that
    finished its share within the grace period of a worker that died would leave that trial
    ``RUNNING`` for ever and its retry never run. Before leaving, wait while trials are running (up
    to the grace period and two heartbeats): fail the stale ones, run their retries here, and go as
    soon as none is running. A live worker's trial just finishes on its own meanwhile.
    """
    import time

    from optuna.storages import fail_stale_trials
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return
    interval = storage.get_heartbeat_interval()
    grace = getattr(storage, "grace_period", None) or 2 * interval
    deadline = time.monotonic() + grace + 2 * interval
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fail_stale_trials is flagged experimental
            fail_stale_trials(study)
        retries = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if retries:
            study.optimize(objective, n_trials=len(retries), gc_after_trial=False)
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) or \
                time.monotonic() > deadline:
            return
        time.sleep(min(1.0, interval))


def tune_model(project: Any, model: str = "xgboost", *, trials: int | None = None,
               timeout: float | None = None, n_jobs: int = 1, workers: int = 1,
               storage: str | None = None, study_name: str | None = None,
               features: str | None = None, space_file: str | os.PathLike | None = None,
               pruner: str = "median", name: str | None = None, register: bool = True,
               progress: Callable[..., Any] | None = None) -> Any:
    """Run (or resume) an Optuna study for `model`, then refit and log its best trial.

    Parameters
    ----------
    trials : int
        The study's total of finished trials (default ``tuning.n_trials`` or 50); a resumed study
        only runs the missing ones.
    timeout : float, optional
        Seconds after which no new trial starts (default ``tuning.timeout_s``).
    n_jobs : int
        Parallel trials in this process (threads).
    workers : int
        Processes sharing the study through its storage (this one included).
    storage : str, optional
        Optuna storage URL (default ``tuning.storage`` or the project's ``optuna.db``).
    pruner : {"median", "hyperband", "none"}

    Returns
    -------
    Report
        Value: the refitted best :class:`~omgmagics.modeling.models.OmgModel`.
    """
    from ..metrics import get_metric
    from .data import load_model_data
    from .models import get_model_type
    from .record import metric_names
    from .tracking import connect

    trials = trials if trials is not None else int(project.config.get_path("tuning.n_trials", 50))
    timeout = timeout if timeout is not None else project.config.get_path("tuning.timeout_s")
    if trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}.")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}.")
    if n_jobs < 1 or workers < 1:
        raise UsageError(f"--n-jobs and --workers must be at least 1, got {n_jobs} and {workers}.")
    _pruner(pruner)
    task = project.objective_type
    mt = get_model_type(model, task)
    space = resolve_space(project, mt.name, mt.valid_params(task), space_file)
    data = load_model_data(project, features)
    if not data.has("val"):
        raise DataError(f"Feature set {data.ref} has no validation split; tuning scores trials on it. "
                        "Store train/val/test splits in phase 2.")
    primary, secondary = metric_names(project, task)
    run = _Tuning(project, mt, space, data, primary, secondary,
                  "maximize" if get_metric(primary).greater_is_better else "minimize",
                  storage or default_storage(project), trials, pruner)
    # by default one study per model type and feature-set version: a new feature set (say, after a
    # retrain's phase 2) starts a new study instead of mixing trials scored on different data
    run.study_name = study_name or project.config.get_path("tuning.study") or \
        f"{project.name}-{mt.name}-{data.ref.replace('@', '-')}"
    existing = _existing_study(run)
    run.tracking = connect(project)
    _optimize_study(run, existing, timeout, n_jobs, workers, features, space_file, progress)
    return _record_best(run, name, register)


def tune_models(project: Any, models: list[str], *, trials: int | None = None,
                timeout: float | None = None, progress: Callable[..., Any] | None = None,
                **kwargs: Any) -> Any:
    """Tune several model types one after the other, each in its own study and MLflow run.

    `timeout` is the budget of the whole call: each model gets an even share of what is left when
    its study starts, so time one study does not use goes to the next. `trials` is each study's
    total. Other keyword arguments go to :func:`tune_model` (``name`` and ``study_name`` only with
    one model).

    Returns
    -------
    Report
        One row per model (trials, best validation score, test score, time); value: the refitted
        model with the best validation score.
    """
    import time

    import pandas as pd

    from ..metrics import best_index
    from ..results import Report

    if not models:
        raise UsageError("--model names no model type: pass one or more, e.g. --model "
                         "xgboost,lightgbm.")
    if len(set(models)) != len(models):
        raise UsageError(f"--model names a model type twice: {','.join(models)}.")
    if len(models) == 1:
        return tune_model(project, models[0], trials=trials, timeout=timeout, progress=progress,
                          **kwargs)
    for key, flag in (("name", "--name"), ("study_name", "--study")):
        if kwargs.get(key):
            raise UsageError(f"{flag} names one run, but --model lists {len(models)} model types; "
                             "tune them one at a time to name each.")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout}.")
    from .models import get_model_type

    for model in models:  # every name is checked before any study runs
        get_model_type(model, project.objective_type)
    t0 = time.perf_counter()
    reports, rows = [], []
    for i, model in enumerate(models):
        share = None
        if timeout is not None:
            share = max(1.0, (timeout - (time.perf_counter() - t0)) / (len(models) - i))
        rep = tune_model(project, model, trials=trials, timeout=share, progress=progress, **kwargs)
        reports.append(rep)
        primary = project.primary_metric
        rows.append({"model": model, "mlflow run": rep.summary["mlflow run"],
                     "completed": rep.summary["completed"], "pruned": rep.summary["pruned"],
                     f"best val {primary}": rep.data["best_value"],
                     f"test {primary}": rep.summary.get(f"test {primary}"),
                     "time (s)": rep.summary["time (s)"]})
    primary = project.primary_metric
    best = best_index(primary, [rep.data["best_value"] for rep in reports])
    table = pd.DataFrame(rows)
    elapsed = time.perf_counter() - t0
    summary = {"models": len(models), "best": rows[best]["model"],
               f"best val {primary}": rows[best][f"best val {primary}"]}
    if rows[best][f"test {primary}"] is not None:
        summary[f"test {primary}"] = rows[best][f"test {primary}"]
    summary["time (s)"] = round(elapsed, 1)
    if timeout is not None:
        summary["budget (s)"] = timeout
    tables = {"models": table}
    for rep in reports:
        tables[f"{rep.summary['mlflow run']}: best parameters"] = rep.tables["best parameters"]
    messages = [m for rep in reports for m in rep.messages]
    return Report(f"Tuned {', '.join(models)} on {reports[0].data['feature_set']}", summary=summary,
                  tables=tables, messages=messages,
                  artifacts={r.summary["mlflow run"]: r.artifacts["mlflow run"] for r in reports},
                  data={"runs": {r.summary["mlflow run"]: r.data for r in reports}},
                  value=reports[best].value)


@dataclass
class _Tuning:
    """One tuning call: what it tunes, on what, and what the study gave."""

    project: Any
    mt: Any
    space: dict[str, Any]
    data: Any
    primary: str
    secondary: list[str]
    direction: str
    url: str
    trials: int
    pruner: str
    study_name: str = ""
    store: Any = None
    study: Any = None
    before: int = 0
    elapsed: float = 0.0
    crashed: list[str] = field(default_factory=list)
    tracking: Any = None

    @property
    def attrs(self) -> dict[str, str]:
        return {"model": self.mt.name, "metric": self.primary, "feature_set": self.data.ref}


def _existing_study(run: _Tuning) -> Any:
    """The study of that name in the storage, if any, checked to be the same model, metric, feature
    set and direction."""
    import optuna

    run.store = make_storage(run.url, heartbeat_seconds(run.project))
    try:
        existing = optuna.load_study(study_name=run.study_name, storage=run.store)
    except KeyError:
        return None
    old = existing.user_attrs
    for key, value in run.attrs.items():
        if key in old and old[key] != value:
            raise ConfigError(f"Study '{run.study_name}' in {redact(run.url)} was run with {key} "
                              f"{old[key]!r}, not {value!r}. Resume it with the same {key}, or "
                              "start a new study with --study NAME.")
    if existing.direction.name.lower() != run.direction:
        raise ConfigError(f"Study '{run.study_name}' {existing.direction.name.lower()}s, but "
                          f"{run.primary} must be {run.direction}d. Start a new study with --study "
                          "NAME.")
    return existing


def _optimize_study(run: _Tuning, existing: Any, timeout: float | None, n_jobs: int, workers: int,
                    features: str | None, space_file: Any, progress: Callable[..., Any] | None) -> None:
    """Create or resume the study and run its missing trials here and in `workers` - 1 processes."""
    import multiprocessing as mp
    import time

    import optuna

    project, mt, seed = run.project, run.mt, run.project.seed
    # Parallel trials share the cores; a single trial lets the library pick its threads.
    threads = None if n_jobs * workers == 1 else max(1, _cores() // (n_jobs * workers))
    quiet_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    procs: list[Any] = []
    bar = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A resumed study must not replay the random start-up draws of its first session.
            run.before = before = 0 if existing is None else _finished(existing)
            study = run.study = optuna.create_study(
                study_name=run.study_name, storage=run.store, direction=run.direction,
                sampler=optuna.samplers.TPESampler(seed=seed + before), pruner=_pruner(run.pruner),
                load_if_exists=True)
            for key, value in run.attrs.items():
                study.set_user_attr(key, value)
            objective = make_objective(mt, run.space, run.data, metric=run.primary, seed=seed,
                                       early_stopping_rounds=mt.family_impl.tune_patience, model_threads=threads)
            if workers > 1 and before < run.trials:
                ctx = mp.get_context("spawn")
                for i in range(1, workers):
                    proc = ctx.Process(target=_worker, daemon=True, args=(
                        str(project.root), mt.name, run.study_name, run.url, run.trials, timeout,
                        features, str(space_file) if space_file else None, seed + before + i,
                        run.pruner, threads))
                    proc.start()
                    procs.append(proc)
            on_trial = None
            if progress is not None and before < run.trials:
                bar = progress(total=run.trials - before, desc=f"tune {mt.name}")

                def on_trial(study: Any, trial: Any) -> None:
                    bar.update(1)
                    try:
                        bar.set_postfix({f"best {run.primary}": f"{study.best_value:.4f}"},
                                        refresh=False)
                    except ValueError:
                        pass
            _optimize(study, objective, run.trials, timeout, n_jobs, on_trial)
            for proc in procs:
                proc.join()
            # a worker that crashed leaves the study to the others: say so instead of hiding it
            run.crashed = [f"worker {i} (exit code {p.exitcode})" for i, p in enumerate(procs, start=2)
                           if p.exitcode not in (0, None)]
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        if bar is not None:
            bar.close()
        optuna.logging.set_verbosity(quiet_level)
    run.elapsed = time.perf_counter() - t0


def _study_figures(run: _Tuning, done: list[Any], n_complete: int,
                   messages: list[str]) -> tuple[dict[str, bytes], dict[str, float]]:
    """The optimization history and, from three completed trials, the parameter importances."""
    import optuna
    from optuna.trial import TrialState

    from . import plots

    values = [t.value if t.state == TrialState.COMPLETE else None for t in done]
    best_so_far, cur = [], None
    for v in values:
        if v is not None and (cur is None or (v > cur if run.direction == "maximize" else v < cur)):
            cur = v
        best_so_far.append(cur)
    figures = {"optimization_history": plots.to_png(plots.optimization_history(values, best_so_far,
                                                                               run.primary))}
    importances: dict[str, float] = {}
    if n_complete < 3:
        messages.append("Parameter importances need at least 3 completed trials.")
        return figures, importances
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(run.study)
        figures["param_importances"] = plots.to_png(plots.barh(
            list(importances), list(importances.values()), "Hyper-parameter importance (fANOVA)",
            "importance"))
    except (RuntimeError, ValueError) as exc:
        messages.append(f"Parameter importances not computed: {exc}")
    return figures, importances


def _record_best(run: _Tuning, name: str | None, register: bool) -> Any:
    """Refit the best trial, log it to MLflow (registered as challenger) and report the study."""
    import pandas as pd
    from optuna.trial import TrialState

    from ..results import Report
    from . import plots
    from .models import fit_model
    from .record import record_model

    study, mt, data, primary = run.study, run.mt, run.data, run.primary
    done = study.get_trials(deepcopy=False)
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    if not complete:
        raise DataError(f"Study '{run.study_name}' has no completed trial ({len(pruned)} pruned, "
                        f"{len(done) - len(pruned)} failed or running). Run more --trials or loosen "
                        "the search space.")
    best = study.best_trial
    params = decode_params(run.space, best.params)
    fit = fit_model(mt, params, data, metric=primary, seed=run.project.seed,
                    early_stopping_rounds=mt.family_impl.tune_patience, n_jobs=None)
    messages: list[str] = []
    if run.crashed:
        messages.append(f"{', '.join(run.crashed)} ended with an error; the other workers finished "
                        "the study. Its log is the stderr of this command.")
    figures, importances = _study_figures(run, done, len(complete), messages)
    trials_df = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
    trials_df["duration"] = trials_df["duration"].dt.total_seconds() if "duration" in trials_df \
        else None
    new = _finished(study) - run.before

    def extra(log, run_id):  # noqa: ANN001
        for fname in ("optimization_history", "param_importances"):
            if fname in figures:
                log.png(figures[fname], f"plots/{fname}.png")
        log.table(trials_df.astype({c: str for c in trials_df.columns
                                    if trials_df[c].dtype == object}), "tuning/trials.parquet")
        log.json({"study": run.study_name, "storage": redact(run.url), "space": run.space,
                  "importances": importances, "best_trial": best.number}, "tuning/study.json")

    tracking = run.tracking
    rec = record_model(
        tracking, run.project, data, fit, name=name or f"tuned-{mt.name}", kind="tune",
        params={"model_type": mt.name, "study": run.study_name, "trials": run.trials,
                "pruner": run.pruner, "feature_set": data.ref,
                **{f"params.{k}": v for k, v in fit.model.params.items()}},
        metrics=[primary, *run.secondary], register=register,
        extra_metrics={"best_trial_value": best.value, "n_trials_complete": len(complete),
                       "n_trials_pruned": len(pruned), "tuning_time_s": run.elapsed},
        extra_tags={"omg.study": run.study_name, "omg.storage": redact(run.url),
                    "omg.best_trial": best.number}, extra=extra)
    if new == 0:
        messages.append(f"The study already had {run.before} finished trials (--trials {run.trials});"
                        " no new trial ran. Raise --trials to continue it.")
    elif run.before:
        messages.append(f"Resumed study '{run.study_name}': {run.before} finished trials before, "
                        f"{new} now.")
    summary = {"study": run.study_name, "storage": redact(run.url), "trials": len(done),
               "completed": len(complete), "pruned": len(pruned), "new this call": new,
               f"best val {primary}": best.value}
    if "test" in rec["scores"]:
        summary[f"test {primary}"] = rec["scores"]["test"][primary]
    summary.update({"time (s)": round(run.elapsed, 1), "mlflow run": name or f"tuned-{mt.name}"})
    if rec["version"]:
        summary["registered"] = f"{tracking.model_name} v{rec['version']} (challenger)"
    best_table = pd.DataFrame([{"parameter": k, "value": json.dumps(v) if isinstance(v, list) else v}
                               for k, v in params.items()])
    top = trials_df[trials_df["state"] == "COMPLETE"].sort_values(
        "value", ascending=run.direction == "minimize").head(10)
    return Report(f"Tuned {mt.name} on {data.ref}: {len(complete)} completed / {len(pruned)} pruned "
                  "trials", summary=summary, tables={"best parameters": best_table, "top trials": top},
                  figures=plots.LazyFigures(figures).merge(rec["figures"]), messages=messages,
                  artifacts={"mlflow run": f"runs:/{rec['run_id']}/model", "study": redact(run.url)},
                  data={"run_id": rec["run_id"], "best_params": params, "best_value": best.value,
                        "feature_set": data.ref},
                  value=fit.model)
