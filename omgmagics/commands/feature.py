"""``%omgfeature`` / ``omg feature``: extract, select, store (command layer)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ._registry import Context, arg, command


def k_value(text: str) -> int | str | None:
    """An option type: a whole number, auto, or none (auto)."""
    word = text.strip().lower()
    if word in ("auto", "none", "null", ""):
        return "auto"
    try:
        return int(word)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number or auto") from None


@command(
    "feature", "extract",
    arg("--config", metavar="YAML", default=None,
        help="declarative feature definitions compiled to one fitted scikit-learn pipeline "
             "(default: features.config of omg.yaml, else features.yaml)"),
    arg("--infer", action="store_true",
        help="write a starting features config from the training split instead of extracting"),
    arg("--force", action="store_true",
        help="with --infer: replace an existing features config (it is kept by default)"),
    arg("--no-augmented", action="store_true",
        help="fit on data/processed/train.parquet even when an augmented training split is current"),
    arg("--no-check", action="store_true",
        help="keep every training row (synthetic, weak labels) without asking a quick model "
             "whether they help"),
    help="declarative transforms compiled to one fitted scikit-learn pipeline, reused by serving",
    description=(
        "Compile features.yaml (scaling, log, bins, one-hot / ordinal / target encoding, date parts,\n"
        "ratios and differences, missing-value flags, custom functions of projectlib) into one\n"
        "scikit-learn Pipeline, fit it on the training split only and transform every split. The\n"
        "fitted pipeline (skops, no pickle) and the features are staged in data/processed/features/\n"
        "for `select` and `store`. Format: docs/features_format.md.\n"
        "Rows that augmentation (synthetic) or weak labels added are kept only when a quick model\n"
        "(early-stopped xgboost) scores the brief's metric better with them on the validation\n"
        "split; otherwise they are left out, recorded as tried, not used (--no-check keeps them)."
    ),
    examples=["extract --infer", "extract --config features.yaml", "extract --no-check"],
)
def extract(ns: argparse.Namespace, ctx: Context):
    from ..features.steps import extract_step, infer_features_step

    project = ctx.project()
    if ns.force and not ns.infer:
        raise UsageError("--force only applies with --infer (it replaces the features config).")
    if ns.infer:
        return infer_features_step(project, ns.config, force=ns.force,
                                   use_augmented=not ns.no_augmented)
    if ns.no_check and ns.infer:
        raise UsageError("--no-check applies to extraction, not to --infer.")
    return extract_step(project, ns.config, use_augmented=not ns.no_augmented,
                        check=not ns.no_check)


@command(
    "feature", "select",
    arg("--method", choices=["mutual_info", "variance", "correlation", "model"], default="mutual_info",
        help="selection method"),
    arg("--k", type=k_value, default="auto",
        help="how many features to keep: a number (at least the number of features keeps them "
             "all), or auto (the default): one feature per 10 training rows, at least 10, at most "
             "all of them"),
    arg("--threshold", type=float, default=0.95,
        help="correlation method: skip a feature correlated above this with one already kept"),
    arg("--max-rows", type=int, default=20000,
        help="score on a seeded sample of at most this many training rows"),
    arg("--no-check", action="store_true",
        help="keep the selection without asking a quick model whether it helps"),
    help="rank and keep the best features, if a quick model scores better with them",
    description=(
        "Score the extracted training features (mutual information for classification or regression,\n"
        "variance, a correlation filter, or random-forest importance), keep the best k and record the\n"
        "selection; `store` keeps those columns and appends the selection to the saved pipeline.\n"
        "A selection that leaves features out is used only when a quick model (early-stopped\n"
        "xgboost) scores the brief's metric better with it than with every feature on the\n"
        "validation split; otherwise it is recorded as tried, not used (--no-check keeps it)."
    ),
    examples=["select --method mutual_info --k 50", "select --k auto",
              "select --method correlation --threshold 0.9"],
)
def select(ns: argparse.Namespace, ctx: Context):
    from ..features.steps import select_step

    if ns.max_rows < 10:
        raise UsageError(f"--max-rows must be at least 10, got {ns.max_rows}.")
    return select_step(ctx.project(), method=ns.method, k=ns.k, threshold=ns.threshold,
                       max_rows=ns.max_rows, check=not ns.no_check)


@command(
    "feature", "store",
    arg("--name", default=None, help="feature set name (default: features.name of omg.yaml)"),
    arg("--version", default=None,
        help="version to write, e.g. v1 (default: the next free one; existing versions are immutable)"),
    arg("--list", action="store_true", help="list stored feature sets and versions"),
    arg("--duckdb", action="store_true",
        help="also (re)build features/catalog.duckdb with one SQL view per version and NAME_latest"),
    help="immutable versioned feature sets: parquet + manifest, atomic writes, NAME@vN",
    description=(
        "Write the extracted (and selected) features as a new immutable version features/NAME/vN/:\n"
        "one parquet file per split, the fitted pipeline and manifest.json (schema, row counts,\n"
        "sha256, feature definitions, raw input columns, selection, lineage, creation time). The\n"
        "version appears whole or not at all. Load it with NAME@vN or NAME@latest."
    ),
    examples=["store --name project_features --version v1", "store --list", "store --duckdb"],
    writes=lambda ns: not ns.list or ns.duckdb,
)
def store(ns: argparse.Namespace, ctx: Context):
    from ..features.steps import list_step, store_step

    if ns.list:
        if ns.name or ns.version:
            raise UsageError("--list takes no --name or --version: it lists every stored version.")
        return list_step(ctx.project(), duckdb=ns.duckdb)
    return store_step(ctx.project(), name=ns.name, version=ns.version, duckdb=ns.duckdb)
