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
from dataclasses import dataclass
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


def is_embedded(project: Any) -> bool:
    return not project.config.get_path("tracking.uri")


def experiment_name(project: Any) -> str:
    return str(project.config.get_path("tracking.experiment") or project.name)


def registered_model_name(project: Any) -> str:
    return str(project.config.get_path("tracking.registered_model") or f"{project.name}-model")


def git_commit(root: str | os.PathLike) -> str | None:
    """The commit the project folder is checked out at, or None outside a git work tree."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _quiet_mlflow() -> None:
    # MLflow logs schema migrations at INFO and draws download bars; our reports say what happened.
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The embedded store is local and often offline: no usage telemetry unless the user opts in
    # (set MLFLOW_DISABLE_TELEMETRY=false).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


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


def _fast_sqlite(client: Any) -> None:
    """Best effort: WAL journal and no fsync per commit for the embedded store's connections.

    Every logged tag, metric batch and registry call is a commit, and a synced commit costs 10-20 ms
    on a plain disk. WAL keeps the database consistent; a power cut may lose the last writes. Reaches
    into MLflow's stores, so any surprise leaves MLflow's defaults in place.
    """
    try:
        from sqlalchemy import event

        stores = [client._tracking_client.store, client._get_registry_client().store]
        for engine in {id(e): e for e in (getattr(st, "engine", None) for st in stores) if e}.values():
            if engine.url.get_backend_name() != "sqlite" or getattr(engine, "_omg_fast", False):
                continue

            def pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            event.listen(engine, "connect", pragmas)
            engine.dispose()
            engine._omg_fast = True
    except Exception:  # noqa: BLE001 - an optimisation only
        return


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


@dataclass
class RunLogger:
    """Logs into one open run (see :meth:`Tracking.run`)."""

    client: Any
    run_id: str

    def params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in _flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if v is not None and isinstance(v, (int, float)) and not math.isnan(float(v))]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def metric_history(self, name: str, values: list[float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(name, float(v), now, i) for i, v in enumerate(values)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            if v is not None:
                self.client.set_tag(self.run_id, k, str(v))

    def artifacts(self, folder: str | os.PathLike, path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), path)

    def artifact(self, file: str | os.PathLike, path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(file), path)

    def _via_tmp(self, artifact_path: str, write) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(artifact_path).name
            write(target)
            parent = str(Path(artifact_path).parent)
            self.client.log_artifact(self.run_id, str(target), None if parent == "." else parent)

    def json(self, obj: Any, artifact_path: str) -> None:
        from ..atomic import write_json

        self._via_tmp(artifact_path, lambda p: write_json(p, obj))

    def png(self, png: bytes, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: p.write_bytes(png))

    def table(self, df: Any, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: df.to_parquet(p, index=False))

    def text(self, text: str, artifact_path: str) -> None:
        self._via_tmp(artifact_path, lambda p: p.write_text(text, encoding="utf-8"))


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
            _fast_sqlite(self.client)
        self.experiment_name = experiment_name(project)
        self.model_name = registered_model_name(project)
        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            location = (Path(project.root).resolve() / "mlartifacts").as_uri() \
                if is_embedded(project) else None
            self.experiment_id = self.client.create_experiment(self.experiment_name,
                                                               artifact_location=location)
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=self.experiment_id)

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
        logger = RunLogger(self.client, run.info.run_id)
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

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            self.client.create_registered_model(
                self.model_name, description=f"Models of project {self.project.name} (omg).")
        mv = self.client.create_model_version(self.model_name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}",
                                              run_id=run_id, description=description)
        if alias:
            self.set_alias(alias, mv.version)
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
