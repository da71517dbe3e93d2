"""Feature extraction (core layer): features.yaml compiled into ONE fitted scikit-learn pipeline.

:func:`build_pipeline` turns the checked definitions into ``Pipeline([("features", ColumnTransformer),
("to_float", AsFloat())])`` with pandas output, so every output column has a readable name
(``{feature}__{column}``). :func:`extract_features` fits it on the training split only and transforms
every split; serving later applies the very same fitted object to raw records.

Pipelines are saved with skops, never pickle: :func:`load_pipeline` refuses a file holding any type
outside :data:`TRUSTED_TYPES` (the kit's transformers and the numpy/scikit-learn types a feature
pipeline needs), so loading a pipeline cannot run arbitrary code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..results import Report

_KIT = "omgmagics.features.transformers."
TRUSTED_TYPES: tuple[str, ...] = (
    *(_KIT + n for n in ("AsNumeric", "AsCategory", "AsFloat", "SignedLog", "IsMissing", "DateParts",
                         "HashedText", "Arithmetic", "CustomFunction", "SelectColumns")),
    "numpy.dtype", "numpy.float64", "numpy.int64", "builtins.slice", "builtins.type",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._column_transformer._RemainderColsList",
    "sklearn.pipeline.Pipeline", "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler", "sklearn.preprocessing._discretization.KBinsDiscretizer",
    "sklearn.preprocessing._encoders.OneHotEncoder", "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._target_encoder.TargetEncoder", "sklearn.utils._bunch.Bunch",
)
NUMERIC_TRANSFORMS = ("standard", "minmax", "robust", "passthrough", "log", "bin", "ratio", "difference")
MISSING = "__missing__"


def _imputer(feat: dict[str, Any], default: str = "median") -> list[tuple[str, Any]]:
    from sklearn.impute import SimpleImputer

    strategy = feat.get("impute", default)
    if strategy == "none":
        return []
    kwargs: dict[str, Any] = {"strategy": strategy, "keep_empty_features": True}
    if strategy == "constant":
        kwargs["fill_value"] = feat.get("fill_value", 0)
    return [("impute", SimpleImputer(**kwargs))]


def _categorical_start() -> list[tuple[str, Any]]:
    from sklearn.impute import SimpleImputer

    from .transformers import AsCategory

    return [("text", AsCategory()),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING, keep_empty_features=True))]


def compile_feature(feat: dict[str, Any], seed: int = 42) -> Any:
    """One checked feature definition as an (unfitted) scikit-learn transformer."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        KBinsDiscretizer,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
        TargetEncoder,
    )

    from . import transformers as tr

    t = feat["transform"]
    steps: list[tuple[str, Any]]
    if t in ("standard", "minmax", "robust", "passthrough", "log", "bin"):
        steps = [("numeric", tr.AsNumeric()), *_imputer(feat)]
        if t == "log":
            steps.append(("log", tr.SignedLog()))
            if feat.get("scale", True):
                steps.append(("scale", StandardScaler()))
        elif t == "bin":
            encode = "onehot-dense" if feat.get("encode", "onehot") == "onehot" else "ordinal"
            steps.append(("bin", KBinsDiscretizer(n_bins=feat.get("bins", 5), encode=encode,
                                                  strategy=feat.get("strategy", "quantile"),
                                                  random_state=seed)))
        elif t != "passthrough":
            scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[t]
            steps.append(("scale", scaler()))
    elif t == "one_hot":
        steps = [*_categorical_start(),
                 ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                                          min_frequency=feat.get("min_frequency"),
                                          max_categories=feat.get("max_categories"),
                                          drop=feat.get("drop")))]
    elif t == "ordinal":
        categories = [list(map(str, feat["order"]))] if "order" in feat else "auto"
        steps = [*_categorical_start(),
                 ("encode", OrdinalEncoder(categories=categories, handle_unknown="use_encoded_value",
                                           unknown_value=-1))]
    elif t == "target_encode":
        steps = [*_categorical_start(),
                 ("encode", TargetEncoder(smooth=feat.get("smooth", "auto"), cv=feat.get("cv", 5)))]
    elif t == "date_parts":
        steps = [("parts", tr.DateParts(tuple(feat.get("parts", ("year", "month", "dayofweek"))))),
                 *_imputer(feat)]
    elif t in ("ratio", "difference"):
        steps = [("compute", tr.Arithmetic(t, output=feat["name"])), *_imputer(feat)]
    elif t == "missing_indicator":
        steps = [("flag", tr.IsMissing())]
    elif t == "text_hash":
        steps = [("hash", tr.HashedText(feat.get("n_features", 16)))]
    else:  # custom: a function may return missing values (inputs missing, a division by zero)
        steps = [("custom", tr.CustomFunction(feat["function"], feat.get("params"), feat["name"])),
                 *_imputer(feat)]
    return Pipeline(steps)


def build_pipeline(spec: dict[str, Any], seed: int = 42) -> Any:
    """The whole (unfitted) feature pipeline of a checked spec."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from .transformers import AsFloat

    ct = ColumnTransformer([(f["name"], compile_feature(f, seed), list(f["columns"]))
                            for f in spec["features"]], remainder="drop",
                           verbose_feature_names_out=True)
    return Pipeline([("features", ct), ("to_float", AsFloat())]).set_output(transform="pandas")


def check_kinds(spec: dict[str, Any], df: Any, source: str = "features.yaml") -> None:
    """Numeric transforms need numeric columns and date parts need dates.

    Raises
    ------
    DataError
    """
    from ..dataprep._util import date_format, show
    from ..dataprep.schema import dtype_family

    for feat in spec["features"]:
        t = feat["transform"]
        for col in feat["columns"]:
            kind = dtype_family(df[col])
            if t in NUMERIC_TRANSFORMS and kind not in ("int", "float", "bool"):
                example = df[col].dropna().iloc[0] if df[col].notna().any() else None
                raise DataError(f"{source}: feature '{feat['name']}' applies {t} to '{col}', which holds "
                                f"{kind} values (e.g. {example!r}). Use one_hot, ordinal or target_encode "
                                "for text columns.")
            if t == "date_parts" and kind != "datetime" and date_format(df[col]) is None:
                example = df[col].dropna().iloc[0] if df[col].notna().any() else None
                raise DataError(f"{source}: feature '{feat['name']}' takes date parts of '{col}', "
                                f"which does not hold dates (e.g. {show(example)}). Convert it or "
                                "pick another transform.")


def check_custom_functions(spec: dict[str, Any], root: str | Path | None = None) -> None:
    """Import every custom feature function now, so a typo fails before any fitting."""
    from ..dataprep._util import import_project_module
    from ..errors import ConfigError

    for feat in spec["features"]:
        if feat["transform"] != "custom":
            continue
        module, _, name = feat["function"].rpartition(".")
        mod = import_project_module(module, root, "feature functions module")
        if not callable(getattr(mod, name, None)):
            from ..errors import did_you_mean

            funcs = [n for n in dir(mod) if callable(getattr(mod, n)) and not n.startswith("_")]
            raise ConfigError(f"Feature '{feat['name']}': {module} has no function '{name}'."
                              f"{did_you_mean(name, funcs)} Define it in a `#| export` cell and "
                              "re-export.")


def raw_columns(spec: dict[str, Any], df: Any) -> dict[str, str]:
    """The input columns the pipeline reads, in first-use order, with their training dtypes."""
    out: dict[str, str] = {}
    for feat in spec["features"]:
        for col in feat["columns"]:
            out.setdefault(col, str(df[col].dtype))
    return out


def extract_features(spec: dict[str, Any], splits: dict[str, Any], target: str, seed: int = 42,
                     id_column: str = "row_id", source: str = "features.yaml") -> Report:
    """Fit the pipeline on ``splits["train"]`` only and transform every split.

    Returns
    -------
    Report
        ``value`` is ``{"pipeline": fitted Pipeline, "splits": {name: DataFrame}, "features": [...],
        "raw_columns": {...}}``; each split holds the feature columns, the target (original labels)
        and `id_column`.

    Raises
    ------
    DataError
        For a missing column or target, a transform applied to the wrong kind of column, or a fit
        that fails.
    """
    import pandas as pd

    from .spec import check_columns

    train = splits["train"]
    for name, df in splits.items():
        if target not in df.columns:
            raise DataError(f"The {name} split has no target column '{target}'. Split the data with its "
                            "target (`omg data split`).")
    check_columns(spec, train.columns, source)
    check_kinds(spec, train, source)
    pipeline = build_pipeline(spec, seed)
    inputs = list(raw_columns(spec, train))
    start = time.perf_counter()
    try:
        features = {"train": pipeline.fit_transform(train[inputs], train[target])}
        fit_s = time.perf_counter() - start
        for name, df in splits.items():
            if name != "train":
                features[name] = pipeline.transform(df[inputs])
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any fitting failure is reported with its cause
        raise DataError(f"Fitting the feature pipeline failed: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}. Check the feature definitions "
                        f"in {source}.") from None
    total_s = time.perf_counter() - start
    out = {}
    for name, X in features.items():
        X = X.reset_index(drop=True)
        df = splits[name].reset_index(drop=True)
        extra = {target: df[target]}
        if id_column in df.columns:
            extra = {id_column: df[id_column], **extra}
        out[name] = pd.concat([pd.DataFrame(extra), X], axis=1)
    ct = pipeline.named_steps["features"]
    definitions, rows = [], []
    for feat in spec["features"]:
        names = [str(n) for n in ct.named_transformers_[feat["name"]].get_feature_names_out(
            feat["columns"])]
        outputs = [f"{feat['name']}__{n}" for n in names]
        definitions.append({**feat, "outputs": outputs})
        rows.append({"feature": feat["name"], "transform": feat["transform"],
                     "columns": ", ".join(feat["columns"]), "outputs": len(outputs),
                     "e.g.": ", ".join(outputs[:3]) + (" ..." if len(outputs) > 3 else "")})
    n_out = sum(r["outputs"] for r in rows)
    report = Report(
        f"Extracted {n_out} features from {len(inputs)} columns (fitted on {len(train)} training rows)",
        summary={"definitions": len(spec["features"]), "input columns": len(inputs),
                 "output features": n_out,
                 **{f"{k} rows": len(v) for k, v in out.items()},
                 "fit seconds": round(fit_s, 3), "total seconds": round(total_s, 3)},
        tables={"features": pd.DataFrame(rows)},
        value={"pipeline": pipeline, "splits": out, "features": definitions,
               "raw_columns": raw_columns(spec, train)},
    )
    report.messages.append("The pipeline was fitted on the training split only; validation and test "
                           "were transformed with it, as serving will transform requests.")
    if any(f["transform"] == "target_encode" for f in spec["features"]):
        report.messages.append("Target encodings of training rows are cross-fitted (out-of-fold), so "
                               "they do not leak each row's own label.")
    return report


def save_pipeline(pipeline: Any, path: str | Path) -> list[str]:
    """Save a fitted pipeline with skops (atomically); return the types it needs trusted on load."""
    import skops.io as sio

    from ..atomic import write_bytes

    data = sio.dumps(pipeline)
    untrusted = sorted(sio.get_untrusted_types(data=data))
    outside = [t for t in untrusted if t not in TRUSTED_TYPES]
    if outside:
        raise DataError(f"The pipeline holds types the kit does not trust on load: {outside}. Keep "
                        "feature logic in the supported transforms or custom functions.")
    write_bytes(path, data)
    return untrusted


def load_pipeline(path: str | Path, trusted: tuple[str, ...] = TRUSTED_TYPES) -> Any:
    """Load a pipeline saved by :func:`save_pipeline`, trusting only the listed types.

    A pipeline stored in a project's feature store also gets the project folder on ``sys.path`` when
    it has custom functions, so ``projectlib`` imports from there.

    Raises
    ------
    DataError
        For a missing file, a file that is not a skops pipeline, or one holding an untrusted type.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise DataError(f"No feature pipeline at {path}. Run `omg feature extract` (and `store`) first.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise DataError(f"{path} is not a skops pipeline file: {exc}.") from None
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise DataError(f"Refusing to load {path}: it holds types outside the trusted list: {refused}. "
                        "Only pipelines written by `omg feature extract` are loaded.")
    pipeline = sio.load(path, trusted=list(untrusted))
    if any(t.endswith("CustomFunction") for t in untrusted):
        _add_project_path(path)
    return pipeline


def _add_project_path(path: Path) -> None:
    import sys

    for folder in path.resolve().parents:
        if (folder / "omg.yaml").is_file():
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
            return
