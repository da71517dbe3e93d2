"""A project on disk (core layer): its folder layout and its configuration.

Every command that reads or writes project files goes through :class:`Project`, so paths are
decided in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import CONFIG_NAME, Config, find_config, load_config
from .errors import DataError, ProjectError

PHASES = {
    1: "01_discovery",
    2: "02_data",
    3: "03_model",
    4: "04_deploy",
    5: "05_ops",
}
PHASE_TITLES = {
    1: "Discovery & planning",
    2: "Data & features",
    3: "Model development",
    4: "Optimization & deployment",
    5: "Operations",
}


@dataclass
class Project:
    """A project folder and its merged ``omg.yaml``.

    Parameters
    ----------
    root : Path
        The folder holding ``omg.yaml``.
    config : Config
        The validated configuration.
    """

    root: Path
    config: Config

    @classmethod
    def find(cls, start: str | os.PathLike | None = None) -> Project:
        """The project holding `start` (default: the working directory), found by walking up."""
        path = find_config(start)
        return cls(path.parent, load_config(path))

    @classmethod
    def at(cls, root: str | os.PathLike) -> Project:
        """The project whose ``omg.yaml`` is directly in `root`."""
        root = Path(root).resolve()
        if not (root / CONFIG_NAME).is_file():
            raise ProjectError(f"{root} is not an omg project (no {CONFIG_NAME}). "
                               "Create one with `omg ml init NAME`.")
        return cls(root, load_config(root / CONFIG_NAME))

    def reload(self) -> Project:
        return Project.at(self.root)

    # --- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the project; created parents are the caller's job."""
        return self.root.joinpath(*parts)

    def resolve(self, path: str | os.PathLike) -> Path:
        """The one rule for a path named in omg.yaml or on the command line: absolute (or ``~``) as
        given, else relative to the project folder (not the working folder)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def name(self) -> str:
        return str(self.config.get_path("project.name", self.root.name))

    @property
    def raw_dir(self) -> Path:
        return self.path("data", "raw")

    @property
    def processed_dir(self) -> Path:
        return self.path("data", "processed")

    @property
    def reports_dir(self) -> Path:
        return self.path("reports")

    @property
    def docs_dir(self) -> Path:
        return self.path("docs")

    @property
    def decisions_dir(self) -> Path:
        return self.path("decisions")

    @property
    def runs_dir(self) -> Path:
        return self.path("runs")

    @property
    def features_dir(self) -> Path:
        return self.path("features")

    @property
    def models_dir(self) -> Path:
        return self.path("models")

    @property
    def monitoring_dir(self) -> Path:
        return self.path("monitoring")

    @property
    def predictions_dir(self) -> Path:
        """Where servers log predictions and phase 5 reads them (``monitoring.predictions``)."""
        return self.resolve(self.config.get_path("monitoring.predictions") or
                            "monitoring/predictions")

    def notebook(self, phase: int) -> Path:
        """The phase notebook of this project, ``notebooks/0N_x/0N_x.ipynb``."""
        folder = PHASES[phase]
        return self.path("notebooks", folder, f"{folder}.ipynb")

    # --- brief shortcuts -----------------------------------------------------------------------
    @property
    def target(self) -> str | None:
        return self.config.get_path("brief.objective.target")

    @property
    def objective_type(self) -> str:
        return self.config.get_path("brief.objective.type", "classification")

    @property
    def primary_metric(self) -> str:
        return self.config.get_path("brief.objective.primary_metric", "roc_auc")

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 42))

    @property
    def sensitive_features(self) -> list[str]:
        return list(self.config.get_path("brief.sensitive_features", []) or [])

    @property
    def time_column(self) -> str | None:
        return self.config.get_path("brief.time_column")

    def load_source_data(self, sample_frac: float | None = None) -> Any:
        """The project's source table: the bundled demo data or the file named in ``data.source``.

        Parameters
        ----------
        sample_frac : float, optional
            Keep this share of rows (seeded); default ``data.sample_frac`` or all rows.
        """
        from .datasets import load_demo
        from .io import read_table

        source = self.config.get_path("data.source", "demo")
        if source in (None, "demo"):
            df = load_demo()
        else:
            path = Path(source)
            if not path.is_absolute():
                path = self.root / path
            df = read_table(path)
        frac = sample_frac if sample_frac is not None else self.config.get_path("data.sample_frac", 1.0)
        if frac is not None and float(frac) < 1.0:
            if not 0 < float(frac) <= 1:
                raise DataError(f"sample_frac must be in (0, 1], got {frac}.")
            df = df.sample(frac=float(frac), random_state=self.seed).sort_index().reset_index(drop=True)
        return df
