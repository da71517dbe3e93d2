"""``features.yaml``: declarative feature definitions (core layer; format in docs/features_format.md).

::

    features:
      - name: numeric               # prefix of the output columns
        transform: standard         # see TRANSFORMS
        columns: [tenure_months, monthly_spend]
      - name: gains
        transform: log
        columns: [refunds, discounts]
      - name: plan
        transform: one_hot
        columns: [plan]
        min_frequency: 0.01
      - name: spend_per_month
        transform: ratio
        columns: [total_spend, tenure_months]
      - name: age_squared
        transform: custom
        function: projectlib.features.age_squared
        columns: [age]

Each definition is checked here (unknown transform or key, with a did-you-mean; keys that do not apply
to the transform; columns missing from the data) before anything is fitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import read_yaml
from ..errors import ConfigError, DataError, did_you_mean, unknown_choice

# Custom feature functions come from the project module only (a pipeline file names them by path).
PROJECT_PREFIX = "projectlib."

NUMERIC_SCALERS = ("standard", "minmax", "robust", "passthrough")
TRANSFORMS: dict[str, str] = {
    "standard": "numeric, scaled to mean 0 and variance 1",
    "minmax": "numeric, scaled to [0, 1]",
    "robust": "numeric, centred on the median and scaled by the IQR",
    "passthrough": "numeric, unchanged (missing values imputed)",
    "log": "sign(x) * log(1 + |x|), then standardised (scale: false to skip)",
    "bin": "numeric cut into bins (one-hot or ordinal codes)",
    "one_hot": "categories as 0/1 columns; rare and unseen categories grouped",
    "ordinal": "categories as integer codes (in the given order, or sorted)",
    "target_encode": "categories as the cross-fitted mean target (scikit-learn TargetEncoder)",
    "date_parts": "year, month, day of week ... of date columns",
    "ratio": "first column / second column",
    "difference": "first column - second column",
    "missing_indicator": "1 where the value is missing, else 0",
    "text_hash": "free text as hashed word counts (n_features buckets per column)",
    "custom": "a function of the project module, f(df, **params) -> columns",
}
COMMON_KEYS = {"name": str, "transform": str, "columns": (list, str), "description": str}
KEYS: dict[str, dict[str, Any]] = {
    **{t: {"impute": str, "fill_value": (int, float)} for t in NUMERIC_SCALERS},
    "log": {"impute": str, "fill_value": (int, float), "scale": bool},
    "bin": {"impute": str, "fill_value": (int, float), "bins": int, "strategy": str, "encode": str},
    "one_hot": {"max_categories": int, "min_frequency": (int, float), "drop": str},
    "ordinal": {"order": list},
    "target_encode": {"smooth": (int, float, str), "cv": int},
    "date_parts": {"parts": list},
    "ratio": {"impute": str},
    "difference": {"impute": str},
    "missing_indicator": {},
    "text_hash": {"n_features": int},
    "custom": {"function": str, "params": dict, "impute": str, "fill_value": (int, float)},
}
DATE_PARTS = ("year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "is_weekend")
IMPUTE = ("median", "mean", "most_frequent", "constant", "none")
BIN_STRATEGIES = ("quantile", "uniform", "kmeans")
BIN_ENCODE = ("onehot", "ordinal")
EXAMPLE = "features:\n  - name: numeric\n    transform: standard\n    columns: [tenure_months, monthly_spend]"


def check_spec(data: Any, source: str = "features.yaml") -> dict[str, Any]:
    """Check a loaded features config and return it normalised (``columns`` always a list).

    Raises
    ------
    ConfigError
        For a missing ``features`` list, an unknown transform or key, a key of another transform,
        duplicate names or a bad value.
    """
    # An unknown key is named first: a misspelt 'features:' is also a missing one.
    extra = set(data) - {"features", "target", "version"} if isinstance(data, dict) else set()
    if extra:
        bad = sorted(map(str, extra))[0]
        raise ConfigError(f"{source}: unknown top-level key '{bad}'."
                          f"{did_you_mean(bad, ['features', 'target', 'version'])} "
                          "Valid: features, target, version.")
    if not isinstance(data, dict) or not isinstance(data.get("features"), list) or not data["features"]:
        raise ConfigError(f"{source}: expected a top-level 'features:' list. Example:\n{EXAMPLE}\n"
                          "Write a starting one from the data with `omg feature extract --infer`.")
    out, names = [], set()
    for i, entry in enumerate(data["features"]):
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: features[{i}] must be a mapping with name, transform, columns.")
        where = f"feature '{entry.get('name', i)}'"
        transform = entry.get("transform")
        if transform not in TRANSFORMS:
            raise ConfigError(f"{source}: {where}: " + unknown_choice("transform", str(transform),
                                                                     TRANSFORMS))
        allowed = {**COMMON_KEYS, **KEYS[transform]}
        for key, value in entry.items():
            if key not in allowed:
                other = [t for t, keys in KEYS.items() if key in keys]
                hint = (f" It applies to transform {', '.join(other)}." if other else
                        did_you_mean(key, allowed))
                raise ConfigError(f"{source}: {where}: unknown key '{key}' for transform "
                                  f"{transform}.{hint} Valid keys: {', '.join(sorted(allowed))}.")
            types = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                names_ = " or ".join(t.__name__ for t in types)
                raise ConfigError(f"{source}: {where}: '{key}' must be {names_}, got {value!r}.")
        spec = dict(entry)
        for key in ("name", "columns"):
            if key not in spec:
                raise ConfigError(f"{source}: {where} has no '{key}'.")
        if spec["name"] in names:
            raise ConfigError(f"{source}: two features are named '{spec['name']}'. Names prefix the "
                              "output columns and must be unique.")
        names.add(spec["name"])
        cols = spec["columns"]
        spec["columns"] = [cols] if isinstance(cols, str) else [str(c) for c in cols]
        if not spec["columns"]:
            raise ConfigError(f"{source}: {where} lists no columns.")
        _check_values(spec, where, source)
        out.append(spec)
    return {"target": data.get("target"), "features": out}


def _check_values(spec: dict[str, Any], where: str, source: str) -> None:
    t = spec["transform"]

    def choice(key: str, options: tuple[str, ...]) -> None:
        if key in spec and spec[key] not in options:
            raise ConfigError(f"{source}: {where}: " + unknown_choice(key, spec[key], options))

    choice("impute", IMPUTE)
    choice("strategy", BIN_STRATEGIES)
    choice("encode", BIN_ENCODE)
    if t in ("ratio", "difference") and len(spec["columns"]) != 2:
        raise ConfigError(f"{source}: {where}: {t} takes exactly two columns (a, b), got "
                          f"{len(spec['columns'])}.")
    if t == "text_hash" and not 1 <= spec.get("n_features", 16) <= 1024:
        raise ConfigError(f"{source}: {where}: n_features must be between 1 and 1024.")
    if t == "bin" and spec.get("bins", 5) < 2:
        raise ConfigError(f"{source}: {where}: bins must be at least 2.")
    if t == "date_parts":
        for part in spec.get("parts", []):
            if part not in DATE_PARTS:
                raise ConfigError(f"{source}: {where}: " + unknown_choice("date part", part, DATE_PARTS))
    if t == "custom" and not spec.get("function", "").startswith(PROJECT_PREFIX):
        raise ConfigError(f"{source}: {where}: a custom feature needs 'function: "
                          "projectlib.MODULE.FUNCTION' (e.g. projectlib.features.age_squared), a "
                          f"function of the project module; got {spec.get('function', '')!r}.")
    if t == "ordinal" and "order" in spec and len(spec["columns"]) != 1:
        raise ConfigError(f"{source}: {where}: 'order' applies to one column; split the feature.")


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and check a features YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The features config {path} does not exist. Write a starting one from the "
                          "training split with `omg feature extract --infer` (format: "
                          "docs/features_format.md).")
    return check_spec(read_yaml(path, "features config"), path.name)


def check_columns(spec: dict[str, Any], columns: Any, source: str = "features.yaml") -> None:
    """Every column a feature names must be in the data.

    Raises
    ------
    DataError
        Naming the feature, the missing column and a near miss.
    """
    have = [str(c) for c in columns]
    for feat in spec["features"]:
        for col in feat["columns"]:
            if col not in have:
                raise DataError(f"{source}: feature '{feat['name']}' uses column '{col}', which is not "
                                f"in the training data.{did_you_mean(col, have)} Fix the column name; "
                                f"columns: {', '.join(have)}.")


TEXT_BUCKETS = 16  # hashed buckets per free-text column


def date_parts_for(values: Any) -> list[str]:
    """The date parts worth extracting from `values` (dates, or text dates): month and day of week;
    the year when the dates span more than one; the hour when they carry times of day."""
    from ..dataprep._util import parse_dates

    try:
        d = parse_dates(values).dropna()
    except (ValueError, TypeError):
        return ["year", "month", "dayofweek"]
    parts = ["year"] if d.dt.year.nunique() > 1 else []
    parts += ["month", "dayofweek"]
    if len(d) and bool((d.dt.hour != 0).any() or (d.dt.minute != 0).any()):
        parts.append("hour")
    return parts


def _kinds_of(df: Any, target: str | None, time_column: str | None,
              task: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Each column's kind and, for the columns to leave out, the reason: from the shared column
    analysis (:func:`omgmagics.columns.column_roles`)."""
    from ..columns import column_roles, excluded_columns

    roles = column_roles(df, target, time_column=time_column, task=task)
    excluded = excluded_columns(roles)
    reasons = dict(excluded) if isinstance(excluded, dict) else {c: roles[c].reason for c in excluded}
    return {str(c): r.kind for c, r in roles.items()}, {str(c): str(v) for c, v in reasons.items()}


def infer_spec(df: Any, target: str | None, exclude: tuple[str, ...] | dict[str, str] = (),
               max_one_hot: int = 30, time_column: str | None = None,
               task: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """A starting features config from a training DataFrame, and notes on what was done and why.

    Column kinds come from :func:`omgmagics.columns.column_roles`. Ids, constant columns and columns
    that leak the target are left out (each named with the reason); numeric columns are
    standardised (log first when strongly skewed and non-negative); categories and booleans one-hot
    encoded (target-encoded above `max_one_hot` categories; a missing value is a category of its
    own); dates, also dates written as text, become date parts (the year when they span several,
    the hour when they carry times); free text becomes hashed word counts; missing numbers and dates
    are flagged. `exclude` (bookkeeping, sensitive features, ``data.exclude_columns``; a dict maps
    each to why, named in the notes with the column analysis' own reason) and the target are left
    out.
    """
    kinds, reasons = _kinds_of(df, target, time_column, task)
    why_excluded = dict(exclude) if isinstance(exclude, dict) else {}
    groups: dict[str, list[str]] = {"numeric": [], "skewed": [], "categorical": [],
                                    "high_cardinality": [], "boolean": [], "dates": [], "text": [],
                                    "missing": []}
    notes: list[str] = []
    parts: list[str] = []
    for col in df.columns:
        if col == target or col in exclude:
            why = why_excluded.get(col)
            if why:
                found = reasons.get(str(col))
                notes.append(f"'{col}' left out: {why}" + (f" ({found})" if found else "") + ".")
            continue
        kind = kinds.get(str(col), "categorical")
        if str(col) in reasons or kind in ("target", "id", "constant", "leak"):
            notes.append(f"'{col}' left out: {reasons.get(str(col)) or kind}.")
            continue
        s = df[col]
        if s.isna().any() and kind in ("numeric", "datetime"):
            groups["missing"].append(col)  # categories get a __missing__ category instead
        if kind == "numeric":
            values = s.dropna().astype(float)
            skewed = len(values) > 10 and values.min() >= 0 and abs(float(values.skew())) > 2
            groups["skewed" if skewed else "numeric"].append(col)
        elif kind == "datetime":
            groups["dates"].append(col)
            parts += [p for p in date_parts_for(s) if p not in parts]
        elif kind == "text":
            groups["text"].append(col)
        elif kind == "boolean":
            groups["boolean"].append(col)
        else:
            groups["categorical" if s.nunique() <= max_one_hot else "high_cardinality"].append(col)
    if groups["dates"]:
        parts = [p for p in DATE_PARTS if p in parts]
        notes.append(f"Dates ({', '.join(map(str, groups['dates']))}) become date parts "
                     f"({', '.join(parts)}), parsed the same way from raw values in serving.")
    if groups["text"]:
        notes.append(f"Free text ({', '.join(map(str, groups['text']))}) becomes {TEXT_BUCKETS} "
                     "hashed word counts per column (text_hash); delete the entry to leave it out.")
    transforms = {"numeric": {"transform": "standard"}, "skewed": {"transform": "log"},
                  "categorical": {"transform": "one_hot", "min_frequency": 0.005},
                  "high_cardinality": {"transform": "target_encode"},
                  "boolean": {"transform": "one_hot"},
                  "dates": {"transform": "date_parts", "parts": parts},
                  "text": {"transform": "text_hash", "n_features": TEXT_BUCKETS},
                  "missing": {"transform": "missing_indicator"}}
    features = [{"name": name, **transforms[name], "columns": cols}
                for name, cols in groups.items() if cols]
    if not features:
        raise DataError("No usable feature columns: every column is the target, excluded, an id, "
                        "constant or a leak of the target" + (f" ({'; '.join(notes)})" if notes else "")
                        + ". Check the target and data.exclude_columns in omg.yaml.")
    if exclude and not why_excluded:
        notes.append(f"Left out on purpose: {', '.join(map(str, exclude))} (bookkeeping, "
                     "data.exclude_columns or sensitive features; add them back deliberately if the "
                     "model may use them).")
    return {"target": target, "features": features}, notes


def spec_to_yaml(spec: dict[str, Any], notes: list[str] = ()) -> str:
    """The features config as commented YAML, ready to edit."""
    import yaml

    head = ["# Feature definitions compiled by `omg feature extract` into one fitted scikit-learn",
            "# pipeline (format: docs/features_format.md). Transforms: " + ", ".join(TRANSFORMS) + "."]
    head += [f"# {n}" for n in notes]
    body = yaml.safe_dump({k: v for k, v in spec.items() if v is not None}, sort_keys=False,
                          default_flow_style=None, width=100, allow_unicode=True)
    return "\n".join(head) + "\n" + body
