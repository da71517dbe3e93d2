"""What every model family does, and what it does unless it says otherwise (core layer).

A :class:`Family` owns everything that differs between kinds of model: how one is fitted and
early-stopped, which library metric stands in for the brief's during training, how it is saved in its
safe format and loaded back, how it predicts, which explainer and importances fit it, how big it is,
and what `optim quantize` / `optim prune` can do with it. The defaults here are those of a fitted
scikit-learn estimator; each family overrides what it does differently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

# Set by the kit itself; a user may not pass them as hyper-parameters.
RESERVED = frozenset({"callbacks", "random_state", "seed", "early_stopping_rounds"})


class Fitted(NamedTuple):
    """What a family's fit returns: the estimator and its learning curve."""

    estimator: Any
    best_iteration: int | None = None
    history: list[float] = []  # noqa: RUF012 - a NamedTuple default, never mutated
    history_metric: str | None = None


def inner_estimator(est: Any) -> Any:
    """The last step of a scikit-learn Pipeline, or the estimator itself."""
    return est.steps[-1][1] if hasattr(est, "steps") else est


@functools.cache
def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    # Looked up once per process: importlib.metadata scans the installed distributions each time.
    import importlib.metadata as md

    out = {}
    for name in ("numpy", *names):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def library_metric(table: dict[str, tuple[str, bool]], metric: str, task: str, n_classes: int, *,
                   losses: tuple[str, str], multi_unsupported: tuple[str, ...]) -> tuple[str, bool]:
    """A boosting library's stand-in for the brief's metric: its own name from `table`, else its
    log loss (`losses`: binary, multi-class) or RMSE; `multi_unsupported` metrics fall back to the
    multi-class log loss."""
    multi = task != "regression" and n_classes > 2
    if multi and metric in multi_unsupported:
        return losses[1], False
    if task == "regression":
        return table.get(metric, ("rmse", False))
    return table.get(metric, (losses[1] if multi else losses[0], False))


class Family:
    """One family of models (XGBoost, LightGBM, scikit-learn, the torch MLP).

    Attributes
    ----------
    name : str
        The value of ``family`` in ``omg_model.json`` and on a :class:`ModelType`.
    libraries : tuple of str
        Distributions whose versions are recorded with a saved model and pinned in a serving bundle.
    step : str
        What one point of the learning curve is ("boosting round", "epoch").
    tune_patience : int or None
        Early-stopping rounds while tuning (None: the family does not early-stop).
    report_every : int or None
        Tuning reports the validation metric every this many steps (None: the tuner's default).
    baseline : bool
        Whether `train baseline` may cross-validate it (a cloneable scikit-learn estimator).
    quantize_with : {"torch", "onnx"} or None
        What `optim quantize` does with it.
    prunable : bool
        Whether `optim prune` applies (Linear layers to prune).
    kind : str
        How messages name it.
    variant : str
        The variant name of an unoptimized model in reports ("native", "fp32").
    """

    name = ""
    libraries: tuple[str, ...] = ()
    step = "boosting round"
    tune_patience: int | None = None
    report_every: int | None = None
    baseline = False
    quantize_with: str | None = "onnx"
    prunable = False
    kind = "model"
    variant = "native"

    def __repr__(self) -> str:
        return f"<model family {self.name}>"

    def versions(self) -> dict[str, str]:
        return dict(library_versions(tuple(self.libraries)))

    def runtime_libraries(self, model: Any) -> tuple[str, ...]:
        """Distributions a serving bundle of `model` needs to predict (pinned in it)."""
        return tuple(self.libraries)

    # --- hyper-parameters ------------------------------------------------------------------------
    def valid_params(self, model_type: Any, task: str) -> list[str]:
        """Every hyper-parameter name a model of this family accepts."""
        return sorted(set(model_type.estimator_class(task)().get_params()) - RESERVED)

    def check_params(self, params: dict[str, Any]) -> None:
        """Raise ConfigError for values the family cannot take (names are checked by the caller)."""

    def eval_metric(self, metric: str, task: str, n_classes: int) -> tuple[str, bool]:
        """The metric reported per step while fitting (early stopping, pruning), and whether it rises.

        By default the brief's own metric, with its own direction.
        """
        from ...metrics import get_metric

        return metric, get_metric(metric).greater_is_better

    # --- fitting and predicting ------------------------------------------------------------------
    def fit(self, model_type: Any, params: dict[str, Any], data: Any, *, metric: str, seed: int,
            early_stopping_rounds: int | None, on_step: Callable[[int, float], None] | None,
            report_every: int, n_jobs: int | None) -> Fitted:
        raise NotImplementedError

    def predict_scores(self, model: Any, X: Any) -> Any:
        """P(positive class) (binary), an (n, k) probability matrix (multi-class) or values."""
        import numpy as np

        est = model.estimator
        if model.task == "regression":
            return np.asarray(est.predict(X), dtype=np.float64)
        proba = np.asarray(est.predict_proba(X), dtype=np.float64)
        return proba[:, 1] if proba.shape[1] == 2 else proba

    # --- the model file --------------------------------------------------------------------------
    def save(self, model: Any, folder: Path) -> str:
        """Write the estimator into `folder` in the family's safe format; return the file name."""
        raise NotImplementedError

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        """Read back what :meth:`save` wrote (never code: a foreign file raises)."""
        raise NotImplementedError

    def read(self, meta: dict[str, Any], file: Path, load_bundle: Callable[[Path], Any]) -> Any:
        """What loading a bundle calls: :meth:`load`, unless the family's file names other model
        bundles, which it reads with `load_bundle` (``OmgModel.load``)."""
        return self.load(meta, file)

    def model_meta(self, model: Any) -> dict[str, Any]:
        """Entries of ``omg_model.json`` the family needs to load the file back."""
        return {}

    # --- explaining and measuring ----------------------------------------------------------------
    def is_tree(self, model: Any) -> bool:
        """Whether SHAP's exact TreeExplainer applies."""
        return False

    def importance(self, model: Any) -> list[float] | None:
        """Built-in feature importances (|coef| for linear models), or None."""
        import numpy as np

        inner = inner_estimator(model.estimator)
        if hasattr(inner, "feature_importances_"):
            return list(map(float, inner.feature_importances_))
        if hasattr(inner, "coef_"):
            return list(map(float, np.abs(np.atleast_2d(inner.coef_)).mean(axis=0)))
        return None

    def parameter_count(self, model: Any) -> int | None:
        """Learned parameters: tree nodes, linear coefficients (None when unknown)."""
        import numpy as np

        inner = inner_estimator(model.estimator)
        if hasattr(inner, "estimators_"):
            flat = np.ravel(np.asarray(inner.estimators_, dtype=object))
            nodes = [getattr(getattr(e, "tree_", None), "node_count", None) for e in flat]
            if all(n is not None for n in nodes):
                return int(sum(nodes))
        if hasattr(inner, "tree_"):
            return int(inner.tree_.node_count)
        if hasattr(inner, "coef_"):
            return int(np.size(inner.coef_) + np.size(getattr(inner, "intercept_", 0)))
        return None

    def to_onnx(self, model: Any, opset: int) -> Any:
        """The model as an ONNX graph with one float32 input named ``input``."""
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        est = model.estimator
        options = {id(est): {"zipmap": False}} if model.task != "regression" else None
        return convert_sklearn(est, initial_types=[("input", FloatTensorType(
            [None, len(model.feature_names)]))], target_opset=opset, options=options)
