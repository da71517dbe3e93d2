"""Problem framing (core layer): the brief of ``omg.yaml``, checked, and ``docs/problem_statement.md``.

:class:`Brief` is the plain-value view of the brief that every phase 1 step takes. :meth:`Brief.validate`
checks what the brief says on its own (objective type, metric name, threshold range, constraints);
:meth:`Brief.check_data` checks it against the data (target present, with a "did you mean"; positive
label among the target's values; sensitive features and time column present).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import write_text
from ..errors import ConfigError, DataError, did_you_mean
from ..metrics import METRICS, Metric, get_metric
from ..results import Report
from .tables import check_table, feature_columns, resolve_positive, string_columns

TASKS = ("classification", "regression")
CONSTRAINTS = {  # key -> (label, unit, how it reads)
    "latency_p99_ms": ("Latency p99", "ms", "at most {v} ms per single-record request (99th percentile)"),
    "throughput_rps": ("Throughput", "requests/s", "at least {v} requests per second"),
    "model_size_mb": ("Model size", "MB", "at most {v} MB on disk"),
    "retrain_within_hours": ("Retraining time", "h", "a retrained model within {v} hours of a trigger"),
    "detect_drift_within_hours": ("Drift detection", "h", "drift detected within {v} hours"),
}
# Metrics that only make sense for a binary target, and what a multi-class target uses instead.
MULTICLASS_METRIC = {"roc_auc": "roc_auc_ovr", "f1": "f1_macro", "precision": "precision_macro",
                     "recall": "recall_macro", "average_precision": None}


@dataclass
class Brief:
    """The brief of ``omg.yaml`` as plain values."""

    name: str = "project"
    task: str = "classification"
    target: str | None = None
    positive_label: Any = None
    metric: str = "roc_auc"
    threshold: float | None = None
    secondary_metrics: list[str] = field(default_factory=list)
    business_problem: str | None = None
    stakeholders: list[str] = field(default_factory=list)
    constraints: dict[str, Any] = field(default_factory=dict)
    sensitive: list[str] = field(default_factory=list)
    time_column: str | None = None
    id_column: str | None = None
    exclude_columns: list[str] = field(default_factory=list)
    timeline: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[Any, Any] = field(default_factory=dict)
    source: str | None = None
    sample_frac: float | None = None
    created: str | None = None
    seed: int = 42
    fairness: dict[str, Any] = field(default_factory=dict)
    tracking_uri: str | None = None
    tuning_storage: str | None = None
    n_trials: int | None = None
    serving: Any = None

    @classmethod
    def from_config(cls, cfg: Any) -> Brief:
        """Build from a :class:`omgmagics.config.Config` (or any nested dict of ``omg.yaml``)."""
        def get(path: str, default: Any = None) -> Any:
            node = cfg
            for part in path.split("."):
                if not isinstance(node, dict) or node.get(part) is None:
                    return default
                node = node[part]
            return node

        return cls(
            name=str(get("project.name", "project")),
            task=str(get("brief.objective.type", "classification")),
            target=get("brief.objective.target"),
            positive_label=get("brief.objective.positive_label"),
            metric=str(get("brief.objective.primary_metric", "roc_auc")),
            threshold=get("brief.objective.threshold"),
            secondary_metrics=list(get("brief.objective.secondary_metrics", []) or []),
            business_problem=get("brief.business_problem"),
            stakeholders=[str(s) for s in get("brief.stakeholders", []) or []],
            constraints=dict(get("brief.constraints", {}) or {}),
            sensitive=[str(s) for s in get("brief.sensitive_features", []) or []],
            time_column=get("brief.time_column"),
            id_column=get("data.id_column"),
            exclude_columns=[str(c) for c in get("data.exclude_columns", []) or []],
            timeline=dict(get("brief.timeline", {}) or {}),
            checkpoints=dict(get("brief.checkpoints", {}) or {}),
            source=get("data.source"),
            sample_frac=get("data.sample_frac"),
            created=get("project.created"),
            seed=int(get("seed", 42)),
            fairness=dict(get("fairness", {}) or {}),
            tracking_uri=get("tracking.uri"),
            tuning_storage=get("tuning.storage"),
            n_trials=get("tuning.n_trials"),
            serving=get("serving"),
        )

    @property
    def metric_info(self) -> Metric:
        return get_metric(self.metric, self.task)

    def validate(self) -> None:
        """Check the brief on its own; raise :class:`ConfigError` naming the key and the fix."""
        if self.task not in TASKS:
            raise ConfigError(f"brief.objective.type '{self.task}' is not a problem type the kit "
                              f"handles. Use one of: {', '.join(TASKS)}.{did_you_mean(self.task, TASKS)}")
        if not self.target:
            raise ConfigError("brief.objective.target is not set: name the column to predict in omg.yaml.")
        metric = self.metric_info  # unknown name or wrong task -> ConfigError
        if self.threshold is not None:
            metric.check_threshold(float(self.threshold))
        for name in self.secondary_metrics:
            get_metric(str(name), self.task)
        for key, value in self.constraints.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value <= 0):
                raise ConfigError(f"brief.constraints.{key} must be a positive number, got {value!r}.")
        if self.task == "regression" and self.positive_label is not None:
            raise ConfigError("brief.objective.positive_label is set but the objective is regression; "
                              "remove it (null) or set brief.objective.type: classification.")

    def check_data(self, df: Any, what: str = "the data",
                   stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate the brief, then check it against `df`; return facts about the target.

        `stats`: a table read in batches, `df` being its sample: the exact counts of
        :meth:`omgmagics.discovery.stream.Scan.target_stats`.

        Raises
        ------
        ConfigError
            The brief names something the data does not have (sensitive feature, time column, id
            column, positive label) or a metric that does not fit the number of classes.
        DataError
            The data itself is unusable (see :func:`~omgmagics.discovery.tables.check_table`).
        """
        self.validate()
        check_table(df, target=self.target, task=self.task, exclude=self.exclude_columns, what=what,
                    stats=stats)
        columns = [str(c) for c in df.columns]
        for key, names in (("brief.sensitive_features", self.sensitive),
                           ("data.exclude_columns", self.exclude_columns),
                           ("brief.time_column", [self.time_column] if self.time_column else []),
                           ("data.id_column", [self.id_column] if self.id_column else [])):
            for name in names:
                if name not in columns:
                    raise ConfigError(f"{key} names '{name}', which is not a column of {what}."
                                      f"{did_you_mean(name, columns)} Fix or remove it in omg.yaml.")
        if self.target in self.sensitive or self.target in self.exclude_columns:
            raise ConfigError(f"The target '{self.target}' is also listed in brief.sensitive_features or "
                              "data.exclude_columns. Remove it from that list.")
        if not feature_columns(df, self):
            raise DataError(f"{what} has no feature column left once the target, id, time and excluded "
                            "columns are set aside. Keep at least one feature.")
        if self.time_column:
            self._check_time(df[self.time_column], what)
        y = df[self.target].dropna()
        rows, labeled = len(df), len(y)
        if stats is not None:
            rows = int(stats["rows"])
            labeled = rows - int(stats["missing"][self.target])
        facts: dict[str, Any] = {"rows": rows, "columns": df.shape[1], "labeled": labeled,
                                 "features": len(feature_columns(df, self))}
        if self.task == "regression":
            mean, std = (float(y.mean()), float(y.std())) if stats is None else \
                (float(stats["target_mean"]), float(stats["target_std"]))
            facts.update(target_mean=mean, target_std=std, scorer=METRICS[self.metric].scorer)
            return facts
        counts = y.value_counts() if stats is None else stats["target_counts"]
        if stats is not None:
            import pandas as pd

            y = pd.Series(list(counts.index))
        facts.update(n_classes=len(counts), class_counts={str(k): int(v) for k, v in counts.items()})
        if len(counts) > 2:
            alt = MULTICLASS_METRIC.get(self.metric, self.metric)
            if alt is None:
                raise ConfigError(f"Metric '{self.metric}' needs a binary target, but '{self.target}' has "
                                  f"{len(counts)} classes. Use roc_auc, f1_macro or accuracy.")
            if self.positive_label is not None:
                raise ConfigError(f"brief.objective.positive_label is set but '{self.target}' has "
                                  f"{len(counts)} classes; set it to null for a multi-class objective.")
            facts["scorer"] = METRICS[self.metric].scorer if alt == self.metric else alt
            return facts
        positive = self.positive_label
        if positive is None:
            positive = counts.index[-1]  # the minority class is usually the one to find
            facts["positive_note"] = (f"brief.objective.positive_label is not set: the minority class "
                                      f"{positive!r} is scored as positive.")
        else:
            found = resolve_positive(y, positive)
            if found is None:
                raise ConfigError(f"brief.objective.positive_label {positive!r} is not a value of "
                                  f"'{self.target}' (values: {', '.join(map(repr, counts.index[:10]))})."
                                  f"{did_you_mean(str(positive), [str(v) for v in counts.index])} "
                                  "Fix it in omg.yaml.")
            positive = found
        facts["positive"] = positive.item() if hasattr(positive, "item") else positive
        facts["positive_share"] = float(counts.get(positive, 0) / labeled)
        facts["scorer"] = METRICS[self.metric].scorer
        return facts

    def _check_time(self, s: Any, what: str) -> None:
        import warnings

        import pandas as pd

        if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_numeric_dtype(s):
            return
        sample = s.dropna().astype(str).head(2000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if len(sample) == 0 or parsed.notna().mean() < 0.95:
            bad = sample[parsed.isna()].head(1).tolist()
            problem = f"does not hold dates (e.g. {bad[0]!r} does not parse)" if bad else "has no values"
            raise ConfigError(f"brief.time_column '{self.time_column}' of {what} {problem}. "
                              "Name a date/time column or set it to null.")


def as_time(s: Any) -> Any:
    """The time column as datetimes (text parsed) or numbers, for ordering rows."""
    import warnings

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(s, errors="coerce", format="mixed")


# --- problem statement ---------------------------------------------------------------------------

def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _range_text(m: Metric) -> str:
    lo = "-inf" if m.low == float("-inf") else f"{m.low:g}"
    hi = "inf" if m.high == float("inf") else f"{m.high:g}"
    return f"range [{lo}, {hi}], {'higher' if m.greater_is_better else 'lower'} is better"


def _weeks(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:g} week" + ("" if v == 1 else "s")


def render_problem_statement(brief: Brief, facts: dict[str, Any], source: str) -> str:
    """The Markdown of ``docs/problem_statement.md``."""
    m = brief.metric_info
    today = clock.today().isoformat()
    out = [f"# Problem statement: {brief.name}", "",
           f"_Generated by the kit from `omg.yaml` and the data on {today}. Edit the brief in "
           "`omg.yaml`, not this file, and re-run problem framing._", "",
           "## Business problem", "", brief.business_problem or "_Not stated: fill "
           "brief.business_problem in omg.yaml._", ""]
    if brief.stakeholders:
        out += ["Stakeholders: " + ", ".join(brief.stakeholders) + ".", ""]
    if brief.task == "classification":
        n = facts["n_classes"]
        kind = "binary classification" if n == 2 else f"multi-class classification ({n} classes)"
        classes = ", ".join(f"`{k}` ({v / facts['labeled']:.1%})" for k, v in facts["class_counts"].items())
        target = f"`{brief.target}`: {classes}"
        if "positive" in facts:
            target += f"; positive class `{facts['positive']}`"
    else:
        kind = "regression"
        target = f"`{brief.target}`: mean {facts['target_mean']:.4g}, std {facts['target_std']:.4g}"
    threshold = (f"{'≥' if m.greater_is_better else '≤'} {brief.threshold:g} on the held-out test set "
                 "(the phase 3 gate)" if brief.threshold is not None else
                 "none set: the model must beat the best baseline (phase 3 gate)")
    rows = [["Problem type", kind], ["Target", target],
            ["Primary metric", f"`{m.name}` ({_range_text(m)})"], ["Success threshold", threshold]]
    if brief.secondary_metrics:
        rows.append(["Secondary metrics", ", ".join(f"`{s}`" for s in brief.secondary_metrics)])
    out += ["## ML objective", "", _md_table(["", ""], rows), ""]
    if facts.get("positive_note"):
        out += [f"Note: {facts['positive_note']}", ""]
    rows_text = f"{facts['rows']:,} ({facts['labeled']:,} labeled)"
    if brief.sample_frac is not None and float(brief.sample_frac) < 1:
        rows_text += f"; a seeded {float(brief.sample_frac):.0%} sample (data.sample_frac)"
    data_rows = [["Source", source], ["Rows", rows_text],
                 ["Columns", f"{facts['columns']} ({facts['features']} features)"],
                 ["Time column", f"`{brief.time_column}`" if brief.time_column else "none"],
                 ["Id column", f"`{brief.id_column}`" if brief.id_column else "none"]]
    if brief.exclude_columns:
        data_rows.append(["Excluded columns", ", ".join(f"`{c}`" for c in brief.exclude_columns)])
    out += ["## Data", "", _md_table(["", ""], data_rows), ""]
    crow = [[label, CONSTRAINTS[k][2].format(v=f"{v:g}")] for k, (label, _, _) in CONSTRAINTS.items()
            if (v := brief.constraints.get(k)) is not None]
    crow += [[k, str(v)] for k, v in brief.constraints.items() if k not in CONSTRAINTS and v is not None]
    out += ["## Constraints", "", _md_table(["constraint", "requirement"], crow) if crow else
            "_None stated (brief.constraints)._", ""]
    out += ["## Responsible AI", ""]
    if brief.sensitive:
        out.append("Sensitive features (kept for the fairness review of phase 3): " +
                   ", ".join(f"`{s}`" for s in brief.sensitive) + ".")
    else:
        out.append("_No sensitive features declared (brief.sensitive_features): the fairness review "
                   "of phase 3 has nothing to check._")
    if brief.fairness:
        out += ["", _md_table(["fairness criterion", "largest accepted difference"],
                              [[k.replace("_", " "), v] for k, v in brief.fairness.items()])]
    out += ["", "## Timeline", ""]
    out.append(_md_table(["phase", "duration"], [[k, _weeks(v)] for k, v in brief.timeline.items()])
               if brief.timeline else "_Not stated (brief.timeline)._")
    if brief.checkpoints:
        rows = []
        for phase, spec in brief.checkpoints.items():
            spec = spec if isinstance(spec, dict) else {"name": spec}
            rows.append([phase, spec.get("name", ""), spec.get("owner", "")])
        out += ["", "## Governance checkpoints", "",
                _md_table(["phase", "gate", "approver"], rows), ""]
    return "\n".join(out).rstrip() + "\n"


def frame_problem(df: Any, brief: Brief, path: str | Path, *, source: str,
                  what: str = "the data") -> Report:
    """Check `brief` against `df` and write the problem statement to `path` (atomically).

    Returns
    -------
    Report
        The objective, the target's classes, the metric and threshold, the constraints.
    """
    df = string_columns(df)
    facts = brief.check_data(df, what)
    text = render_problem_statement(brief, facts, source)
    write_text(path, text)
    m = brief.metric_info
    summary: dict[str, Any] = {"objective": brief.task, "target": brief.target}
    if brief.task == "classification":
        summary["classes"] = facts["n_classes"]
        if "positive" in facts:
            summary["positive class"] = f"{facts['positive']} ({facts['positive_share']:.1%})"
    summary.update({"primary metric": f"{m.name} ({_range_text(m)})",
                    "threshold": brief.threshold if brief.threshold is not None else "none",
                    "rows": facts["rows"], "features": facts["features"],
                    "sensitive features": brief.sensitive or "none",
                    "time column": brief.time_column or "none"})
    summary.update({CONSTRAINTS[k][0]: f"{v:g} {CONSTRAINTS[k][1]}" for k in CONSTRAINTS
                    if (v := brief.constraints.get(k)) is not None})
    messages = ["The brief is consistent with the data."]
    if facts.get("positive_note"):
        messages.append(facts["positive_note"])
    return Report(title=f"Problem framing: {brief.name}", summary=summary, messages=messages,
                  artifacts={"problem statement": str(path)}, data={"facts": facts})
