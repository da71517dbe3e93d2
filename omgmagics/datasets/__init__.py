"""Bundled data sets (core layer).

The Adult census income data (UCI, DOI 10.24432/C5XW20, Becker & Kohavi 1996), shipped byte-identical and
gzip-compressed in ``datasets/data/`` with its description and attribution; licence CC BY 4.0.
Nothing is downloaded at run time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]
ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_ATTRIBUTION = ("Adult (census income), UCI Machine Learning Repository, DOI 10.24432/C5XW20, "
                     "Becker, B. and Kohavi, R. (1996); licence CC BY 4.0.")


def _read(name: str, skiprows: int) -> Any:
    import pandas as pd

    with resources.files(__package__).joinpath("data", name).open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip", header=None, names=ADULT_COLUMNS, skiprows=skiprows,
                         skipinitialspace=True, na_values=["?"])
    return df


def load_demo(split: str = "all") -> Any:
    """Load the Adult census income data as a DataFrame.

    Parameters
    ----------
    split : {"all", "train", "test"}
        The original 32,561 training rows, the 16,281 test rows, or all 48,842 (train first).

    Returns
    -------
    pandas.DataFrame
        Columns in snake_case (``education-num`` becomes ``education_num``), unknowns (``?``) as
        missing values, the target ``income`` as ``<=50K`` / ``>50K`` (the test file's trailing dot
        removed), numeric columns as int64 and the others as str objects.
    """
    import pandas as pd

    if split not in ("all", "train", "test"):
        from ..errors import UsageError
        raise UsageError(f"Unknown split '{split}'. Use one of: all, train, test.")
    parts = []
    if split in ("all", "train"):
        parts.append(_read("adult.data.gz", 0))
    if split in ("all", "test"):
        parts.append(_read("adult.test.gz", 1))  # first line is "|1x3 Cross validator"
    df = pd.concat(parts, ignore_index=True)
    df = df.dropna(how="all")
    df["income"] = df["income"].str.rstrip(".")
    for col in ADULT_NUMERIC:
        df[col] = df[col].astype("int64")
    return df.reset_index(drop=True)
