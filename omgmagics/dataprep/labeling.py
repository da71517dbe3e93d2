"""The labeling-function decorator (core layer, import-light).

Projects import this in their nbdev ``#| export`` cells, so it pulls in nothing heavy::

    from omgmagics.dataprep.labeling import ABSTAIN, labeling_function

    @labeling_function()
    def lf_many_complaints(df):
        return np.where(df["complaints"] >= 3, "churned", ABSTAIN)

A labeling function receives the whole DataFrame and returns one vote per row: a class label or
:data:`ABSTAIN` (``None``; NaN counts as an abstention too). With ``rowwise=True`` it receives one row
(a ``pandas.Series``) at a time instead - simpler to write, slower on large tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ABSTAIN = None
LF_ATTR = "_omg_labeling_function"


def labeling_function(name: str | None = None, rowwise: bool = False) -> Callable:
    """Mark a function as a labeling function for ``omg data label``.

    Parameters
    ----------
    name : str, optional
        The name shown in the coverage table (default: the function's name).
    rowwise : bool
        Call the function once per row with a ``pandas.Series`` instead of once with the DataFrame.
    """
    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, LF_ATTR, {"name": name or func.__name__, "rowwise": bool(rowwise)})
        return func
    return deco
