"""The data a model is trained and judged on (core layer): a feature set split into X / y.

The input is a feature-set version from the store (phase 2): each split holds transformed numeric
feature columns, the target with its original labels and a row id (the manifest's ``id_column``) that
joins back to the raw split in ``data/processed/`` (where the sensitive features live). Labels are
encoded once here: for a binary problem the brief's positive label is class 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class ModelData:
    """Encoded splits of one feature set.

    Attributes
    ----------
    ref : str
        ``NAME@vN`` of the feature set, or a description of a user table.
    target, task : str
    feature_names : list of str
    classes : list or None
        Original labels, position = encoded class (binary: the positive label last).
    X, y, ids : dict of split to ndarray
    frames : dict of split to DataFrame
        Feature columns only, named (SHAP, slices).
    """

    ref: str
    target: str
    task: str
    feature_names: list[str]
    classes: list[Any] | None
    positive_label: Any
    X: dict[str, Any]
    y: dict[str, Any]
    ids: dict[str, Any]
    frames: dict[str, Any]
    id_column: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    def has(self, split: str) -> bool:
        return split in self.X and len(self.X[split]) > 0

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def decode(self, encoded: Any) -> Any:
        import numpy as np

        if self.classes is None:
            return encoded
        return np.asarray(self.classes, dtype=object)[np.asarray(encoded, dtype=int)]


def default_ref(project: Any) -> str:
    return f"{project.config.get_path('features.name') or 'project_features'}@latest"


def encode_labels(values: Any, positive_label: Any, where: str) -> tuple[list[Any], Any]:
    """Class list (binary: positive last) for the labels in `values`."""
    import pandas as pd

    uniq = sorted(pd.Series(values).dropna().unique().tolist(), key=lambda v: (str(type(v)), str(v)))
    if len(uniq) < 2:
        raise DataError(f"The target of {where} has {len(uniq)} class(es) ({uniq}); a classifier needs "
                        "at least two. Check the target column and the split.")
    if positive_label is not None and len(uniq) == 2:
        match = [v for v in uniq if str(v) == str(positive_label)]
        if not match:
            raise DataError(f"The brief's positive label {positive_label!r} is not a class of {where}: "
                            f"classes are {uniq}. Fix brief.objective.positive_label in omg.yaml.")
        uniq = [v for v in uniq if v is not match[0]] + match
    return uniq, (uniq[-1] if len(uniq) == 2 else None)


def _encode(y: Any, classes: list[Any], split: str, ref: str) -> Any:
    import numpy as np
    import pandas as pd

    index = {str(c): i for i, c in enumerate(classes)}
    # classes are matched by their text (an int 1 in one split and "1" in another are one class);
    # factorize first so the text conversion runs once per distinct value, not per row
    codes, uniques = pd.factorize(y)
    if (codes < 0).any():
        raise DataError(f"The target of {ref} has {int((codes < 0).sum())} missing value(s) in the "
                        f"{split} split. Drop or label those rows in phase 2.")
    names = [str(u) for u in uniques]
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(f"The {split} split of {ref} has target values not seen in training: "
                        f"{unknown[:5]}. Re-split the data so every class is in the training split.")
    return np.array([index[n] for n in names], dtype=np.int64)[codes]


def _matrix(df: Any, columns: list[Any]) -> Any:
    """The columns as one column-major float64 matrix (missing values of nullable dtypes NaN)."""
    import numpy as np
    import pandas as pd

    X = np.empty((len(df), len(columns)), dtype=np.float64, order="F")
    for j, c in enumerate(columns):
        col = df[c]
        X[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan) \
            if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()
    return X


def from_frames(splits: dict[str, Any], *, target: str, task: str, positive_label: Any = None,
                ref: str, id_column: str | None = None, manifest: dict | None = None) -> ModelData:
    """Build :class:`ModelData` from split DataFrames (features + target [+ id column])."""
    import numpy as np
    import pandas as pd

    if "train" not in splits:
        raise DataError(f"{ref} has no training split. Store train/val/test splits in phase 2.")
    for split, df in splits.items():
        if target not in df.columns:
            cols = [c for c in df.columns if c != id_column]
            raise DataError(f"The target column '{target}' is missing from {ref} ({split} split). "
                            f"Columns: {', '.join(map(str, cols[:20]))}"
                            f"{' ...' if len(cols) > 20 else ''}. Pass --target or set "
                            "brief.objective.target.")
    train = splits["train"]
    features = [c for c in train.columns if c not in (target, id_column)]
    if not features:
        raise DataError(f"{ref} has no feature columns besides the target '{target}'.")
    bad = [c for c in features if not (pd.api.types.is_numeric_dtype(train[c])
                                       or pd.api.types.is_bool_dtype(train[c]))]
    if bad:
        raise DataError(f"{ref} has non-numeric feature columns: {', '.join(map(str, bad[:10]))}. "
                        "Models take transformed numeric features: encode them with "
                        "`omg feature extract` and store a new feature-set version.")
    classes = positive = None
    if task != "regression":
        classes, positive = encode_labels(train[target], positive_label, f"{ref} (train split)")
    X, y, ids, frames = {}, {}, {}, {}
    for split in SPLITS:
        if split not in splits:
            continue
        df = splits[split]
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise DataError(f"The {split} split of {ref} lacks feature columns of the training split: "
                            f"{', '.join(map(str, missing[:10]))}. Store the splits together.")
        # one float64 matrix, filled column by column (one copy); the frame is a view of it
        X[split] = _matrix(df, features)
        frames[split] = pd.DataFrame(X[split], columns=features, index=df.index, copy=False)
        if task == "regression":
            if not pd.api.types.is_numeric_dtype(df[target]):
                raise DataError(f"The target '{target}' of {ref} is not numeric but the objective is "
                                "regression. Set brief.objective.type: classification.")
            y[split] = df[target].to_numpy(dtype=np.float64)
        else:
            y[split] = _encode(df[target], classes, split, ref)
        ids[split] = df[id_column].to_numpy() if id_column and id_column in df.columns \
            else np.arange(len(df))
    return ModelData(ref=ref, target=target, task=task, feature_names=[str(c) for c in features],
                     classes=classes, positive_label=positive, X=X, y=y, ids=ids, frames=frames,
                     id_column=id_column, manifest=manifest or {})


def load_model_data(project: Any, features: str | None = None, target: str | None = None,
                    table: Any = None, table_name: str = "table") -> ModelData:
    """The feature set ``features`` (default: the project's latest), or a user `table` (train only).

    Raises
    ------
    DataError
        Missing feature set, target, splits or non-numeric features.
    """
    import hashlib

    from ..features.store import load_feature_set

    task = project.objective_type
    positive = project.config.get_path("brief.objective.positive_label")
    if table is not None:
        target = target or project.target
        if not target:
            raise DataError("No target column: pass --target COL or set brief.objective.target.")
        id_col = project.config.get_path("data.id_column")
        return from_frames({"train": table}, target=target, task=task, positive_label=positive,
                           ref=table_name, id_column=id_col if id_col in table.columns else None)
    fs = load_feature_set(project.features_dir, features or default_ref(project))
    target = target or fs.target or project.target
    if not target:
        raise DataError(f"Feature set {fs.ref} names no target and the brief has none. Pass --target.")
    data = from_frames(fs.splits, target=target, task=task, positive_label=positive, ref=fs.ref,
                       id_column=fs.id_column, manifest=fs.manifest)
    digest = hashlib.sha256("".join(sorted(
        str(s.get("sha256")) for s in fs.manifest.get("splits", {}).values())).encode()).hexdigest()
    data.sha256 = digest[:16]
    return data


def test_attributes(project: Any, data: ModelData, columns: list[str], what: str) -> Any:
    """Columns for the test rows: from the feature frame, else joined by row id from the raw test split.

    Raises
    ------
    DataError
        When a column is in neither place (`what` names the role, e.g. "sensitive feature").
    """
    import pandas as pd

    frame = data.frames["test"]
    out = pd.DataFrame(index=range(len(frame)))
    raw = None
    raw_path = Path(project.processed_dir) / "test.parquet"
    for col in columns:
        if col in frame.columns:
            out[col] = frame[col].to_numpy()
            continue
        if raw is None:
            if raw_path.is_file() and data.id_column:
                raw = pd.read_parquet(raw_path)
                if data.id_column not in raw.columns:
                    raise DataError(f"{raw_path} has no id column '{data.id_column}' to join the "
                                    f"test split of {data.ref} on. Re-run `omg data split`.")
                raw = raw.drop_duplicates(data.id_column).set_index(data.id_column)
            else:
                raw = pd.DataFrame()
        if col not in raw.columns:
            where = f"{raw_path}" if raw_path.is_file() else f"{raw_path} (which does not exist)"
            raise DataError(f"The {what} '{col}' is missing from the test split: it is not a feature "
                            f"column of {data.ref} and not a column of {where}. Check the name in "
                            "omg.yaml or keep the column in data/processed/.")
        values = raw[col].reindex(data.ids["test"])
        if values.isna().all() and len(values):
            raise DataError(f"The {what} '{col}' could not be joined to the test split of {data.ref}: "
                            f"no row id of the feature set is in {raw_path}. Were they written by "
                            "the same `omg data split`?")
        out[col] = values.to_numpy()
    return out
