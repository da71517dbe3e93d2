"""``omg ml init``: scaffold a project (core layer).

Writes the project layout (the folders of :mod:`omgmagics.project`) into a temporary folder and
renames it into place, so a failed init leaves nothing behind. The brief in ``omg.yaml`` is pre-filled from the data: problem type from the
target, sensitive features recognised by column name, a time column when one parses as dates, the
columns no model should read (identifiers, constants, leaks of the target) and the size-dependent
defaults. The notebooks' project-specific cells (feature and labeling functions, the serving handler,
phase 5's shift) and parameters are generated from the data (:mod:`omgmagics.projectcode`; the demo's
come from :mod:`omgmagics.datasets.adult_project`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from . import __version__, clock
from .atomic import atomic_dir
from .errors import DataError, ProjectError, UsageError, unknown_choice
from .metrics import default_metric, default_secondary
from .project import PHASES

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LAYOUT = ["data/raw", "data/processed", "features", "models", "runs", "reports", "docs", "decisions",
          "monitoring"]
SENSITIVE_NAMES = ["sex", "gender", "race", "ethnicity", "ethnic", "age", "religion", "nationality",
                   "native", "disability", "marital", "pregnan", "sexual_orientation"]
CHECKPOINTS = {
    1: ("Feasibility approved", "product owner"),
    2: ("Data ready", "data steward"),
    3: ("Model meets criteria", "ML lead"),
    4: ("Staging validated", "platform owner"),
    5: ("Production stable", "on-call lead"),
}

def infer_task(target: Any) -> str:
    """``regression`` for a numeric target with many distinct values, else ``classification``."""
    import pandas as pd

    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    n_unique = values.nunique()
    is_integer = bool((values == values.round()).all())
    return "classification" if n_unique <= 20 and is_integer else "regression"


def detect_sensitive(columns: list[str]) -> list[str]:
    """Columns whose name suggests a protected attribute (sex, gender, race, age ...)."""
    found = []
    for col in columns:
        low = re.sub(r"[^a-z]", "_", str(col).lower())
        tokens = set(low.split("_"))
        if any(name in tokens or (len(name) > 4 and name in low) for name in SENSITIVE_NAMES):
            found.append(str(col))
    return found


def detect_time_column(df: Any) -> str | None:
    """The first column that is a datetime, or text that parses as dates in 95% of rows."""
    import warnings

    import pandas as pd

    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            return str(col)
    for col in df.columns:
        s = df[col]
        if s.dtype != object:
            continue
        sample = s.dropna().astype(str).head(200)
        if len(sample) == 0 or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").mean() > 0.5:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95:
            return str(col)
    return None


def _yaml_value(value: Any) -> str:
    return "null" if value is None else json.dumps(value)


def _excluded_yaml(excluded: dict[str, str]) -> str:
    if not excluded:
        return "[]            # columns never used as features (leaks, personal data)"
    lines = "".join(f"\n    - {json.dumps(c)}   # {why}" for c, why in excluded.items())
    return f"                # never model inputs; found by init (edit freely):{lines}"


def _defaults_yaml(defaults: dict[str, Any]) -> str:
    keys = ["rows", "inputs", "smallest_class_rows", "k_features", "n_trials", "cv_folds",
            "canary_window", "sim_days", "per_day", "min_labels", "eval_min_labels", "shift"]
    return "\n".join(f"  {k}: {_yaml_value(defaults[k])}" for k in keys if k in defaults)


def render_brief(name: str, *, task: str, target: str, metric: str, threshold: float | None,
                 positive_label: Any, sensitive: list[str], time_column: str | None,
                 source: str, business_problem: str, excluded: dict[str, str] | None = None,
                 defaults: dict[str, Any] | None = None, secondary: list[str] | None = None) -> str:
    """The text of ``omg.yaml``, commented so the user can edit the brief."""
    checkpoints = "\n".join(f"    {p}: {{name: {json.dumps(n)}, owner: {json.dumps(o)}}}"
                            for p, (n, o) in CHECKPOINTS.items())
    defaults = defaults or {}
    n_trials = defaults.get("n_trials", 50)
    eval_min_labels = defaults.get("eval_min_labels", 50)
    created = clock.today().isoformat()
    return f"""# omg project brief and settings. Edit freely; unknown keys are rejected.
project:
  name: {json.dumps(name)}
  description: {json.dumps(f"{task.capitalize()} of {target}")}
  created: {json.dumps(created)}
  kit_version: {json.dumps(__version__)}

brief:
  business_problem: {json.dumps(business_problem)}
  stakeholders: ["product owner", "data steward", "ML lead", "platform owner"]
  objective:
    type: {task}                 # classification | regression
    target: {json.dumps(target)}
    positive_label: {_yaml_value(positive_label)}   # the class scored as positive (classification)
    primary_metric: {metric}         # see omgmagics.metrics.METRICS
    threshold: {_yaml_value(threshold)}           # the phase 3 gate; null: must beat the best baseline
    secondary_metrics: {json.dumps(secondary or default_secondary(task))}
  constraints:
    latency_p99_ms: 50           # serving, single record
    throughput_rps: 200
    model_size_mb: 50
    retrain_within_hours: 4
    detect_drift_within_hours: 24
  sensitive_features: {json.dumps(sensitive)}
  time_column: {_yaml_value(time_column)}
  timeline:                      # weeks per phase
    discovery: 1
    data: 2
    model: 2
    deploy: 1
    ops: 1
  checkpoints:                   # governance: who approves each phase gate (`omg ml gate approve`)
{checkpoints}

data:
  source: {json.dumps(source)}            # "demo" (bundled Adult census data) or a csv/parquet path
  sample_frac: 1.0
  exclude_columns: {_excluded_yaml(excluded or {})}

fairness:                        # largest differences accepted between groups (phase 3 gate)
  demographic_parity_difference: 0.30
  equalized_odds_difference: 0.20   # multi-class: one class against the rest, the worst class
  metric_difference: null        # largest spread of the primary metric between groups (its units)

tracking:
  uri: null                      # null: sqlite mlflow.db in the project; or http://host:port
  experiment: {json.dumps(name)}
  registered_model: {json.dumps(name + "-model")}

tuning:
  storage: null                  # null: the project's SQLite; or postgresql://...
  study: null
  n_trials: {n_trials}                    # derived from the table's size (defaults: below)

retraining:                      # phase 5 (`omg ops retrain`); other keys: omgmagics.ops.settings
  eval_min_labels: {eval_min_labels}            # labels the evaluation window needs (derived: defaults below)

features:
  name: project_features

serving:                         # phase 4; every key has a default (see docs/architecture.md)
  host: 127.0.0.1                # bind address; anything else requires auth_token_env
  auth_token_env: null           # name of the environment variable holding a bearer token
  max_batch: 1024
  canary:
    steps: [10, 25, 50, 100]     # challenger's traffic share, stepped up after healthy windows
    max_error_rate: 0.01         # p99 limit: brief.constraints.latency_p99_ms

seed: 42

# Size-dependent defaults derived by `omg ml init` from the table (rows with a label, model inputs,
# classes); the notebooks' parameters were set from them. A record: editing it changes nothing.
defaults:
{_defaults_yaml(defaults)}
"""


def init_project(name: str, parent: str | Path = ".", template: str | None = None,
                 data: str | None = None, target: str | None = None) -> Any:
    """Create project `name` in `parent`.

    Parameters
    ----------
    name : str
        Folder name: letters, digits, ``-`` and ``_``; no path separators or ``..``.
    parent : path-like
        Where the folder is created.
    template : {"classification", "regression"}, optional
        Problem type; inferred from the target when omitted.
    data : path-like, optional
        A csv or parquet table; without it the bundled Adult census data is used.
    target : str, optional
        Target column of `data` (required with `data`).

    Returns
    -------
    Report
    """
    from . import projectcode
    from .columns import column_roles, excluded_columns
    from .datasets import ADULT_ATTRIBUTION, load_demo
    from .datasets import adult_project as adult
    from .io import read_table
    from .results import Report
    from .templates import PROJECT_TEMPLATE, notebooks_dir

    if not NAME_RE.match(name or ""):
        raise UsageError(f"Project name '{name}' is not allowed: use letters, digits, '-' and '_' only "
                         "(no path separators, no '..', at most 64 characters). Example: churn-model")
    if template not in (None, "classification", "regression"):
        raise UsageError(unknown_choice("template", str(template), ["classification", "regression"]))
    parent = Path(parent).resolve()
    if not parent.is_dir():
        raise ProjectError(f"Folder {parent} does not exist. Create it or pass --dir PARENT.")
    dest = parent / name
    if dest.exists():
        raise ProjectError(f"{dest} already exists; init never overwrites a project. "
                           "Choose another name or remove the folder.")

    messages: list[str] = []
    if data is None:
        if target not in (None, adult.TARGET):
            raise UsageError(f"--target needs --data: the demo data's target is '{adult.TARGET}'.")
        df = load_demo()
        target, source = adult.TARGET, "demo"
        business_problem = adult.BUSINESS_PROBLEM
        messages.append(f"Demo data: {ADULT_ATTRIBUTION}")
    else:
        if target is None:
            raise UsageError("--data needs --target COL: name the column to predict.")
        data_path = Path(data).resolve()
        df = read_table(data_path)
        if target not in df.columns:
            raise DataError(unknown_choice(f"target column in {data_path.name}", target,
                                           [str(c) for c in df.columns]))
        source = str(data_path)
        business_problem = f"Predict {target} from the other columns of {data_path.name}. (Edit me.)"

    task, n_classes = _check_target(df, target, template)
    metric = default_metric(task, n_classes)
    y = df[target]
    missing = int(y.isna().sum())
    if data is None:
        positive, threshold = adult.POSITIVE, adult.THRESHOLD
        sensitive = list(adult.SENSITIVE)
    else:
        threshold = None
        positive = None
        if task == "classification" and n_classes == 2:
            counts = y.value_counts()
            positive = counts.index[-1]  # the minority class is usually the one to find
            positive = positive.item() if hasattr(positive, "item") else positive
        sensitive = [c for c in detect_sensitive([str(c) for c in df.columns]) if c != target]
    roles = column_roles(df, target, task=task)
    time_column = next((c for c, r in roles.items() if r.kind == "datetime"), None) or \
        detect_time_column(df.drop(columns=[target]))
    if time_column is not None and roles.get(time_column) is not None and \
            roles[time_column].kind != "datetime":
        roles = column_roles(df, target, time_column=time_column, task=task)
    excluded = {c: roles[c].reason for c in excluded_columns(roles) if c not in sensitive}
    inputs = [c for c, r in roles.items() if r.use and c not in excluded]
    if data is None:
        code = adult.project_code(projectcode.derive_sizes(
            len(df) - missing, len(inputs), task, [int(v) for v in y.value_counts().tolist()]))
    else:
        code = projectcode.generate(df, target, task, inputs=inputs, time_column=time_column,
                                    positive=positive)
    if missing:
        messages.append(f"{missing} of {len(df)} rows have no '{target}' value: they are unlabeled, "
                        "kept out of validation and test, and labeled by weak supervision in phase "
                        "2 where labeling functions vote on them (see notebooks/02_data).")
    if sensitive:
        messages.append(f"Sensitive features recognised by name: {', '.join(sensitive)} "
                        "(edit brief.sensitive_features).")
    if time_column:
        messages.append(f"Time column detected: {time_column}.")
    for col, why in excluded.items():
        messages.append(f"Excluded from the model inputs: {col!r} ({why}); see data.exclude_columns.")
    messages += [f"Generated: {note}." for note in code.notes]

    text = render_brief(name, task=task, target=target, metric=metric,
                        secondary=default_secondary(task, n_classes), threshold=threshold,
                        positive_label=positive, sensitive=sensitive, time_column=time_column,
                        source=source, business_problem=business_problem, excluded=excluded,
                        defaults=code.defaults)
    with atomic_dir(dest) as tmp:
        for folder in LAYOUT:
            (tmp / folder).mkdir(parents=True, exist_ok=True)
        (tmp / "omg.yaml").write_text(text, encoding="utf-8")
        shutil.copy(PROJECT_TEMPLATE / "gitignore", tmp / ".gitignore")
        shutil.copy(PROJECT_TEMPLATE / "pyproject.toml", tmp / "pyproject.toml")
        shutil.copytree(PROJECT_TEMPLATE / "projectlib", tmp / "projectlib",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(PROJECT_TEMPLATE / "decisions" / "adr-template.md",
                    tmp / "decisions" / "adr-template.md")
        shutil.copy(PROJECT_TEMPLATE / "docs" / "README.md", tmp / "docs" / "README.md")
        for folder in PHASES.values():
            src = notebooks_dir() / folder / f"{folder}.ipynb"
            (tmp / "notebooks" / folder).mkdir(parents=True)
            shutil.copy(src, tmp / "notebooks" / folder / src.name)
            projectcode.apply_to_notebook(tmp / "notebooks" / folder / src.name, code, folder)
        _export(tmp)
        # Validate what we wrote before it becomes visible.
        from .config import load_config

        load_config(tmp / "omg.yaml")

    return Report(
        title=f"Created project {name} in {dest}",
        summary={"objective": task if task == "regression" else projectcode.task_kind(task, n_classes)
                 + " classification", "target": target, "primary metric": metric,
                 "threshold": threshold if threshold is not None else "none (must beat baselines)",
                 "rows": len(df), "columns": df.shape[1], "unlabeled rows": missing,
                 "sensitive features": sensitive or "none", "time column": time_column or "none",
                 "excluded columns": list(excluded) or "none"},
        messages=messages + [f"Next: cd {dest} && omg ml run   (or open notebooks/01_discovery)"],
        artifacts={"project": str(dest), "brief": str(dest / "omg.yaml")},
        value=str(dest),
    )


def _check_target(df: Any, target: str, template: str | None) -> tuple[str, int]:
    """The task (``template`` or inferred) and the number of classes; a clear error for a target no
    model can learn."""
    import numpy as np
    import pandas as pd

    y = df[target]
    missing = int(y.isna().sum())
    if missing == len(df):
        raise DataError(f"Target column '{target}' is empty (all {len(df)} values missing). "
                        "Choose a column with labels.")
    if pd.api.types.is_numeric_dtype(y) and np.isinf(y.to_numpy(dtype=float)).any():
        raise DataError(f"Target column '{target}' has infinite values "
                        f"({int(np.isinf(y.to_numpy(dtype=float)).sum())} rows). "
                        "Replace or drop them before using the table.")
    task = template or infer_task(y)
    n_classes = int(y.nunique())
    if task == "classification" and n_classes < 2:
        first = y.dropna().iloc[0]
        raise DataError(f"Target column '{target}' has a single class "
                        f"({first.item() if hasattr(first, 'item') else first!r}); "
                        "a classifier needs at least two. Check the column or the data extract.")
    known = len(df) - missing
    if task == "classification" and n_classes > 100 and n_classes > known // 2:
        # An identifier or a free-text column: most classes would have a single row.
        raise DataError(f"Target column '{target}' has {n_classes} distinct values in {known} "
                        "labelled rows, too many to be classes (an identifier?). Choose the label "
                        "column, or --template regression for a numeric target.")
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        bad = y.dropna()[pd.to_numeric(y.dropna(), errors="coerce").isna()]
        raise DataError(f"Target column '{target}' is not numeric ({len(bad)} of {known} values are "
                        f"not numbers, e.g. {bad.iloc[0]!r}); a regression needs numbers. Fix the "
                        "values or use --template classification.")
    return task, n_classes


def _export(root: Path) -> None:
    """Export the generated notebooks' ``#| export`` cells into ``projectlib/`` (nbdev), so the
    project module is the notebooks' code from the start (the runner re-exports before each run)."""
    from nbdev.export import nb_export

    for nb in sorted((root / "notebooks").rglob("*.ipynb")):
        nb_export(str(nb), lib_path=str(root / "projectlib"))
