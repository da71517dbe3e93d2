"""LightGBM: fitted through its scikit-learn wrapper, kept as a Booster cut at the best iteration,
saved as LightGBM's text format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Family, Fitted, library_metric

_METRICS = {"roc_auc": ("auc", True), "average_precision": ("average_precision", True),
            "rmse": ("rmse", False), "r2": ("rmse", False), "mae": ("l1", False),
            "mape": ("mape", False)}


class LightGBMFamily(Family):
    name = "lightgbm"
    libraries = ("lightgbm",)
    tune_patience = 50
    kind = "tree ensemble"

    def eval_metric(self, metric: str, task: str, n_classes: int) -> tuple[str, bool]:
        return library_metric(_METRICS, metric, task, n_classes,
                              losses=("binary_logloss", "multi_logloss"),
                              multi_unsupported=("roc_auc", "average_precision"))

    def fit(self, model_type: Any, params: dict[str, Any], data: Any, *, metric: str, seed: int,
            early_stopping_rounds: int | None, on_step: Callable[[int, float], None] | None,
            report_every: int, n_jobs: int | None) -> Fitted:
        import lightgbm as lgb

        has_val = data.has("val")
        name, _higher = self.eval_metric(metric, data.task, data.n_classes)
        history: list[float] = []

        def _report(env) -> None:  # noqa: ANN001
            for _data, m, value, _hib in env.evaluation_result_list:
                if m == name:
                    history.append(float(value))
                    if on_step is not None and (env.iteration + 1) % report_every == 0:
                        on_step(env.iteration + 1, float(value))

        callbacks = [_report]
        if has_val and early_stopping_rounds:
            callbacks.append(lgb.early_stopping(early_stopping_rounds, first_metric_only=True,
                                                verbose=False))
        threads = {"n_jobs": n_jobs} if n_jobs and "n_jobs" not in params else {}
        est = model_type.estimator_class(data.task)(**params, random_state=seed, metric=name,
                                                     **threads)
        est.fit(data.X["train"], data.y["train"],
                eval_X=(data.X["val"],) if has_val else None,
                eval_y=(data.y["val"],) if has_val else None, callbacks=callbacks)
        best = int(est.best_iteration_) if has_val and early_stopping_rounds and \
            est.best_iteration_ else None
        booster = lgb.Booster(model_str=est.booster_.model_to_string(num_iteration=best or None))
        return Fitted(booster, best, history, name)

    def predict_scores(self, model: Any, X: Any) -> Any:
        import numpy as np

        # A Booster gives P(positive) for binary, (n, k) probabilities for multi-class, values else.
        return np.asarray(model.estimator.predict(X), dtype=np.float64)

    def save(self, model: Any, folder: Path) -> str:
        model.estimator.save_model(str(folder / "model.txt"))
        return "model.txt"

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        import lightgbm as lgb

        return lgb.Booster(model_file=str(file))

    def is_tree(self, model: Any) -> bool:
        return True

    def importance(self, model: Any) -> list[float] | None:
        return list(map(float, model.estimator.feature_importance("gain")))

    def parameter_count(self, model: Any) -> int | None:
        trees = model.estimator.dump_model().get("tree_info", [])
        return int(sum(2 * t.get("num_leaves", 1) - 1 for t in trees))

    def to_onnx(self, model: Any, opset: int) -> Any:
        from onnxmltools.convert import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_lightgbm(model.estimator, initial_types=[("input", FloatTensorType(
            [None, len(model.feature_names)]))], target_opset=opset, zipmap=False)
