"""Model quality: the kit's lifecycle (phases 1-3 as a user runs them) against FLAML AutoML with the
same model-search time budget, and against plain early-stopped xgboost, fold by fold.

Protocol (the AutoML Benchmark's, on the bundled Adult census data): stratified 10-fold cross-
validation, ROC AUC on each held-out fold. For each fold, on the same nine training folds:

- kit: ``omg ml init`` on the nine folds as a new user's table, then ``omg ml run --phases 1-3
  -p time_budget_s=BUDGET`` (its own internal 70/15/15 split, feature inference, the rows check,
  baselines, xgboost and LightGBM tuned within the budget, the ensemble, compare), and the champion
  packaged by ``omg deploy package``; the held-out fold goes through that bundle as serving would
  (handler, feature pipeline, model). The brief's sensitive features are set to the demo's (sex,
  race), which the kit judges for fairness and leaves out of the model's inputs; ``omg ml init``
  recognises age, marital_status and native_country by name as well, and would leave them out too.
- peer: ``flaml.AutoML`` with ``time_budget=BUDGET`` on both cores, every column (pandas
  categoricals), the same metric;
- floor: ``xgboost.XGBClassifier`` with native categoricals, early-stopped (50 rounds, learning rate
  0.05) on a stratified 15 % of the training folds, every column.

The same on two tables of the data-set matrix (``tests/data/matrix``): ``many_classes`` (5 classes,
macro-F1) and ``house_prices`` (regression, RMSE), with ``BENCH_QUALITY_EXTRA_FOLDS`` folds.

Also reported: wall time to the result (the kit's is phases 1-3 and packaging, its evaluation, SHAP,
fairness and model card included; FLAML's is its fit) and the p99 latency of one-row predictions of
each fitted model (the kit's through its bundle).

Target: the kit's mean AUC on Adult >= FLAML's mean and >= 0.930, and never below plain xgboost on a
fold. Environment: BENCH_QUALITY_FOLDS (10), BENCH_QUALITY_BUDGET_S (60), BENCH_QUALITY_EXTRA_FOLDS
(3), BENCH_QUALITY_ROWS (0: all of Adult; a smaller seeded sample for a quick look).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FOLDS = int(os.environ.get("BENCH_QUALITY_FOLDS", "10"))
BUDGET_S = float(os.environ.get("BENCH_QUALITY_BUDGET_S", "60"))
EXTRA_FOLDS = int(os.environ.get("BENCH_QUALITY_EXTRA_FOLDS", "3"))
ROWS = int(os.environ.get("BENCH_QUALITY_ROWS", "0"))  # a seeded sample of Adult (0: every row)
SEED = 0
EXTRA = {"many_classes": ("segment", "classification", "macro_f1"),
         "house_prices": ("price", "regression", "rmse")}


def _omg(args: list[str], cwd: Path) -> dict:
    bin_dir = Path(sys.executable).parent
    out = subprocess.run([str(bin_dir / "omg"), *args, "--format", "json", "-q"], cwd=cwd,
                         capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    if out.returncode != 0:
        raise SystemExit(f"omg {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}


def _p99_ms(predict, rows: list) -> float:
    import numpy as np

    predict(rows[0])
    times = []
    for row in rows:
        t0 = time.perf_counter()
        predict(row)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 99))


def _score(kind: str, y, pred, positive=None) -> float:
    import numpy as np
    from sklearn.metrics import f1_score, mean_squared_error, roc_auc_score

    if kind == "roc_auc":
        return float(roc_auc_score((np.asarray(y) == positive).astype(int), pred))
    if kind == "macro_f1":
        return float(f1_score(np.asarray(y).astype(str), np.asarray(pred).astype(str),
                              average="macro"))
    return float(np.sqrt(mean_squared_error(y, pred)))


def run_kit(train, test, target: str, kind: str, workdir: Path, positive=None,
            sensitive: list[str] | None = None) -> dict:
    """The kit on `train` as a new table; `test` scored through the packaged champion.

    `sensitive`: the brief's sensitive features as a user who reviews the brief sets them (they are
    judged for fairness and left out of the inputs); None keeps what `omg ml init` recognised.
    """
    import re

    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.signature import jsonable_record

    data = workdir / "table.csv"
    train.to_csv(data, index=False)
    t0 = time.perf_counter()
    _omg(["ml", "init", "bench", "--data", str(data), "--target", target, "--dir", str(workdir)],
         workdir)
    project = workdir / "bench"
    if sensitive is not None:
        brief = project / "omg.yaml"
        brief.write_text(re.sub(r"(?m)^(\s*sensitive_features:).*$",
                                lambda m: f"{m.group(1)} {json.dumps(sensitive)}", brief.read_text()))
    _omg(["ml", "run", "--phases", "1-3", "--no-gates", "-p", f"time_budget_s={BUDGET_S:g}"],
         project)
    package = _omg(["deploy", "package", "--model", "champion"], project)
    wall = time.perf_counter() - t0
    bundle = ServingBundle.load(project / package["artifacts"]["bundle"], isolate=True)
    records = [jsonable_record(r) for r in test[bundle.input_names].to_dict("records")]
    scores = bundle.scores(records)
    model = bundle.model
    if kind == "roc_auc":
        pred = scores
        positive = model.positive_label if model.positive_label is not None else positive
    elif kind == "macro_f1":
        import numpy as np

        pred = np.asarray(model.classes, dtype=object)[np.asarray(scores).argmax(axis=1)]
    else:
        pred = scores
    comparison = json.loads((project / "reports" / "comparison.json").read_text())
    return {"score": _score(kind, test[target], pred, positive), "wall_s": wall,
            "champion": comparison["best"]["run"],
            "p99_ms": _p99_ms(lambda r: bundle.scores([r]), records[:200])}


def _frame(df, target: str):
    import pandas as pd

    X = df.drop(columns=[target]).copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype("category")
    return X


def _aligned(X, like):
    import pandas as pd

    X = X.copy()
    for c in X.columns:
        if isinstance(like[c].dtype, pd.CategoricalDtype):
            X[c] = pd.Categorical(X[c], categories=like[c].cat.categories)
    return X


def run_flaml(train, test, target: str, task: str, kind: str, positive=None) -> dict:
    from flaml import AutoML

    X, y = _frame(train, target), train[target]
    Xt = _aligned(_frame(test, target), X)
    automl = AutoML()
    metric = {"roc_auc": "roc_auc", "macro_f1": "macro_f1", "rmse": "rmse"}[kind]
    t0 = time.perf_counter()
    automl.fit(X, y, task=task, metric=metric, time_budget=BUDGET_S, n_jobs=2, seed=SEED,
               verbose=0)
    wall = time.perf_counter() - t0
    if kind == "roc_auc":
        classes = list(automl.classes_)
        pred = automl.predict_proba(Xt)[:, classes.index(positive)]
    else:
        pred = automl.predict(Xt)
    fn = automl.predict_proba if kind == "roc_auc" else automl.predict
    rows = [Xt.iloc[i:i + 1] for i in range(min(200, len(Xt)))]
    return {"score": _score(kind, test[target], pred, positive), "wall_s": wall,
            "best": automl.best_estimator, "p99_ms": _p99_ms(fn, rows)}


def run_xgboost(train, test, target: str, task: str, kind: str, positive=None) -> dict:
    import numpy as np
    import xgboost as xgb
    from sklearn.model_selection import train_test_split

    X, y = _frame(train, target), train[target]
    Xt = _aligned(_frame(test, target), X)
    if task == "regression":
        Xa, Xv, ya, yv = train_test_split(X, y, test_size=0.15, random_state=SEED)
        model = xgb.XGBRegressor(n_estimators=2000, learning_rate=0.05, enable_categorical=True,
                                 tree_method="hist", early_stopping_rounds=50, n_jobs=2)
        t0 = time.perf_counter()
        model.fit(Xa, ya, eval_set=[(Xv, yv)], verbose=False)
        pred = model.predict(Xt)
    else:
        classes = sorted(y.astype(str).unique())
        codes = y.astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
        Xa, Xv, ya, yv = train_test_split(X, codes, test_size=0.15, random_state=SEED,
                                          stratify=codes)
        model = xgb.XGBClassifier(n_estimators=2000, learning_rate=0.05, enable_categorical=True,
                                  tree_method="hist", early_stopping_rounds=50, n_jobs=2)
        t0 = time.perf_counter()
        model.fit(Xa, ya, eval_set=[(Xv, yv)], verbose=False)
        proba = model.predict_proba(Xt)
        pred = proba[:, classes.index(str(positive))] if kind == "roc_auc" else \
            np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return {"score": _score(kind, test[target].astype(str) if kind == "macro_f1" else test[target],
                            pred, str(positive) if kind == "roc_auc" else None),
            "wall_s": time.perf_counter() - t0}


def _folds(df, target: str, task: str, n: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    split = KFold(n, shuffle=True, random_state=SEED) if task == "regression" else \
        StratifiedKFold(n, shuffle=True, random_state=SEED)
    return list(split.split(df, df[target].astype(str) if task != "regression" else None))


def table_runs(name: str, df, target: str, task: str, kind: str, folds: int,
               positive=None, sensitive: list[str] | None = None) -> list[dict]:
    rows = []
    for k, (tr, te) in enumerate(_folds(df, target, task, folds)):
        train, test = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
        with tempfile.TemporaryDirectory(prefix=f"bench-quality-{name}-") as tmp:
            kit = run_kit(train, test, target, kind, Path(tmp), positive, sensitive)
        flaml = run_flaml(train, test, target, task, kind, positive)
        plain = run_xgboost(train, test, target, task, kind, positive)
        rows.append({"fold": k, "kit": kit, "flaml": flaml, "xgboost": plain})
        print(f"  {name} fold {k}: kit {kit['score']:.4f} ({kit['champion']}, "
              f"{kit['wall_s']:.0f} s), FLAML {flaml['score']:.4f} ({flaml['best']}), "
              f"xgboost {plain['score']:.4f}", flush=True)
    return rows


def _summary(rows: list[dict], lower_is_better: bool = False) -> dict:
    import numpy as np

    def mean(who, key="score"):
        return float(np.mean([r[who][key] for r in rows]))

    def worse(a, b):
        return a > b if lower_is_better else a < b

    return {"kit_mean": mean("kit"), "flaml_mean": mean("flaml"), "xgboost_mean": mean("xgboost"),
            "kit_folds_below_xgboost": sum(worse(r["kit"]["score"], r["xgboost"]["score"])
                                           for r in rows),
            "kit_folds_below_flaml": sum(worse(r["kit"]["score"], r["flaml"]["score"])
                                         for r in rows),
            "kit_wall_s": mean("kit", "wall_s"), "flaml_wall_s": mean("flaml", "wall_s"),
            "xgboost_wall_s": mean("xgboost", "wall_s"),
            "kit_p99_ms": mean("kit", "p99_ms"), "flaml_p99_ms": mean("flaml", "p99_ms"),
            "kit_champions": sorted({r["kit"]["champion"] for r in rows}),
            "folds": len(rows)}


def run() -> dict:
    import pandas as pd

    from omgmagics.datasets import load_demo

    adult = load_demo()
    if ROWS:
        adult = adult.sample(n=min(ROWS, len(adult)), random_state=SEED).reset_index(drop=True)
    print(f"Adult: {len(adult)} rows, {FOLDS} folds, budget {BUDGET_S:g} s", flush=True)
    # The demo's brief: sex and race judged for fairness (and left out of the inputs). Recognised
    # by name, `omg ml init` also lists age, marital_status and native_country, the strongest
    # predictors of income among them; a user reviewing the brief keeps those as inputs.
    rows = table_runs("adult", adult, "income", "classification", "roc_auc", FOLDS, ">50K",
                      sensitive=["sex", "race"])
    main = _summary(rows)
    extra = {}
    for name, (target, task, kind) in EXTRA.items():
        df = pd.read_csv(ROOT / "tests" / "data" / "matrix" / f"{name}.csv")
        extra[name] = {"metric": kind, **_summary(
            table_runs(name, df, target, task, kind, EXTRA_FOLDS), lower_is_better=kind == "rmse")}
    figures = {"adult_roc_auc_kit": main["kit_mean"], "folds": main["folds"],
               "budget_s": BUDGET_S, "kit_folds_below_xgboost": main["kit_folds_below_xgboost"],
               "kit_folds_below_flaml": main["kit_folds_below_flaml"],
               "xgboost_roc_auc": main["xgboost_mean"], "kit_wall_s": main["kit_wall_s"],
               "kit_p99_ms_batch1": main["kit_p99_ms"]}
    for name, s in extra.items():
        figures[f"{name}_{s['metric']}_kit"] = s["kit_mean"]
        figures[f"{name}_{s['metric']}_xgboost"] = s["xgboost_mean"]
    peer = {"name": f"FLAML {_version('flaml')} AutoML, time_budget {BUDGET_S:g} s, 2 cores",
            "adult_roc_auc": main["flaml_mean"], "wall_s": main["flaml_wall_s"],
            "p99_ms_batch1": main["flaml_p99_ms"]}
    for name, s in extra.items():
        peer[f"{name}_{s['metric']}"] = s["flaml_mean"]
    met = bool(main["kit_mean"] >= main["flaml_mean"] and main["kit_mean"] >= 0.930 and
               main["kit_folds_below_xgboost"] == 0)
    return {"title": f"model quality: Adult {main['folds']}-fold ROC AUC, the kit's phases 1-3 vs "
                     f"FLAML at the same {BUDGET_S:g} s search budget",
            "figures": figures, "peer": peer, "ratio": main["kit_mean"] / main["flaml_mean"],
            "target": "kit mean AUC >= FLAML's and >= 0.930; never below plain xgboost on a fold",
            "met": met, "details": {"adult": {"summary": main, "folds": rows}, **extra},
            "notes": "The kit's wall time is phases 1-3 and packaging (audit, profiling, "
                     "evaluation, SHAP, fairness and the model card included); its model search "
                     f"has the same {BUDGET_S:g} s budget as FLAML. The kit leaves the brief's "
                     "sensitive features (sex, race) out of its inputs; FLAML and xgboost use every "
                     "column."}


def _version(name: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "?"
