"""Compare model runs from MLflow and record the choice (core layer).

Runs are named as in MLflow (``baseline``, ``v1``, ``tuned-xgboost``, ``ensemble`` ...; the newest finished run of each
name). They must share the feature set, so their logged test predictions cover the same rows. The table
puts metrics, parameters, size and latency side by side; the best run on the brief's primary metric is
tested against every other with a paired test (McNemar for classifiers, paired bootstrap otherwise).
The winner gets the registry alias ``champion`` and the decision is written to
``decisions/adr-001-model-choice.md`` (and ``reports/comparison.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError, UsageError

ADR_FILE = "adr-001-model-choice.md"
COMPARISON_FILE = "comparison.json"
MODEL_KINDS = ("baseline", "train", "tune", "ensemble")


def default_runs(tracking: Any) -> list[Any]:
    """The newest run of every baseline, trained, tuned and ensemble run name (see
    :func:`newest_runs`)."""
    return newest_runs(tracking, MODEL_KINDS)


def one_feature_set(runs: list[Any], why: str) -> str:
    """The feature set every run was trained on; a DataError naming each run's otherwise."""
    sets = {r.data.tags.get("omg.feature_set") for r in runs}
    if len(sets) > 1:
        by = "; ".join(f"{r.info.run_name}: {r.data.tags.get('omg.feature_set')}" for r in runs)
        raise DataError(f"The runs use different feature sets ({by}); {why}")
    return sets.pop()


def newest_runs(tracking: Any, kinds: tuple[str, ...]) -> list[Any]:
    """The newest run of every run name of `kinds`, on the feature set of the newest of them (older
    feature sets' runs scored other rows), oldest first."""
    chosen: dict[str, Any] = {}
    for kind in kinds:
        for run in tracking.runs(kind=kind, max_results=200):
            chosen.setdefault(run.info.run_name, run)
    runs = sorted(chosen.values(), key=lambda r: r.info.start_time)
    if runs:
        latest = runs[-1].data.tags.get("omg.feature_set")
        runs = [r for r in runs if r.data.tags.get("omg.feature_set") == latest]
    return runs


def compare_runs(project: Any, experiments: list[str] | None = None, *, alpha: float = 0.05,
                 n_bootstrap: int = 1000, promote: bool = True,
                 adr: str | os.PathLike | None = None) -> Any:
    """Compare runs side by side with paired tests; promote the best to ``champion``; write the ADR.

    Returns
    -------
    Report
        Value: the comparison table.
    """
    import pandas as pd

    from ..atomic import write_json, write_text
    from ..metrics import better, get_metric, score
    from ..results import Report, jsonable
    from .evaluate import scores_from_predictions
    from .record import metric_names
    from .stats import bootstrap_values, significance
    from .tracking import connect

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}.")
    tracking = connect(project)
    if experiments:
        if len(set(experiments)) != len(experiments):
            raise UsageError(f"--experiments names a run twice: {','.join(experiments)}.")
        runs = [tracking.find_run(name) for name in experiments]
    else:
        runs = default_runs(tracking)
    if len(runs) < 2:
        raise UsageError(f"Compare needs at least two model runs; found {len(runs)}. Run "
                         "`omg train baseline` and `omg train train` (or tune) first, or name runs "
                         "with --experiments baseline,v1.")
    for run in runs:
        if run.data.tags.get("omg.kind") not in MODEL_KINDS:
            raise UsageError(f"Run '{run.info.run_name}' is a {run.data.tags.get('omg.kind')} run, "
                             "not a model; compare baseline, train, tune and ensemble runs.")
    feature_set = one_feature_set(runs, "a paired test needs the same test rows. Compare runs of "
                                        "one feature set, or retrain on it.")
    task = project.objective_type
    primary, secondary = metric_names(project, task)
    preds = {r.info.run_id: tracking.predictions(r.info.run_id).set_index("row_id") for r in runs}
    ids = preds[runs[0].info.run_id].index
    for r in runs[1:]:
        if set(preds[r.info.run_id].index) != set(ids):
            raise DataError(f"Run '{r.info.run_name}' predicted other test rows than "
                            f"'{runs[0].info.run_name}'; they cannot be paired.")
    y = preds[runs[0].info.run_id]["y_true"].to_numpy()
    scores = {rid: scores_from_predictions(p.loc[ids].reset_index(), task) for rid, p in preds.items()}
    values = {rid: score(primary, y, s, task) for rid, s in scores.items()}
    best_id = runs[0].info.run_id
    for r in runs[1:]:
        if better(primary, values[r.info.run_id], values[best_id]):
            best_id = r.info.run_id
    best = next(r for r in runs if r.info.run_id == best_id)
    rows, tests = [], []
    # the best run's metric on each resample, drawn once for every pair it is tested in
    best_values = bootstrap_values(primary, y, scores[best_id], task, n_bootstrap, project.seed)
    for r in runs:
        m, p = r.data.metrics, r.data.params
        row = {"run": r.info.run_name, "kind": r.data.tags.get("omg.kind"),
               "model": r.data.tags.get("omg.model_type"), primary: values[r.info.run_id]}
        for s_name in secondary:
            row[s_name] = score(s_name, y, scores[r.info.run_id], task)
        row["size (KB)"] = m.get("model_size_bytes", float("nan")) / 1024
        row["latency p50 (ms)"] = m.get("latency_p50_ms")
        row["fit time (s)"] = m.get("fit_time_s")
        row["params"] = ", ".join(f"{k.removeprefix('params.')}={v}" for k, v in sorted(p.items())
                                  if k.startswith("params.") and k.split(".", 1)[1] in KEY_PARAMS)
        if r.info.run_id != best_id:
            sig = significance(primary, task, y, scores[best_id], scores[r.info.run_id],
                               n_bootstrap, project.seed, alpha, best_values)
            sig.update(run=r.info.run_name)
            tests.append(sig)
            row["p-value (best vs this)"] = sig["p_value"]
            row["best significantly better"] = sig["significant"]
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(primary, ascending=not get_metric(primary).greater_is_better)
    messages = []
    promoted = None
    if promote:
        versions = tracking.versions_of_run(best_id)
        version = max((v.version for v in versions), key=int) if versions else \
            tracking.register(best_id, None, f"{best.data.tags.get('omg.kind')} run {best.info.run_name}")
        tracking.set_alias("champion", str(version))
        challenger = tracking.alias_version("challenger")
        if challenger is not None and str(challenger.version) == str(version):
            tracking.client.delete_registered_model_alias(tracking.model_name, "challenger")
        promoted = str(version)
    not_sig = [t["run"] for t in tests if not t["significant"]]
    if not_sig:
        messages.append(f"{best.info.run_name} is not significantly better (alpha {alpha}) than: "
                        f"{', '.join(not_sig)}.")
    result = {"created": clock.stamp(),
              "feature_set": feature_set, "primary_metric": primary, "alpha": alpha,
              "test_rows": int(len(y)), "best": {"run": best.info.run_name, "run_id": best_id,
                                                 "model": best.data.tags.get("omg.model_type"),
                                                 primary: values[best_id]},
              "champion_version": promoted, "table": table.to_dict(orient="records"),
              "tests": tests}
    result = jsonable(result)
    adr_path = Path(adr) if adr else Path(project.decisions_dir) / ADR_FILE
    write_text(adr_path, render_adr(project, result, tracking.model_name))
    json_path = write_json(Path(project.reports_dir) / COMPARISON_FILE, result)
    with tracking.run("compare", "compare", feature_set=result["feature_set"],
                      tags={"omg.best_run": best_id}) as log:
        log.params({"runs": [r.info.run_name for r in runs], "alpha": alpha})
        log.metrics({f"best_test_{primary}": values[best_id]})
        log.table(table, "comparison.parquet")
        log.text(adr_path.read_text(encoding="utf-8"), f"decisions/{adr_path.name}")
    summary = {"best": best.info.run_name, f"test {primary}": values[best_id],
               "runs compared": len(runs), "feature set": result["feature_set"], "test rows": len(y)}
    if promoted:
        summary["champion"] = f"{tracking.model_name} v{promoted}"
    test_table = pd.DataFrame([{"best": best.info.run_name, "vs": t["run"], "test": t["test"],
                                "p-value": t["p_value"],
                                f"{primary} difference": t["bootstrap"]["difference"],
                                "95% CI": f"[{t['bootstrap']['ci_low']:.4f}, "
                                          f"{t['bootstrap']['ci_high']:.4f}]",
                                "significant": t["significant"]} for t in tests])
    from .plots import LazyFigures, comparison

    figures = LazyFigures({"comparison": lambda: comparison(table, primary, best.info.run_name)})
    return Report(f"Comparison of {len(runs)} runs on {result['feature_set']} (test split)",
                  summary=summary, tables={"runs": table, "significance": test_table},
                  figures=figures, messages=messages,
                  artifacts={"adr": str(adr_path), "comparison": str(json_path)},
                  data=result, value=table)


KEY_PARAMS = {"n_estimators", "learning_rate", "max_depth", "num_leaves", "hidden_sizes", "C",
              "alpha", "min_samples_leaf", "subsample"}


def render_adr(project: Any, result: dict[str, Any], model_name: str) -> str:
    """The text of ``decisions/adr-001-model-choice.md``."""
    primary = result["primary_metric"]
    best = result["best"]
    threshold = project.config.get_path("brief.objective.threshold")
    owner = (project.config.get_path("brief.checkpoints", {}) or {}).get(3, {})
    owner = owner.get("owner") if isinstance(owner, dict) else None
    table = result["table"]
    cols = [c for c in table[0] if c not in ("params",)] if table else []
    lines = [
        "# ADR-001: Model choice", "",
        "- Status: accepted",
        f"- Date: {result['created'][:10]}",
        f"- Deciders: {owner or 'ML lead'} (phase 3 checkpoint)",
        f"- Generated by `omg train compare` from the MLflow runs of project {project.name}", "",
        "## Context", "",
        f"{project.config.get_path('brief.business_problem') or project.name}", "",
        f"The brief's primary metric is **{primary}**"
        + (f" with a threshold of {threshold} on the test split." if threshold is not None else
           " with no threshold: the chosen model must beat the best baseline significantly."),
        f"All candidates were trained on feature set `{result['feature_set']}` and scored on the same "
        f"{result['test_rows']} test rows.", "",
        "## Candidates", "",
        "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
    ]
    for row in table:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in cols) + " |")
    lines += ["", "## Decision", "",
              f"We choose **{best['run']}** ({best['model']}, MLflow run `{best['run_id']}`), the best "
              f"candidate on {primary} ({best[primary]:.4f})."]
    if result.get("champion_version"):
        lines.append(f"It is registered as `{model_name}` version {result['champion_version']} with the "
                     f"alias `champion` (`models:/{model_name}@champion`).")
    lines += ["", "## Evidence", ""]
    for t in result["tests"]:
        b = t["bootstrap"]
        lines.append(f"- vs **{t['run']}**: {t['test']} p = {t['p_value']:.3g}; {primary} difference "
                     f"{b['difference']:+.4f} (95% CI {b['ci_low']:+.4f} to {b['ci_high']:+.4f}): "
                     + ("significantly better." if t["significant"] else
                        f"not significantly better at alpha {result['alpha']}."))
    weaker = [t["run"] for t in result["tests"] if not t["significant"]]
    lines += ["", "## Consequences", "",
              "- Phase 4 optimises, packages and serves `models:/"
              f"{model_name}@champion`; retraining (phase 5) registers challengers against it."]
    if weaker:
        lines.append(f"- The margin over {', '.join(weaker)} is within noise: prefer the simpler or "
                     "faster of them if size or latency constraints bind.")
    lines += ["- Revisit this decision when the data or the brief change (a new ADR supersedes "
              "this one).", ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "/")
