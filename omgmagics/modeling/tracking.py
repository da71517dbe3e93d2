"""The project's MLflow store (core layer): one experiment per project, runs, the model registry.

By default the store is embedded: ``sqlite:///<project>/mlflow.db`` with the artifacts in
``<project>/mlartifacts/``, so nothing has to be started. ``omg.yaml`` ``tracking.uri`` names a tracking
server instead. The URI is always set explicitly from the project, never taken from the working
directory (papermill runs notebooks from other folders).

Runs are written through :class:`MlflowClient` with an explicit URI; a run whose block fails is marked
failed and deleted, so a half-logged run never shows up in comparisons. Registered models are marked
with aliases (``champion``, ``challenger``), never with the deprecated stages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, unknown_choice

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ALIASES = ("champion", "challenger")
MODEL_ARTIFACT = "model"
PREDICTIONS_ARTIFACT = "predictions/test.parquet"


def tracking_uri(project: Any) -> str:
    """``tracking.uri`` of ``omg.yaml``, or the project's embedded SQLite store."""
    uri = project.config.get_path("tracking.uri")
    return str(uri) if uri else f"sqlite:///{Path(project.root).resolve() / 'mlflow.db'}"



def discard_if_empty(store: Path) -> bool:
    """Remove the embedded store `store` if it holds no run and no registered model (True if so)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            used = sum(con.execute(query).fetchone()[0] for query in (
                "SELECT count(*) FROM runs", "SELECT count(*) FROM registered_models"))
        finally:
            con.close()
    except sqlite3.Error:
        return False
    if used:
        return False
    store.unlink(missing_ok=True)
    return True

def is_embedded(project: Any) -> bool:
    return not project.config.get_path("tracking.uri")


def experiment_name(project: Any) -> str:
    return str(project.config.get_path("tracking.experiment") or project.name)


def registered_model_name(project: Any) -> str:
    return str(project.config.get_path("tracking.registered_model") or f"{project.name}-model")


_GIT_COMMITS: dict[str, tuple[tuple, str | None]] = {}


def _git_state(root: Path) -> tuple | None:
    """What `git rev-parse HEAD` depends on, cheaply: ``()`` when no ``.git`` is above `root` (git
    finds no repository either), a key of HEAD and its ref files' stats inside a plain repository,
    None when only git can tell (GIT_DIR set, worktrees, submodules, unreadable files)."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return None
    try:
        for folder in (root, *root.parents):
            dot = folder / ".git"
            if not dot.exists():
                continue
            if not dot.is_dir():
                return None
            head = (dot / "HEAD").read_text().strip()
            key: list = [str(dot), head]
            files = ["packed-refs"]
            if head.startswith("ref: "):
                files.append(head[5:].strip())
            for name in files:
                try:
                    st = (dot / name).stat()
                    key.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
                except FileNotFoundError:
                    key.append((name, None))
            return tuple(key)
    except OSError:
        return None
    return ()


def git_commit(root: str | os.PathLike) -> str | None:
    """The commit the project folder is checked out at, or None outside a git work tree.

    Asks git once per repository state: the answer is cached against HEAD and the stats of the ref
    file it names (a commit or a checkout changes them), and outside any repository git is not run.
    """
    state = _git_state(Path(root).resolve())
    if state == ():
        return None
    cached = _GIT_COMMITS.get(str(root))
    if state is not None and cached is not None and cached[0] == state:
        return cached[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    sha = sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None
    if state is not None:
        _GIT_COMMITS[str(root)] = (state, sha)
    return sha


def _quiet_mlflow() -> None:
    # MLflow logs schema migrations at INFO and draws download bars; our reports say what happened.
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The embedded store is local and often offline: no usage telemetry unless the user opts in
    # (set MLFLOW_DISABLE_TELEMETRY=false).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # With a tracking server MLflow prints "View run ... at: URL" to stdout, which would break
    # `--format json`; the report names the run itself.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _seed_embedded_store(db: Path) -> None:
    """Start a new project's store from a cached empty database of this MLflow version.

    MLflow builds a fresh SQLite store by replaying every schema migration (about 8 s here); the
    result is the same for every project, so it is built once per MLflow version and copied.
    """
    import shutil

    import mlflow

    if db.exists():
        return
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    template = cache_home / "omgmagics" / f"mlflow-{mlflow.__version__}-empty.db"
    try:
        if not template.is_file():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            template.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                fresh = Path(tmp) / "empty.db"
                store = SqlAlchemyStore(f"sqlite:///{fresh}", Path(tmp).as_uri())
                store.engine.dispose()
                staged = template.with_name(f".{template.name}.{os.getpid()}.tmp")
                shutil.copyfile(fresh, staged)
                os.replace(staged, template)
        staged = db.with_name(f".{db.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, staged)
        os.replace(staged, db)
    except OSError:
        pass  # no cache (read-only home ...): MLflow builds the store itself


def _fast_mlflow_sqlite(client: Any) -> None:
    """Best effort: WAL journal and no fsync per commit for the embedded store's connections.

    Every logged tag, metric batch and registry call is a commit, and a synced commit costs 10-20 ms
    on a plain disk. WAL keeps the database consistent; a power cut may lose the last writes. Reaches
    into MLflow's stores, so any surprise leaves MLflow's defaults in place.
    """
    try:
        stores = [client._tracking_client.store, client._get_registry_client().store]
        for engine in {id(e): e for e in (getattr(st, "engine", None) for st in stores) if e}.values():
            if engine.url.get_backend_name() != "sqlite" or getattr(engine, "_omg_fast", False):
                continue
            fast_sqlite(engine)
            engine._omg_fast = True
    except Exception:  # noqa: BLE001 - an optimisation only
        return


def fast_sqlite(engine: Any) -> None:
    """WAL journal and no fsync per commit on every new connection of a SQLite `engine` (MLflow's
    store, Optuna's study); pooled connections opened before are dropped."""
    from sqlalchemy import event

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # pooled connections were opened before the listener


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            out[name] = text[:6000]
    return out


def _bulk_insert_metrics(client: Any, run_id: str, metrics: list[Any]) -> bool:
    """Insert metric rows straight into a SQL store's ``metrics`` table, in one transaction.

    MLflow's own ``log_batch`` builds an ORM object per value (about 0.3 ms each): a learning curve
    of a few hundred rounds cost more than everything else logged for a run. The rows are exactly
    the ones ``log_batch`` writes (MLflow's table definition, its NaN/inf sanitising); the caller
    logs the curve's last step through MLflow, which keeps ``latest_metrics`` right. Returns False
    (nothing written) for other stores or on any surprise, and the caller falls back to ``log_batch``.
    """
    try:
        from mlflow.store.tracking.dbmodels.models import SqlMetric
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
        if not isinstance(store, SqlAlchemyStore):
            return False
        rows = []
        for m in metrics:
            is_nan, value = store.sanitize_metric_value(float(m.value))
            rows.append({"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step,
                         "is_nan": is_nan, "run_uuid": run_id})
        with store.engine.begin() as conn:
            conn.execute(SqlMetric.__table__.insert(), rows)
        return True
    except Exception:  # noqa: BLE001 - an optimisation only; MLflow's path follows
        return False


@dataclass
class RunLogger:
    """Logs into one open run (see :meth:`Tracking.run`).

    `artifact_uri` (known when the run was just created) lets artifacts go straight to the run's
    artifact store instead of MLflow looking the run up again for the first artifact.
    """

    client: Any
    run_id: str
    artifact_uri: str | None = None
    tracking_uri: str | None = None
    _repo: Any = field(default=None, repr=False)

    def params(self, params: dict[str, Any]) -> None:
        self.batch(params=params)

    def metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        self.batch(metrics=metrics, step=step)

    def metric_history(self, name: str, values: list[float]) -> None:
        self.batch(histories={name: values})

    def batch(self, params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
              histories: dict[str, list[float]] | None = None, step: int = 0) -> None:
        """Log params, metrics (at `step`) and metric histories (one value per step from 0) together.

        One MLflow ``log_batch`` call takes the params, the metrics and the last step of each history
        (MLflow checks the names and records the latest values); the other history steps are
        inserted in bulk where the store is SQL (see :func:`_bulk_insert_metrics`).
        """
        import math
        import time

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        pitems = [Param(k, v) for k, v in _flatten(params or {}).items()]
        mitems = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()
                  if v is not None and isinstance(v, (int, float)) and not math.isnan(float(v))]
        earlier = []
        for name, values in (histories or {}).items():
            points = [Metric(name, float(v), now, i) for i, v in enumerate(values)]
            if points:
                mitems.append(points[-1])
                earlier.extend(points[:-1])
        # MLflow's limits per call: 100 params, 1000 metrics, 1000 entities in all.
        first_p, pitems = pitems[:100], pitems[100:]
        first_m, mitems = mitems[:1000 - len(first_p)], mitems[1000 - len(first_p):]
        if first_p or first_m:
            self.client.log_batch(self.run_id, metrics=first_m, params=first_p)
        for i in range(0, len(pitems), 100):
            self.client.log_batch(self.run_id, params=pitems[i:i + 100])
        for i in range(0, len(mitems), 500):
            self.client.log_batch(self.run_id, metrics=mitems[i:i + 500])
        if earlier and not _bulk_insert_metrics(self.client, self.run_id, earlier):
            for i in range(0, len(earlier), 500):
                self.client.log_batch(self.run_id, metrics=earlier[i:i + 500])

    def tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            if v is not None:
                self.client.set_tag(self.run_id, k, str(v))

    def _artifact_repo(self) -> Any:
        """The run's artifact repository built from its known URI, or None (MLflow looks it up)."""
        if self._repo is None:
            self._repo = False
            uri = self.tracking_uri or ""
            if self.artifact_uri and not uri.startswith(("databricks", "uc:")):
                try:
                    from mlflow.store.artifact.artifact_repository_registry import (
                        get_artifact_repository,
                    )

                    self._repo = get_artifact_repository(self.artifact_uri, tracking_uri=uri or None)
                except Exception:  # noqa: BLE001 - MLflow's own lookup follows
                    self._repo = False
        return self._repo or None

    def artifacts(self, folder: str | os.PathLike, path: str | None = None) -> None:
        repo = self._artifact_repo()
        if repo is None:
            self.client.log_artifacts(self.run_id, str(folder), path)
        else:
            repo.log_artifacts(str(folder), path)

    def artifact(self, file: str | os.PathLike, path: str | None = None) -> None:
        repo = self._artifact_repo()
        if repo is None:
            self.client.log_artifact(self.run_id, str(file), path)
        elif os.path.isdir(file):  # as MlflowClient.log_artifact does for a folder
            name = os.path.basename(os.path.normpath(file))
            repo.log_artifacts(str(file), os.path.join(path, name) if path is not None else name)
        else:
            repo.log_artifact(str(file), path)

    def _via_tmp(self, artifact_path: str, write) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(artifact_path).name
            write(target)
            parent = str(Path(artifact_path).parent)
            self.artifact(target, None if parent == "." else parent)

    def json(self, obj: Any, artifact_path: str) -> None:
        from ..atomic import write_json

        self._via_tmp(artifact_path, lambda p: write_json(p, obj))

    def png(self, png: bytes, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: p.write_bytes(png))

    def table(self, df: Any, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: df.to_parquet(p, index=False))

    def text(self, text: str, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: p.write_text(text, encoding="utf-8"))


_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}  # (tracking URI, experiment name) -> id


class Tracking:
    """The project's MLflow experiment and model registry.

    Create with :func:`connect`.
    """

    def __init__(self, project: Any):
        _quiet_mlflow()
        import mlflow
        from mlflow import MlflowClient

        _quiet_mlflow()  # again: importing mlflow resets its logger's level
        self.project = project
        self.uri = tracking_uri(project)
        if is_embedded(project):
            _seed_embedded_store(Path(project.root).resolve() / "mlflow.db")
        self.mlflow = mlflow
        # Fluent calls a user makes in the notebook afterwards must hit the project's store too.
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        if is_embedded(project):
            _fast_mlflow_sqlite(self.client)
        self.experiment_name = experiment_name(project)
        self.model_name = registered_model_name(project)
        key = (self.uri, self.experiment_name)
        known = _EXPERIMENT_IDS.get(key)
        if known is not None:
            # Seen before in this process: setting it active reads it back, which is the check that
            # it still exists under this name and is not deleted; otherwise look it up again.
            from mlflow.exceptions import MlflowException

            try:
                if mlflow.set_experiment(experiment_id=known).name == self.experiment_name:
                    self.experiment_id = known
                    return
            except MlflowException:
                pass
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            location = (Path(project.root).resolve() / "mlartifacts").as_uri() \
                if is_embedded(project) else None
            try:
                self.experiment_id = self.client.create_experiment(self.experiment_name,
                                                                   artifact_location=location)
            except MlflowException as exc:
                # another process (a second tune worker) created it between the look-up and here
                exp = self.client.get_experiment_by_name(self.experiment_name)
                if exp is None or exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "INTERNAL_ERROR"):
                    raise
                self.experiment_id = exp.experiment_id
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=self.experiment_id)
        _EXPERIMENT_IDS[key] = self.experiment_id

    # --- runs ---------------------------------------------------------------------------------
    def base_tags(self, kind: str, feature_set: str | None = None,
                  model_type: str | None = None) -> dict[str, str]:
        tags = {"omg.kind": kind, "omg.project": self.project.name}
        if feature_set:
            tags["omg.feature_set"] = feature_set
        if model_type:
            tags["omg.model_type"] = model_type
        commit = git_commit(self.project.root)
        if commit:
            tags["mlflow.source.git.commit"] = commit
        return tags

    @contextlib.contextmanager
    def run(self, name: str, kind: str, *, feature_set: str | None = None,
            model_type: str | None = None, tags: dict[str, Any] | None = None,
            parent_run_id: str | None = None) -> Iterator[RunLogger]:
        """Open a run; it is finished on success, and marked failed and deleted on any error."""
        all_tags = self.base_tags(kind, feature_set, model_type)
        all_tags.update({k: str(v) for k, v in (tags or {}).items() if v is not None})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        logger = RunLogger(self.client, run.info.run_id, run.info.artifact_uri, self.uri)
        try:
            yield logger
        except BaseException:
            self.client.set_terminated(run.info.run_id, "FAILED")
            self.client.delete_run(run.info.run_id)
            raise
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def append(self, run_id: str) -> RunLogger:
        """A logger for an existing run (evaluation results are added to the model's run)."""
        return RunLogger(self.client, run_id)

    def runs(self, kind: str | None = None, name: str | None = None,
             max_results: int = 1000) -> list[Any]:
        """Finished runs of the experiment, newest first, optionally of one kind or run name."""
        filters = ["attributes.status = 'FINISHED'"]
        if kind:
            filters.append(f"tags.`omg.kind` = '{kind}'")
        if name:
            filters.append(f"attributes.run_name = '{name}'")
        return list(self.client.search_runs([self.experiment_id], " and ".join(filters),
                                            max_results=max_results,
                                            order_by=["attributes.start_time DESC"]))

    def find_run(self, ref: str) -> Any:
        """A run by id or by run name (the newest finished run of that name)."""
        if RUN_ID_RE.match(ref):
            try:
                return self.client.get_run(ref)
            except Exception:  # noqa: BLE001 - MlflowException for an unknown id
                pass
        found = self.runs(name=ref, max_results=1)
        if found:
            return found[0]
        names = sorted({r.info.run_name for r in self.runs() if r.info.run_name})
        raise DataError(f"No finished MLflow run named '{ref}' in experiment "
                        f"'{self.experiment_name}'. "
                        + (unknown_choice("run", ref, names) if names else
                           "Train one first with `omg train baseline` or `omg train train`."))

    def download(self, artifact_uri: str, dst: str | os.PathLike) -> Path:
        return Path(self.mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(dst), tracking_uri=self.uri))

    def predictions(self, run_id: str) -> Any:
        """The test-split predictions a model run logged, as a DataFrame."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.download(f"runs:/{run_id}/{PREDICTIONS_ARTIFACT}", tmp)
            except Exception:  # noqa: BLE001 - a missing artifact
                raise DataError(f"Run {run_id} has no logged test predictions "
                                f"({PREDICTIONS_ARTIFACT}); only model runs of `omg train "
                                "baseline|train|tune` can be compared.") from None
            return pd.read_parquet(path)

    # --- registry -----------------------------------------------------------------------------
    def register(self, run_id: str, alias: str | None = "challenger",
                 description: str | None = None) -> str:
        """Register the run's ``model`` artifact as a new version; set `alias` on it."""
        from mlflow.exceptions import MlflowException

        def create() -> Any:
            return self.client.create_model_version(
                self.model_name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id,
                description=description)

        try:  # the registered model exists after the project's first registration
            mv = create()
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(
                    self.model_name, description=f"Models of project {self.project.name} (omg).")
            except MlflowException as again:  # created by another process in the meantime
                if again.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = create()
        if alias:
            # Straight to the registry: MlflowClient first re-reads the registered model to refuse
            # prompts, and this one just took a model version.
            registry = getattr(self.client, "_get_registry_client", None)
            if registry is None:
                self.set_alias(alias, mv.version)
            else:
                registry().set_registered_model_alias(self.model_name, alias, str(mv.version))
        return str(mv.version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def alias_version(self, alias: str) -> Any:
        """The model version holding `alias`, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None

    def versions_of_run(self, run_id: str) -> list[Any]:
        from mlflow.exceptions import MlflowException

        try:
            return list(self.client.search_model_versions(
                f"name = '{self.model_name}' and run_id = '{run_id}'"))
        except MlflowException:
            return []


def connect(project: Any) -> Tracking:
    """The project's :class:`Tracking`: sets the URI, creates the experiment on first use."""
    return Tracking(project)
