"""The demo project's own code (Adult census income): what ``omg ml init`` writes into the notebooks
of a project on the bundled data (core layer, demo data only).

A project on any other table gets code generated from its own columns by
:mod:`omgmagics.projectcode`; the demo's is hand-written for the Adult columns and lives here, the only
place besides the data loader that names them.
"""

from __future__ import annotations

from typing import Any

TARGET = "income"
POSITIVE = ">50K"
SENSITIVE = ["sex", "race"]  # the demo's documented fairness attributes
THRESHOLD = 0.88  # the phase 3 gate's ROC AUC
BUSINESS_PROBLEM = ("Identify adults whose yearly income exceeds 50K (1994 US census extract) so that "
                    "a financial-services offer reaches the people it fits, without treating "
                    "groups of sex or race unfairly.")
# Phase 5 injects an upstream unit change (capital gains arriving in thousands) and a fall of the
# working hours by a fifth; both stay inside the schema's ranges.
SHIFT = "capital_gain*0.001,hours_per_week*0.8"

FEATURES = '''import numpy as np
import pandas as pd

from omgmagics.dataprep.labeling import ABSTAIN, labeling_function
from omgmagics.features.functions import feature_function


@feature_function(columns=["capital_gain", "capital_loss"])
def capital_net(df: pd.DataFrame) -> pd.Series:
    """Net capital income: gains minus losses."""
    return df["capital_gain"] - df["capital_loss"]
'''

FEATURES_PREVIEW = '''df = project.load_source_data(sample_frac)
capital_net(df).describe()'''

LABELING = '''@labeling_function()
def lf_large_capital_gain(df: pd.DataFrame):
    """Capital gains above 5,000 a year mostly come with a high income."""
    return np.where(df["capital_gain"] > 5000, ">50K", ABSTAIN)


@labeling_function()
def lf_young(df: pd.DataFrame):
    """Under-25s rarely earn above 50K."""
    return np.where(df["age"] < 25, "<=50K", ABSTAIN)


@labeling_function()
def lf_part_time(df: pd.DataFrame):
    """Fewer than 30 hours a week rarely pays above 50K."""
    return np.where(df["hours_per_week"] < 30, "<=50K", ABSTAIN)


@labeling_function()
def lf_education(df: pd.DataFrame):
    """Masters and above tend to earn more, school leavers less."""
    return np.where(df["education_num"] >= 14, ">50K",
                    np.where(df["education_num"] <= 9, "<=50K", ABSTAIN))


@labeling_function()
def lf_single_household(df: pd.DataFrame):
    """Without a spouse's income in the household, incomes above 50K are less common."""
    single = df["marital_status"].isin(["Never-married", "Separated", "Divorced", "Widowed"])
    return np.where(single, "<=50K", ABSTAIN)


@labeling_function()
def lf_married_professional(df: pd.DataFrame):
    """Married managers and professionals."""
    senior = df["occupation"].isin(["Exec-managerial", "Prof-specialty"])
    return np.where(df["marital_status"].eq("Married-civ-spouse") & senior, ">50K", ABSTAIN)
'''


def project_code(sizes: dict[str, Any]) -> Any:
    """The demo's :class:`~omgmagics.projectcode.ProjectCode`: its hand-written cells, the sizes of
    the table (`sizes`, from :func:`~omgmagics.projectcode.derive_sizes`), 40 features kept and a
    tenth of the known labels hidden to show weak supervision recovering them."""
    from ..projectcode import HEADER, ProjectCode, handler_code, monitoring_yaml

    head = "#| export\n" + HEADER.replace("from this project's data", "for the demo data") + "\n"
    code = ProjectCode(defaults={**sizes, "k_features": 40, "shift": SHIFT})
    code.cells = {"features": head + FEATURES, "features-preview": FEATURES_PREVIEW,
                  "labeling": head + LABELING,
                  "handler": head + handler_code("binary", POSITIVE),
                  "monitoring": monitoring_yaml(sizes["min_labels"])}
    code.params = {
        "02_data": {"unlabeled_share": 0.1, "k_features": 40},
        "03_model": {"n_trials": sizes["n_trials"], "cv_folds": sizes["cv_folds"]},
        "04_deploy": {"canary_window": sizes["canary_window"]},
        "05_ops": {"sim_days": sizes["sim_days"], "per_day": sizes["per_day"], "shift": SHIFT,
                   "shift_from": sizes["shift_from"]},
    }
    code.notes.append("demo project code: the Adult feature function, labeling functions and shift")
    return code
