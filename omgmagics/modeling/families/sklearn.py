"""scikit-learn estimators: fitted as they are, saved with skops against an exact allow-list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...atomic import write_bytes
from ...errors import ConfigError, DataError
from .base import Family, Fitted, inner_estimator

# The types a kit-made scikit-learn model needs beyond skops' own default-trusted set (scikit-learn
# estimators, numpy arrays and dtypes), measured over every sklearn model type of MODEL_TYPES for
# each task. An exact list, never a prefix: `builtins.eval` starts with `builtins.` too.
SKLEARN_TRUSTED_TYPES = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    *(f"sklearn.metrics._dist_metrics.{d}Distance64"
      for d in ("Euclidean", "Manhattan", "Chebyshev", "Minkowski")),
})
_TREE_NAMES = ("Tree", "Forest", "GradientBoosting", "ExtraTrees")


def not_loaded(file: Path, kind: Any, exc: BaseException) -> str:
    """The message for a model file its safe-format loader refuses (pickled code, damage)."""
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    return (f"Model file {file} is not a valid {kind} model file, so it was not loaded "
            f"({type(exc).__name__}: {detail}). The kit loads only safe formats (no pickled code); "
            "re-save or re-train the model.")


class SklearnFamily(Family):
    name = "sklearn"
    libraries = ("scikit-learn", "skops")
    baseline = True
    kind = "scikit-learn model"

    def fit(self, model_type: Any, params: dict[str, Any], data: Any, *, metric: str, seed: int,
            early_stopping_rounds: int | None, on_step: Callable[[int, float], None] | None,
            report_every: int, n_jobs: int | None) -> Fitted:
        cls = model_type.estimator_class(data.task)
        kwargs = dict(params)
        if "random_state" in cls().get_params():
            kwargs["random_state"] = seed
        est = cls(**kwargs)
        try:
            est.fit(data.X["train"], data.y["train"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"Model '{model_type.name}' could not be fitted with {params}: "
                              f"{str(exc).splitlines()[0]}") from None
        if data.task != "regression" and not hasattr(est, "predict_proba"):
            raise ConfigError(f"Model '{model_type.name}' has no predict_proba; the kit needs class "
                              "probabilities. Choose another estimator or set probability=True.")
        return Fitted(est)

    def save(self, model: Any, folder: Path) -> str:
        import skops.io as sio

        data = sio.dumps(model.estimator)
        outside = sorted(set(sio.get_untrusted_types(data=data)) - SKLEARN_TRUSTED_TYPES)
        if outside:
            raise DataError(f"The {type(model.estimator).__name__} model holds types the kit does "
                            f"not load back: {', '.join(outside)}. Use one of the kit's model types.")
        write_bytes(folder / "model.skops", data)
        return "model.skops"

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=file)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            raise DataError(not_loaded(file, "skops", exc)) from None
        unsafe = sorted(set(untrusted) - SKLEARN_TRUSTED_TYPES)
        if unsafe:
            raise DataError(f"{file} holds types outside the kit's scikit-learn allow-list, so it was "
                            f"not loaded: {', '.join(unsafe)}. Inspect it with "
                            "skops.io.get_untrusted_types and load it yourself if you trust it.")
        try:
            return sio.load(file, trusted=list(untrusted))
        except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a crafted file
            raise DataError(not_loaded(file, "skops", exc)) from None

    def is_tree(self, model: Any) -> bool:
        est = model.estimator
        return not hasattr(est, "steps") and any(k in type(inner_estimator(est)).__name__
                                                 for k in _TREE_NAMES)
