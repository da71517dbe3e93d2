"""Training rows that augmentation or weak labels add are kept only when a quick model scores better
with them (issue 19): the variants judged, the choice, and the extraction that follows it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from omgmagics.features.quick import compare_rows
from omgmagics.features.steps import _row_variants


def _table(n: int, seed: int, flip: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "y": np.where(y ^ flip, "yes", "no")})


def test_the_variants_run_from_the_plainest_rows_to_every_row():
    train = pd.DataFrame({"label_source": ["gold", "weak", "gold", "weak", "synthetic", "synthetic"]})
    variants = _row_variants(train, {"augmented": True, "original_rows": 4, "strategy": "smote"})
    assert [(label, kinds) for label, kinds, _m in variants] == [
        ("human labels only", ("gold",)), ("with weak labels", ("gold", "weak")),
        ("with weak labels and synthetic rows (smote)", ("gold", "weak", "synthetic"))]
    assert [m.tolist() for _l, _k, m in variants] == [
        [True, False, True, False, False, False], [True] * 4 + [False] * 2, [True] * 6]
    # synthetic rows are known by position when no labelling wrote label_source
    plain = _row_variants(pd.DataFrame({"x": range(5)}), {"augmented": True, "original_rows": 3,
                                                          "strategy": "random_over"})
    assert [label for label, _k, _m in plain] == ["original rows",
                                                   "with synthetic rows (random_over)"]
    # nothing added rows: nothing to judge
    assert _row_variants(pd.DataFrame({"label_source": ["gold"] * 3}), {"augmented": False}) == []


def test_rows_that_hurt_are_left_out_and_rows_that_help_are_kept():
    val = _table(400, 1)
    # 400 real rows, then 400 "synthetic" ones whose labels contradict them
    hurt = pd.concat([_table(400, 2), _table(400, 3, flip=True)], ignore_index=True)
    mask = np.arange(len(hurt)) < 400
    judged = compare_rows(hurt, val, "y", ["a", "b", "c"], [("original rows", mask),
                                                            ("with synthetic rows", ~mask | mask)],
                          task="classification", metric="roc_auc", greater_is_better=True,
                          positive_label="yes")
    assert judged["chosen"] == 0
    first, second = judged["variants"]
    assert (first["rows"], second["rows"]) == (400, 800) and first["score"] > second["score"]
    # 30 human labels, then 600 correct weak labels: the weak labels help
    helps = pd.concat([_table(30, 4), _table(600, 5)], ignore_index=True)
    gold = np.arange(len(helps)) < 30
    judged = compare_rows(helps, val, "y", ["a", "b", "c"],
                          [("human labels only", gold), ("with weak labels", np.ones(630, bool))],
                          task="classification", metric="roc_auc", greater_is_better=True,
                          positive_label="yes")
    assert judged["chosen"] == 1 and judged["variants"][1]["score"] > judged["variants"][0]["score"]
    assert judged["model"] == "xgboost, up to 300 trees early-stopped on the validation split"
