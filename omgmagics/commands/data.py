"""``%omgdata`` / ``omg data``: collect, validate, audit, label, augment, split (command layer)."""

from __future__ import annotations

import argparse

from ..errors import NotImplementedYetError
from ._registry import Context, arg, command, planned

P1 = "issue #3 (Phase 1: discovery)"
P2 = "issue #4 (Phase 2: data & features)"

DATA = arg("--data", metavar="PATH|DATAFRAME", default=None,
           help="input table: a csv/parquet/jsonl path or a DataFrame variable of the notebook "
                "(default: the project's data)")

planned(
    "data", "collect",
    arg("--sources", metavar="YAML", default="sources.yaml",
        help="sources file: csv, parquet, json lines, or SQL queries on SQLite/DuckDB files"),
    arg("--output", metavar="DIR", default="data/raw",
        help="folder for the collected parquet files (never overwritten)"),
    help="load csv/parquet/json/SQL sources into data/raw/ with lineage (source, rows, sha256)",
    examples=["collect --sources sources.yaml --output data/raw"],
    issue=P2,
)

@command(
    "data", "validate",
    DATA,
    arg("--schema", metavar="YAML", default=None,
        help="check dtypes, ranges, allowed values, nulls, uniqueness against this schema"),
    arg("--infer", action="store_true", help="write a starting schema inferred from the data"),
    arg("--strict", action="store_true", help="fail (exit 1) on any schema violation"),
    arg("--audit", action="store_true",
        help="data audit: profile report plus checklist (sources, quality, volume, labels, privacy)"),
    arg("--report", metavar="HTML", default=None,
        help="where to write the audit's HTML profile (default: reports/data_audit.html)"),
    arg("--sample-frac", type=float, default=None,
        help="profile a seeded sample of this share of rows (stated in the report)"),
    help="validate data against a schema, or audit it (--audit)",
    examples=["validate --audit --report data_audit.html", "validate --schema schema.yaml --strict",
              "validate --infer --schema schema.yaml"],
)
def validate(ns: argparse.Namespace, ctx: Context):
    if ns.audit:
        return _validate_audit(ns, ctx)
    return _validate_schema(ns, ctx)


def _validate_audit(ns: argparse.Namespace, ctx: Context):
    """``validate --audit``: profile report + checklist (Phase 1)."""
    raise NotImplementedYetError(f"`{ctx.name('data', 'validate')} --audit` is not implemented yet: "
                                 f"it lands with {P1}.")


def _validate_schema(ns: argparse.Namespace, ctx: Context):
    """``validate --schema`` / ``--infer``: schema checks (Phase 2)."""
    raise NotImplementedYetError(f"`{ctx.name('data', 'validate')} --schema` is not implemented yet: "
                                 f"it lands with {P2}.")


planned(
    "data", "label",
    DATA,
    arg("--strategy", choices=["weak_supervision", "majority_vote"], default="weak_supervision",
        help="how labeling-function votes become labels"),
    arg("--functions", metavar="MODULE", default="projectlib.labeling",
        help="module with the labeling functions (exported by nbdev from the notebook)"),
    arg("--gold", metavar="COL", default=None, help="column with known labels, for empirical accuracy"),
    help="labeling functions voted into labels by a label model; coverage/conflict table",
    examples=["label --strategy weak_supervision"],
    issue=P2,
)

planned(
    "data", "augment",
    arg("--strategy", choices=["smote", "random_over", "random_under"], default="smote",
        help="rebalancing method (SMOTENC is used when categorical columns exist)"),
    arg("--split", default="train", help="which split to augment; only 'train' is allowed"),
    arg("--k-neighbors", type=int, default=5, help="SMOTE neighbours"),
    help="rebalance the training split only (imbalanced-learn)",
    examples=["augment --strategy smote"],
    issue=P2,
)

planned(
    "data", "split",
    DATA,
    arg("--train", type=float, default=0.7, help="training share"),
    arg("--val", type=float, default=0.15, help="validation share"),
    arg("--test", type=float, default=0.15, help="test share"),
    arg("--group", metavar="COL", default=None, help="keep each group in one split"),
    arg("--time", metavar="COL", default=None, help="time-ordered split: no future rows in training"),
    help="stratified, group or time-ordered split; deterministic; leakage checks",
    examples=["split --train 0.7 --val 0.15 --test 0.15"],
    issue=P2,
)
