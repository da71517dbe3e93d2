"""Data preparation (core layer): collect, schema validation, data dictionary, weak-supervision
labeling, augmentation and splitting.

Modules take DataFrames, paths and plain values and return :class:`omgmagics.results.Report` objects;
:mod:`omgmagics.dataprep.steps` wires them to a project's folders for the commands. Heavy libraries
(pandera, imbalanced-learn, scikit-learn, duckdb) are imported inside the functions that use them.
"""

from .labeling import ABSTAIN, labeling_function

__all__ = ["ABSTAIN", "labeling_function"]
