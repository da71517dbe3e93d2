"""``%omgdata`` / ``omg data``: collect, validate, audit, label, augment, split (command layer)."""

from __future__ import annotations

import argparse

from ._registry import Context, arg, command, optional_fraction, optional_path

P1 = "issue #3 (Phase 1: discovery)"
P2 = "issue #4 (Phase 2: data & features)"

DATA = arg("--data", metavar="PATH|DATAFRAME", default=None,
           help="input table: a csv/parquet/jsonl path or a DataFrame variable of the notebook "
                "(default: the project's data)")


def _table(ns: argparse.Namespace, ctx: Context, project, stage: str = "raw"):
    """The input table and its lineage: ``--data``, else the project's current table for `stage`."""
    from ..dataprep.steps import current_table, raw_table, table_info

    if ns.data is not None:
        df = ctx.table(ns.data, project.root)
        return df, table_info(project, df, ns.data)
    return raw_table(project) if stage == "raw" else current_table(project)


@command(
    "data", "collect",
    arg("--sources", metavar="YAML", default=None,
        help="sources file: csv, parquet, json lines, or SQL queries on SQLite/DuckDB files "
             "(default: sources.yaml; without one, the project's data.source is collected)"),
    arg("--source", metavar="FILE", type=optional_path, default=None,
        help="collect this one csv/parquet/jsonl file instead (a retrain's new data; 'none': "
             "ignored), named after the file; it becomes the raw table the next steps read"),
    arg("--output", metavar="DIR", default="data/raw",
        help="folder for the collected parquet files (never overwritten)"),
    arg("--sample-frac", type=optional_fraction, default=None,
        help="keep a seeded share of each source's rows (default, or 'none': data.sample_frac of "
             "omg.yaml)"),
    help="load csv/parquet/json/SQL sources into data/raw/ with lineage (source, rows, sha256)",
    description=(
        "Load every source of the sources file (csv, parquet, json lines, a SQL query on a SQLite or\n"
        "DuckDB file, or the bundled demo data) into data/raw/NAME.parquet, with a lineage record per\n"
        "source in data/raw/lineage.json: location, query, rows, columns, sha256, time. Every source\n"
        "is read and checked before anything is written; an existing raw file is never replaced\n"
        "(the same content again is a no-op). Format: docs/sources_format.md. --source FILE collects\n"
        "one file instead (a retrain hands its data this way); the last single source collected is\n"
        "the raw table validate, label and split read."
    ),
    examples=["collect", "collect --sources sources.yaml --output data/raw",
              "collect --source data/retrain/job-3.parquet --sample-frac 1"],
)
def collect(ns: argparse.Namespace, ctx: Context):
    from ..dataprep.steps import collect_step
    from ..io import project_output

    project = ctx.project()
    return collect_step(project, sources=ns.sources,
                        output=project_output(project.root, ns.output, "--output"),
                        sample_frac=ns.sample_frac, progress=ctx.progress, source=ns.source)


@command(
    "data", "validate",
    arg("--data", metavar="PATH|DATAFRAME", default=None,
        help="input table: a csv/parquet/jsonl path, a folder of parquet files (hive partitions; "
             "parquet is read in batches, so tables larger than memory work) or a DataFrame "
             "variable of the notebook (default: the project's data)"),
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
    arg("--force", action="store_true",
        help="with --infer: replace an existing schema file (it is kept by default)"),
    help="validate data against a schema, or audit it (--audit)",
    examples=["validate --audit --report data_audit.html", "validate --schema schema.yaml --strict",
              "validate --infer --schema schema.yaml",
              "validate --data data/events/ --schema schema.yaml   # a partitioned parquet folder"],
)
def validate(ns: argparse.Namespace, ctx: Context):
    if ns.audit:
        return _validate_audit(ns, ctx)
    return _validate_schema(ns, ctx)


def _validate_audit(ns: argparse.Namespace, ctx: Context):
    """``validate --audit``: checklist on every row + fg-data-profiling report (Phase 1)."""
    from pathlib import Path

    from ..discovery import AUDIT_HTML
    from ..discovery.audit import audit_data, load_input, read_lineage
    from ..discovery.brief import Brief
    from ..errors import UsageError
    from ..io import project_output

    project = ctx.project()
    report = Path(project_output(project.root, ns.report, "--report") or AUDIT_HTML)
    if report.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report '{ns.report}' must name an .html file, e.g. --report data_audit.html.")
    if not report.is_absolute():  # a bare name goes to reports/, a relative path to the project
        report = (project.reports_dir / report) if report.parent == Path(".") else project.root / report
    df, source, what = load_input(project, ns.data, ctx.table, ctx.namespace, batched=True)
    bar = ctx.progress(total=6, desc="data audit")

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        return audit_data(df, Brief.from_config(project.config), html_path=report,
                          json_path=report.with_suffix(".json"), source=source,
                          lineage=read_lineage(project.raw_dir), sample_frac=ns.sample_frac,
                          what=what, step=step, progress=ctx.progress)
    finally:
        bar.close()


def _batched(ns: argparse.Namespace, ctx: Context, project):
    """``--data`` (default: the project's raw table) as a table read in batches when it is a parquet
    file or folder; a notebook DataFrame or another file is loaded as before."""
    from ..dataprep.batched import parquet_source, raw_source

    if ns.data is None:
        return raw_source(project)
    if not (ctx.namespace is not None and ns.data in ctx.namespace):
        found = parquet_source(project, ns.data)
        if found is not None:
            return found
    return _table(ns, ctx, project)


def _validate_schema(ns: argparse.Namespace, ctx: Context):
    """``validate --schema`` / ``--infer``: schema checks (Phase 2)."""
    from ..dataprep.steps import infer_step, validate_step

    project = ctx.project()
    if ns.infer:
        df, info = _table(ns, ctx, project)
        from ..io import project_output

        return infer_step(project, df, info["path"],
                          schema=project_output(project.root, ns.schema, "--schema"), force=ns.force)
    table, info = _batched(ns, ctx, project)
    return validate_step(project, table, info["path"], schema=ns.schema, strict=ns.strict, info=info,
                         progress=ctx.progress)


@command(
    "data", "label",
    DATA,
    arg("--strategy", choices=["weak_supervision", "majority_vote"], default="weak_supervision",
        help="how labeling-function votes become labels: a Dawid-Skene label model that learns each "
             "function's accuracy, or a plain majority vote"),
    arg("--functions", metavar="MODULE", default=None,
        help="module with the labeling functions (exported by nbdev from the notebook), or a .py file "
             "(default: projectlib.labeling if the project has it, else projectlib.features)"),
    arg("--gold", metavar="COL", default=None,
        help="column with known labels, for empirical accuracy (default: the known target values)"),
    arg("--hide-share", type=float, default=None,
        help="hide this share of the known labels first and report the agreement with them "
             "(default: data.unlabeled_share of omg.yaml, else 0)"),
    arg("--min-confidence", type=float, default=0.0,
        help="leave rows whose label-model confidence is below this unlabelled"),
    help="labeling functions voted into labels by a label model; coverage/conflict table",
    description=(
        "Run the project's labeling functions on every row, combine their votes with a label model and\n"
        "fill in the target of unlabelled rows. The report has a per-function coverage / overlap /\n"
        "conflict / accuracy table and both label models' accuracy on known labels. Writes\n"
        "data/processed/labeled.parquet (with row_id and label_source), which `split` then uses."
    ),
    examples=["label --strategy weak_supervision", "label --hide-share 0.2",
              "label --functions labeling.py --strategy majority_vote"],
)
def label(ns: argparse.Namespace, ctx: Context):
    from ..dataprep.steps import label_step

    project = ctx.project()
    df, info = _table(ns, ctx, project)
    return label_step(project, df, info, functions=ns.functions, strategy=ns.strategy, gold=ns.gold,
                      hide_share=ns.hide_share, min_confidence=ns.min_confidence,
                      progress=ctx.progress)


@command(
    "data", "augment",
    arg("--strategy", choices=["smote", "random_over", "random_under"], default="smote",
        help="rebalancing method (SMOTENC is used when categorical columns exist)"),
    arg("--split", default="train", help="which split to augment; only 'train' is allowed"),
    arg("--k-neighbors", type=int, default=None,
        help="SMOTE neighbours (default: 5, or fewer when the smallest class to oversample has 5 "
             "rows or fewer)"),
    arg("--ratio", type=float, default=None,
        help="wanted minority/majority ratio after resampling, two classes only (default: balanced)"),
    help="rebalance the training split only (imbalanced-learn)",
    description=(
        "Rebalance the classes of data/processed/train.parquet with imbalanced-learn and write\n"
        "data/processed/train_augmented.parquet (train.parquet is kept); validation and test are never\n"
        "touched. `omg feature extract` uses the augmented split while it is current, if a quick\n"
        "model scores better with its synthetic rows than without them. Skipped, with\n"
        "the reason, for a regression target, classes balanced already (smallest/largest at least\n"
        "0.8, or --ratio) or classes of one row (left as is)."
    ),
    examples=["augment --strategy smote", "augment --strategy random_over --ratio 0.5"],
)
def augment(ns: argparse.Namespace, ctx: Context):
    from ..dataprep.steps import augment_step

    return augment_step(ctx.project(), split=ns.split, strategy=ns.strategy,
                        k_neighbors=ns.k_neighbors, ratio=ns.ratio)


@command(
    "data", "split",
    DATA,
    arg("--train", type=float, default=0.7, help="training share"),
    arg("--val", type=float, default=0.15, help="validation share"),
    arg("--test", type=float, default=0.15, help="test share"),
    arg("--group", metavar="COL", default=None, help="keep each group in one split"),
    arg("--time", metavar="COL", default=None,
        help="time-ordered split: no future rows in training (default: brief.time_column when the "
             "data has it and neither --group nor --no-stratify is given; 'none': not time-ordered)"),
    arg("--no-stratify", action="store_true",
        help="plain random split instead of keeping class shares equal across splits"),
    help="stratified, group or time-ordered split; deterministic; leakage checks",
    description=(
        "Split the labelled table (or the raw one) into data/processed/{train,val,test}.parquet, each\n"
        "with a stable integer row_id, plus split_manifest.json. Time-ordered on brief.time_column\n"
        "when the brief has one, else stratified (identical rows kept in one split; classes too rare\n"
        "to stratify share a stratum; a regression target on quantile bins); --group COL keeps\n"
        "groups whole; --time COL orders by time (text dates parsed). Weakly labelled rows go to\n"
        "training only; rows without a target value are kept out of every split (counted). Fractions\n"
        "must sum to 1; the same seed gives the same split. The report checks for identical rows\n"
        "across splits and shows the class balance per split."
    ),
    examples=["split --train 0.7 --val 0.15 --test 0.15", "split --group customer_id",
              "split --time signup_date --train 0.8 --val 0.1 --test 0.1", "split --time none"],
)
def split(ns: argparse.Namespace, ctx: Context):
    from ..dataprep.steps import split_step

    project = ctx.project()
    df, info = _table(ns, ctx, project, stage="current")
    return split_step(project, df, info, (ns.train, ns.val, ns.test), group=ns.group, time=ns.time,
                      stratify=not ns.no_stratify)
