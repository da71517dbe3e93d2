"""A phase-4 project for the benchmarks (not a benchmark itself): the Adult demo data split into
raw train/val/test, feature set v1 with its fitted pipeline (the kit's inferred features), built
through the kit's public functions in a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET = "income"


def build(parent: Path, rows: int = 20000, seed: int = 7) -> Any:
    import numpy as np

    from omgmagics.features.extract import extract_features, save_pipeline
    from omgmagics.features.spec import check_spec, infer_spec
    from omgmagics.features.store import write_feature_set
    from omgmagics.project import Project
    from omgmagics.scaffold import init_project

    init_project("bench", parent=parent)
    root = parent / "bench"
    project = Project.at(root)
    df = project.load_source_data(sample_frac=1.0)
    df = df.sample(min(rows, len(df)), random_state=seed).reset_index(drop=True)
    df.insert(0, "row_id", np.arange(len(df)))
    part = np.random.default_rng(seed).choice(["train", "val", "test"], size=len(df),
                                              p=[0.7, 0.15, 0.15])
    raw = {s: df[part == s].reset_index(drop=True) for s in ("train", "val", "test")}
    project.processed_dir.mkdir(parents=True, exist_ok=True)
    for split, frame in raw.items():
        frame.to_parquet(project.processed_dir / f"{split}.parquet", index=False)
    spec, _ = infer_spec(raw["train"], TARGET, exclude=("row_id",))
    rep = extract_features(check_spec(spec), raw, TARGET)
    pipe = root / "pipeline.skops"
    save_pipeline(rep.value["pipeline"], pipe)
    write_feature_set(project.features_dir, "project_features", "v1", rep.value["splits"], TARGET,
                      extra={"pipeline": "pipeline.skops", "raw_columns": rep.value["raw_columns"],
                             "id_column": "row_id"}, files={"pipeline.skops": pipe})
    pipe.unlink()
    return project


def fit(project: Any, model: str, params: dict[str, Any], name: str) -> Path:
    """Fit a model of the kit on the feature set and save it as a model folder."""
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import fit_model, get_model_type

    data = load_model_data(project)
    result = fit_model(get_model_type(model, project.objective_type), params, data,
                       metric=project.primary_metric, seed=project.seed)
    return result.model.save(Path(project.models_dir) / "trained" / name)
