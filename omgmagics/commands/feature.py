"""``%omgfeature`` / ``omg feature``: extract, select, store (command layer)."""

from __future__ import annotations

from ._registry import arg, planned

P2 = "issue #4 (Phase 2: data & features)"

planned(
    "feature", "extract",
    arg("--config", metavar="YAML", default="features.yaml",
        help="declarative feature definitions compiled to one fitted scikit-learn pipeline"),
    help="declarative transforms compiled to one fitted scikit-learn pipeline, reused by serving",
    examples=["extract --config features.yaml"],
    issue=P2,
)

planned(
    "feature", "select",
    arg("--method", choices=["mutual_info", "variance", "correlation", "model"], default="mutual_info",
        help="selection method"),
    arg("--k", type=int, default=50, help="how many features to keep"),
    help="rank and keep the best features; scores table and plot",
    examples=["select --method mutual_info --k 50"],
    issue=P2,
)

planned(
    "feature", "store",
    arg("--name", default=None, help="feature set name"),
    arg("--version", default=None, help="version to write, e.g. v1 (existing versions are immutable)"),
    arg("--list", action="store_true", help="list stored feature sets and versions"),
    help="immutable versioned feature sets: parquet + manifest, atomic writes, NAME@vN",
    examples=["store --name project_features --version v1", "store --list"],
    issue=P2,
)
