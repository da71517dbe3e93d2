"""The kit's own scikit-learn transformers (core layer), used by compiled feature pipelines.

They are small, stateless or nearly so, keep pandas column names (``get_feature_names_out``) and are
listed by name in :data:`omgmagics.features.extract.TRUSTED_TYPES`, so a saved pipeline loads with skops
without trusting anything else. :class:`CustomFunction` stores the dotted path of a project function,
not the function, and imports it when used: the pipeline file holds no code.

Importing this module imports scikit-learn: only the feature modules do, lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from .spec import DATE_PARTS  # noqa: F401 - re-exported for users of the transformers


def _frame(X: Any, columns: Any = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=object) if np.ndim(X) == 2 else X, columns=columns)


class _Columns(BaseEstimator, TransformerMixin):
    """Remembers the input column names at fit time."""

    def _remember(self, X: Any) -> pd.DataFrame:
        X = _frame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return X


class AsNumeric(OneToOneFeatureMixin, _Columns):
    """Coerce every column to float; values that are not numbers become NaN (imputed next)."""

    def fit(self, X: Any, y: Any = None) -> AsNumeric:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_)
        return pd.DataFrame({c: X[c].astype("float64") if pd.api.types.is_numeric_dtype(X[c])
                             else pd.to_numeric(X[c], errors="coerce").astype("float64")
                             for c in X.columns}, index=X.index)


class AsCategory(OneToOneFeatureMixin, _Columns):
    """Cast every column to text (so 1 and "1" are one category), keeping missing values as NaN."""

    def fit(self, X: Any, y: Any = None) -> AsCategory:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_)
        return pd.DataFrame({c: self._text(X[c]) for c in X.columns}, index=X.index)

    @staticmethod
    def _text(s: pd.Series) -> pd.Series:
        if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
            return s.where(s.notna(), np.nan)  # already text: only unify the missing marker
        return s.astype(str).where(s.notna(), np.nan).astype(object)


class SignedLog(OneToOneFeatureMixin, _Columns):
    """``sign(x) * log1p(|x|)``: a log that accepts zero and negative values."""

    def fit(self, X: Any, y: Any = None) -> SignedLog:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_).astype("float64")
        return np.sign(X) * np.log1p(X.abs())


class AsFloat(OneToOneFeatureMixin, _Columns):
    """Every output column as float64 (indicators and codes included): one numeric feature table."""

    def fit(self, X: Any, y: Any = None) -> AsFloat:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        return _frame(X, self.feature_names_in_).astype("float64")


class IsMissing(_Columns):
    """``{column}_missing``: 1.0 where the value is missing (NaN or None), else 0.0."""

    def fit(self, X: Any, y: Any = None) -> IsMissing:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_)
        return X.isna().astype("float64").rename(columns=lambda c: f"{c}_missing")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        cols = self.feature_names_in_ if input_features is None else input_features
        return np.asarray([f"{c}_missing" for c in cols], dtype=object)


class DateParts(_Columns):
    """Calendar parts of date/time columns: ``{column}_{part}`` for each part.

    Text dates (``2024-01-01 10:00``, ``31.12.2021``) are parsed with the format found at fit time
    (``formats_``, one per column), so serving reads request values exactly as training did; a value
    that does not parse gives missing parts (imputed next).
    """

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "dayofweek")):
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DateParts:
        from ..dataprep._util import date_format

        X = self._remember(X)
        self.formats_ = {str(c): (None if pd.api.types.is_datetime64_any_dtype(X[c])
                                  else date_format(X[c])) for c in X.columns}
        return self

    def _dates(self, s: pd.Series, column: str) -> pd.Series:
        from ..dataprep._util import parse_dates

        if pd.api.types.is_datetime64_any_dtype(s):
            return s
        fmt = getattr(self, "formats_", {}).get(column)
        if fmt is None:  # fitted before formats were learnt, or no format fits: pandas' own parser
            return pd.to_datetime(s, errors="coerce")
        return parse_dates(s, fmt)

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_)
        out = {}
        for col in X.columns:
            d = self._dates(X[col], str(col))
            for part in self.parts:
                values = d.dt.dayofweek >= 5 if part == "is_weekend" else getattr(d.dt, part)
                out[f"{col}_{part}"] = values.astype("float64").where(d.notna())
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        cols = self.feature_names_in_ if input_features is None else input_features
        return np.asarray([f"{c}_{p}" for c in cols for p in self.parts], dtype=object)


class HashedText(_Columns):
    """Free text as hashed word counts: ``{column}_h{i}`` for ``i < n_features`` (the hashing trick).

    Words are lower-cased runs of letters and digits; each is hashed (MurmurHash3, signed) into one of
    `n_features` buckets. Stateless: nothing is learnt, so serving hashes request text the same way
    and unseen words need no vocabulary. Missing text counts as no words.
    """

    def __init__(self, n_features: int = 16):
        self.n_features = n_features

    def fit(self, X: Any, y: Any = None) -> HashedText:
        self._remember(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        import re

        from sklearn.utils import murmurhash3_32

        X = _frame(X, self.feature_names_in_)
        k = int(self.n_features)
        words = re.compile(r"\w+", re.UNICODE)
        out = {}
        for col in X.columns:
            counts = np.zeros((len(X), k))
            for i, text in enumerate(X[col].to_numpy()):
                if text is None or (isinstance(text, float) and np.isnan(text)):
                    continue
                for word in words.findall(str(text).lower()):
                    h = murmurhash3_32(word, seed=0)
                    counts[i, abs(h) % k] += 1.0 if h >= 0 else -1.0
            for j in range(k):
                out[f"{col}_h{j}"] = counts[:, j]
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        cols = self.feature_names_in_ if input_features is None else input_features
        return np.asarray([f"{c}_h{j}" for c in cols for j in range(int(self.n_features))],
                          dtype=object)


class Arithmetic(_Columns):
    """``a / b`` (``ratio``) or ``a - b`` (``difference``) of two columns; division by zero gives NaN."""

    def __init__(self, op: str = "ratio", output: str = "value"):
        self.op = op
        self.output = output

    def fit(self, X: Any, y: Any = None) -> Arithmetic:
        X = self._remember(X)
        if X.shape[1] != 2:
            raise ValueError(f"{self.op} needs exactly two columns, got {X.shape[1]}")
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = _frame(X, self.feature_names_in_)
        a = pd.to_numeric(X.iloc[:, 0], errors="coerce").astype("float64")
        b = pd.to_numeric(X.iloc[:, 1], errors="coerce").astype("float64")
        value = a / b.where(b != 0) if self.op == "ratio" else a - b
        return pd.DataFrame({self.output: value.replace([np.inf, -np.inf], np.nan)}, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([self.output], dtype=object)


def import_function(path: str) -> Any:
    """The function at dotted `path` (``projectlib.module.function``).

    Only the project module's functions: a pipeline file is input, and a dotted path such as
    ``os.system`` stored in it must not become a call.
    """
    import importlib

    from .spec import PROJECT_PREFIX

    module, _, name = path.rpartition(".")
    if not module.startswith("projectlib") or not (module + ".").startswith(PROJECT_PREFIX):
        raise ImportError(f"'{path}' is not a function of the project module: custom features "
                          "call only projectlib.MODULE.FUNCTION (e.g. projectlib.features.my_function)")
    if not name.isidentifier() or name.startswith("_"):
        raise ImportError(f"'{path}' does not name a public function of the project module")
    func = getattr(importlib.import_module(module), name)
    if not callable(func):
        raise ImportError(f"'{path}' is not a function")
    return func


class CustomFunction(_Columns):
    """A project function ``f(df, **params) -> DataFrame | Series | array`` applied to its columns.

    Only the dotted path is stored; the function is imported on use (the project module must be
    importable where the pipeline runs). A function is stateless: it sees one batch at a time.
    """

    def __init__(self, function: str = "", params: dict | None = None, prefix: str = "custom"):
        self.function = function
        self.params = params
        self.prefix = prefix

    def _call(self, X: pd.DataFrame) -> pd.DataFrame:
        func = import_function(self.function)
        out = func(X.copy(), **(self.params or {}))
        if isinstance(out, pd.Series):
            out = out.to_frame(name=out.name if out.name is not None else self.prefix)
        elif not isinstance(out, pd.DataFrame):
            arr = np.asarray(out)
            arr = arr.reshape(len(X), -1)
            names = [self.prefix] if arr.shape[1] == 1 else [f"{self.prefix}_{i}" for i in range(arr.shape[1])]
            out = pd.DataFrame(arr, columns=names)
        if len(out) != len(X):
            raise ValueError(f"{self.function} returned {len(out)} rows for {len(X)}")
        out.index = X.index
        out.columns = [str(c) for c in out.columns]
        return out.apply(lambda s: pd.to_numeric(s, errors="coerce")).astype("float64")

    def fit(self, X: Any, y: Any = None) -> CustomFunction:
        X = self._remember(X)
        self.output_names_ = np.asarray(list(self._call(X.head(50)).columns), dtype=object)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        out = self._call(_frame(X, self.feature_names_in_))
        if list(out.columns) != list(self.output_names_):
            raise ValueError(f"{self.function} returned columns {list(out.columns)}, expected "
                             f"{list(self.output_names_)} as at fit time")
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.output_names_


class SelectColumns(_Columns):
    """Keep the named columns, in this order (the feature selection, inside the saved pipeline)."""

    def __init__(self, columns: tuple[str, ...] = ()):
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> SelectColumns:
        X = self._remember(X)
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"selected columns not in the features: {missing[:5]}")
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        return _frame(X, self.feature_names_in_)[list(self.columns)]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(list(self.columns), dtype=object)
