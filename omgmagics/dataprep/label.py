"""Weak supervision (core layer): labeling functions vote, a label model turns votes into labels.

Labeling functions live in the project's module (nbdev exports them from a notebook ``#| export`` cell;
see :mod:`omgmagics.dataprep.labeling`). Two label models:

* **majority vote**: the most frequent vote per row (ties go to the more frequent class overall);
* **Dawid-Skene** (``weak_supervision``): an EM model that learns each function's class-conditional
  accuracy (a confusion matrix, abstaining included) and returns a posterior per row (Dawid & Skene
  1979). Functions that are often right get more weight than noisy ones. Known labels, when there
  are some, stay fixed during EM (semi-supervised); without any, it runs unsupervised.

Known labels serve as gold: each function's empirical accuracy and the label models' accuracy are
measured on them. ``hide_share`` hides a seeded share of the known labels to show how well the label
model recovers them (the demo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..results import Report
from .labeling import LF_ATTR

ABSTAIN_CODE = -1
STRATEGIES = ("weak_supervision", "majority_vote")


@dataclass
class LabelingFunction:
    name: str
    func: Any
    rowwise: bool = False


def find_labeling_functions(module: Any) -> list[LabelingFunction]:
    """The labeling functions of `module`: decorated ones, or else the functions named ``lf_*``."""
    import inspect

    funcs = [f for _, f in inspect.getmembers(module, inspect.isfunction)]
    marked = [f for f in funcs if hasattr(f, LF_ATTR)]
    if marked:
        return [LabelingFunction(getattr(f, LF_ATTR)["name"], f, getattr(f, LF_ATTR)["rowwise"])
                for f in marked]
    own = [f for f in funcs if f.__name__.startswith("lf_") and f.__module__ == module.__name__]
    if not own:
        raise DataError(f"No labeling functions in {getattr(module, '__name__', module)}. Decorate them "
                        "with @labeling_function() (from omgmagics.dataprep.labeling) or name them lf_*, "
                        "in a `#| export` cell, and re-export.")
    return [LabelingFunction(f.__name__, f) for f in own]


def load_labeling_functions(ref: str, root: str | Path | None = None) -> list[LabelingFunction]:
    """Import the module `ref` (dotted name or ``.py`` path) of the project and find its functions."""
    from ._util import import_project_module

    return find_labeling_functions(import_project_module(ref, root, "labeling functions module"))


def apply_functions(df: Any, lfs: list[LabelingFunction], progress: Any = None) -> Any:
    """Every function's votes on every row: a DataFrame (rows x functions), ``None`` for abstain."""
    import numpy as np
    import pandas as pd

    out = {}
    iterable = progress(lfs, total=len(lfs), desc="labeling functions") if progress else lfs
    for lf in iterable:
        try:
            votes = df.apply(lf.func, axis=1) if lf.rowwise else lf.func(df)
        except Exception as exc:  # noqa: BLE001 - user code
            raise DataError(f"Labeling function {lf.name} failed: {type(exc).__name__}: {exc}. Fix it in "
                            "the notebook's export cell and re-export.") from None
        votes = np.asarray(votes, dtype=object).reshape(-1) if not np.isscalar(votes) else None
        if votes is None or len(votes) != len(df):
            raise DataError(f"Labeling function {lf.name} must return one vote per row ({len(df)}), got "
                            f"{'a scalar' if votes is None else len(votes)}. Return an array or Series, "
                            "or decorate it with @labeling_function(rowwise=True).")
        series = pd.Series(votes, index=df.index, dtype=object)
        out[lf.name] = series.where(series.notna(), None)
    return pd.DataFrame(out, index=df.index)


def vote_matrix(votes: Any, classes: list[Any]) -> Any:
    """Votes as integer class codes (n x m), ``-1`` for abstain.

    Raises
    ------
    DataError
        When a function votes for a value that is not one of `classes`.
    """
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    L = np.full(votes.shape, ABSTAIN_CODE, dtype=np.int64)
    for j, name in enumerate(votes.columns):
        col = votes[name]
        mask = col.notna().to_numpy()
        bad = set(col[mask].unique()) - set(classes)
        if bad:
            raise DataError(f"Labeling function {name} voted {sorted(map(str, bad))[:3]}, which is not a "
                            f"class of the target ({', '.join(map(str, classes))}). Return one of these "
                            "or None to abstain.")
        L[mask, j] = col[mask].map(index).to_numpy()
    return L


def _onehot(L: Any, k: int, abstain: bool = False) -> Any:
    """One-hot votes (m x n x k), with an extra last outcome for abstain when `abstain`."""
    import numpy as np

    n, m = L.shape
    V = np.zeros((m, n, k + int(abstain)))
    for j in range(m):
        codes = np.where(L[:, j] >= 0, L[:, j], k) if abstain else L[:, j]
        rows = np.flatnonzero(codes >= 0)
        V[j, rows, codes[rows]] = 1.0
    return V


def majority_vote(L: Any, k: int) -> tuple[Any, Any]:
    """Majority vote: (class code or -1 where nobody voted, share of votes for the winner)."""
    import numpy as np

    counts = _onehot(L, k).sum(0)
    total = counts.sum(1)
    prior = counts.sum(0) + 1e-9
    # ties go to the class voted most often overall
    pred = np.argmax(counts + 1e-6 * prior / prior.sum(), axis=1)
    conf = np.divide(counts.max(1), total, out=np.zeros(len(total)), where=total > 0)
    pred[total == 0] = ABSTAIN_CODE
    return pred, conf


def dawid_skene(L: Any, k: int, gold: Any | None = None, prior: Any | None = None,
                max_iter: int = 200, tol: float = 1e-5, smoothing: float = 1.0) -> dict[str, Any]:
    """Fit a Dawid-Skene model to the votes `L` by EM.

    Each function has a confusion matrix P(outcome | true class) in which abstaining is an outcome too,
    so a function that only ever votes one class still informs the model by when it votes. Rows with
    a `gold` label (code >= 0) keep it during EM (semi-supervised: the accuracies are learned from
    labelled and unlabelled rows together). Without any gold label the class `prior` is held fixed
    (default: the majority vote's class balance), as a free prior lets EM drift to a degenerate
    solution when functions only vote one class.

    Returns
    -------
    dict
        ``posterior`` (n x k, from the votes alone), ``prior`` (k), ``confusion`` (m x k x k+1, last outcome abstain),
        ``accuracy`` (m: P(right | voted)), ``iterations``, ``converged``, ``semi_supervised``.
    """
    import numpy as np

    n, m = L.shape
    V = _onehot(L, k, abstain=True)
    T = V[:, :, :k].sum(0) + 1e-3  # start from the (soft) majority vote
    T /= T.sum(1, keepdims=True)
    anchored = gold is not None and bool((np.asarray(gold) >= 0).any())
    if anchored:
        gold = np.asarray(gold)
        clamp = gold >= 0
        T[clamp] = np.eye(k)[gold[clamp]]
    fixed = None if anchored else np.asarray(prior if prior is not None else T.mean(0), dtype=float)
    iterations, conf, est_prior, delta = 0, None, None, float("inf")
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        est_prior = fixed if fixed is not None else (T.sum(0) + smoothing) / (n + k * smoothing)
        conf = np.stack([T.T @ V[j] for j in range(m)]) + smoothing
        conf /= conf.sum(2, keepdims=True)
        logp = np.log(est_prior) + sum(V[j] @ np.log(conf[j]).T for j in range(m))
        logp -= logp.max(1, keepdims=True)
        new = np.exp(logp)
        new /= new.sum(1, keepdims=True)
        if anchored:
            new[clamp] = T[clamp]
        delta = float(np.abs(new - T).max())
        T = new
        if delta < tol:
            break
    converged = delta < tol
    # the model's own posterior from the votes alone (known labels not clamped), for every row
    logp = np.log(est_prior) + sum(V[j] @ np.log(conf[j]).T for j in range(m))
    T = np.exp(logp - logp.max(1, keepdims=True))
    T /= T.sum(1, keepdims=True)
    right = np.einsum("c,jcc->j", est_prior, conf[:, :, :k])
    voted = np.einsum("c,jc->j", est_prior, 1 - conf[:, :, k])
    return {"posterior": T, "prior": est_prior, "confusion": conf, "accuracy": right / voted,
            "iterations": iterations, "converged": converged, "semi_supervised": anchored}


def function_table(L: Any, names: list[str], classes: list[Any], gold: Any | None,
                   learned: Any | None = None) -> Any:
    """Per function: coverage, overlap, conflict, empirical accuracy on gold rows, learned accuracy."""
    import numpy as np
    import pandas as pd

    voted = L >= 0
    n_voted = voted.sum(1)
    rows = []
    for j, name in enumerate(names):
        mine = voted[:, j]
        others = L.copy()
        others[:, j] = ABSTAIN_CODE
        other_voted = n_voted - mine > 0
        disagree = mine[:, None] & (others >= 0) & (others != L[:, [j]])
        row = {"function": name,
               "votes for": ", ".join(str(classes[c]) for c in sorted(set(L[mine, j]))),
               "coverage": float(mine.mean()),
               "overlap": float((mine & other_voted).mean()),
               "conflict": float(disagree.any(1).mean())}
        if gold is not None:
            g = mine & (gold >= 0)
            row["gold votes"] = int(g.sum())
            row["accuracy (gold)"] = float((L[g, j] == gold[g]).mean()) if g.any() else np.nan
        if learned is not None:
            row["learned accuracy"] = float(learned[j])
        rows.append(row)
    return pd.DataFrame(rows)


def skipped_report(target: str, reason: str, rows: int, unlabeled: int,
                   functions: int = 0) -> Report:
    """The report of a labeling step that had nothing to do: `reason` says why (a clause)."""
    summary = {"status": "skipped", "reason": reason, "rows": rows, "unlabelled": unlabeled,
               "functions": functions}
    report = Report(f"Labeling skipped: {reason}", summary=summary)
    if unlabeled:
        report.messages.append(
            f"{unlabeled} rows have no '{target}' value and stay unlabeled: `omg data split` keeps them "
            "out of train, val and test. To label them, write labeling functions (decorated with "
            "@labeling_function() or named lf_*) in a `#| export` cell of the data notebook and "
            "re-export.")
    report.messages.append("No labelled table was written: `omg data split` reads the table as collected.")
    return report


def label_frame(df: Any, lfs: list[LabelingFunction], target: str, strategy: str = "weak_supervision",
                gold: str | None = None, hide_share: float = 0.0, seed: int = 42,
                min_confidence: float = 0.0, progress: Any = None) -> Report:
    """Label the rows of `df` whose `target` is missing with the labeling functions' votes.

    Parameters
    ----------
    strategy : {"weak_supervision", "majority_vote"}
        The label model whose labels are used (both are always evaluated).
    gold : str, optional
        A column of known labels to measure accuracy against (default: the known target values).
    hide_share : float
        Hide this share of the known labels first (seeded) and report the agreement with them.
    min_confidence : float
        Leave a row unlabelled when the label model's confidence is below this.

    Returns
    -------
    Report
        ``value`` is the labelled DataFrame: the known rows plus the rows the model labelled, with a
        ``row_id`` (position in `df`) and ``label_source`` (``gold`` or ``weak``) column.
    """
    import numpy as np
    import pandas as pd

    if strategy not in STRATEGIES:
        from ..errors import UsageError, unknown_choice

        raise UsageError(unknown_choice("labeling strategy", strategy, STRATEGIES))
    if not 0 <= hide_share < 1:
        raise DataError(f"--hide-share must be in [0, 1), got {hide_share}.")
    if not 0 <= min_confidence <= 1:
        raise DataError(f"--min-confidence must be in [0, 1] (a label-model probability), got "
                        f"{min_confidence}.")
    df = df.reset_index(drop=True).copy()
    if "row_id" not in df.columns:
        df.insert(0, "row_id", np.arange(len(df), dtype="int64"))
    if target not in df.columns:
        df[target] = None
    y = df[target].astype(object).where(df[target].notna(), None)
    known = y.notna().to_numpy()
    hidden = np.zeros(len(df), dtype=bool)
    if hide_share > 0:
        pick = np.random.default_rng(seed).choice(np.flatnonzero(known),
                                                   size=round(hide_share * known.sum()), replace=False)
        hidden[pick] = True
    truth = y.copy()
    y[hidden] = None
    if gold is not None and gold not in df.columns:
        from ..errors import did_you_mean

        raise DataError(f"The gold column '{gold}' is not in the data.{did_you_mean(gold, df.columns)}")
    gold_values = (df[gold].astype(object).where(df[gold].notna(), None) if gold else y)
    votes = apply_functions(df.drop(columns=[target, "row_id"]), lfs, progress)
    if not votes.notna().to_numpy().any():
        return skipped_report(target, f"none of the {len(lfs)} labeling functions voted on any row",
                              len(df), int((~known).sum()), len(lfs))
    classes = sorted(set(truth.dropna()) | set(gold_values.dropna()), key=str)
    if not classes:
        classes = sorted(set(v for c in votes for v in votes[c].dropna()), key=str)
    if not classes:
        raise DataError("No known labels and no votes: every labeling function abstained on every row.")
    k = len(classes)
    code = {c: i for i, c in enumerate(classes)}
    L = vote_matrix(votes, classes)
    gold_codes = gold_values.map(lambda v: code.get(v, ABSTAIN_CODE) if v is not None else ABSTAIN_CODE
                                 ).to_numpy().astype(int)
    mv_pred, mv_conf = majority_vote(L, k)
    ds = dawid_skene(L, k, gold=gold_codes)
    nobody = ~(L >= 0).any(1)  # no positive evidence: no label, whatever the prior says
    ds_pred = np.where(nobody, ABSTAIN_CODE, ds["posterior"].argmax(1))
    ds_conf = np.where(nobody, 0.0, ds["posterior"].max(1))
    lf_table = function_table(L, [lf.name for lf in lfs], classes,
                              gold_codes if (gold_codes >= 0).any() else None, ds["accuracy"])
    truth_codes = truth.map(lambda v: code.get(v, ABSTAIN_CODE) if v is not None else ABSTAIN_CODE
                            ).to_numpy().astype(int)
    model_rows = []
    for name, pred in (("majority vote", mv_pred), ("Dawid-Skene", ds_pred)):
        row = {"label model": name, "coverage": float((pred >= 0).mean())}
        for what, mask, ref in (("gold", gold_codes >= 0, gold_codes), ("hidden truth", hidden, truth_codes)):
            m = mask & (pred >= 0)
            row[f"accuracy ({what})"] = float((pred[m] == ref[m]).mean()) if m.any() else np.nan
            if what == "hidden truth" and hidden.any():
                row["coverage (hidden)"] = float((pred[hidden] >= 0).mean())
        model_rows.append(row)
    models = pd.DataFrame(model_rows).dropna(axis=1, how="all")
    if not hidden.any():
        models = models.drop(columns=[c for c in models.columns if "hidden" in c])
    pred, conf = (ds_pred, ds_conf) if strategy == "weak_supervision" else (mv_pred, mv_conf)
    unlabeled = y.isna().to_numpy()
    fill = unlabeled & (pred >= 0) & (conf >= min_confidence)
    out = df.copy()
    out[target] = y
    out.loc[fill, target] = [classes[c] for c in pred[fill]]
    out["label_source"] = np.where(unlabeled, "weak", "gold")
    out["label_confidence"] = np.where(unlabeled, conf, 1.0)
    keep = ~unlabeled | fill
    out = out[keep].reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(df[target].dropna()) and len(df[target].dropna()):
        out[target] = pd.to_numeric(out[target])
    chosen = "Dawid-Skene" if strategy == "weak_supervision" else "majority vote"
    summary: dict[str, Any] = {"rows": len(df), "known labels": int(known.sum() - hidden.sum()),
                               "unlabelled": int(unlabeled.sum()),
                               "labelled by the model": int(fill.sum()),
                               "left unlabelled (dropped)": int((unlabeled & ~fill).sum()),
                               "label model": chosen, "functions": len(lfs)}
    if hidden.any():
        m = hidden & fill
        agreement = float((pred[m] == truth_codes[m]).mean()) if m.any() else float("nan")
        summary["hidden labels"] = int(hidden.sum())
        summary["agreement with hidden truth"] = agreement
    report = Report(f"Weak supervision on '{target}': {int(fill.sum())} rows labelled by {chosen}",
                    summary=summary, tables={"labeling functions": lf_table, "label models": models},
                    value=out)
    from .plots import labeling_functions

    report.add_figure("labeling functions", labeling_functions(lf_table))
    how = ("semi-supervised: known labels kept fixed" if ds["semi_supervised"]
           else "unsupervised: class prior fixed at the majority vote's balance")
    ran = (f"converged in {ds['iterations']}" if ds["converged"] else
           f"stopped without converging after {ds['iterations']}")
    report.messages.append(f"Dawid-Skene ({how}) {ran} EM iterations; class prior "
                           + ", ".join(f"{c}: {p:.2f}" for c, p in zip(classes, ds["prior"], strict=True))
                           + ".")
    if ds["semi_supervised"]:
        report.messages.append("Its accuracy on known labels is in-sample (they anchored the fit)"
                               + ("; the agreement with hidden labels is the out-of-sample figure."
                                  if hidden.any() else "; hide some (--hide-share) for an "
                                  "out-of-sample figure."))
    if hidden.any():
        report.messages.append(f"{int(hidden.sum())} known labels were hidden (seed {seed}) and "
                               f"relabelled; {summary['agreement with hidden truth']:.1%} agree with the "
                               "hidden truth.")
    if (unlabeled & ~fill).any():
        report.messages.append(f"{int((unlabeled & ~fill).sum())} unlabelled rows got no label (no "
                               "function voted, or the confidence was below --min-confidence) and were "
                               "left out of the labelled table.")
    report.data = {"classes": [str(c) for c in classes], "hidden": int(hidden.sum())}
    return report
