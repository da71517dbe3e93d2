"""XGBoost: the scikit-learn wrappers, early-stopped on the validation split, saved as UBJ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Family, Fitted, library_metric

# The brief's metric -> XGBoost's own (name, greater is better).
_METRICS = {"roc_auc": ("auc", True), "average_precision": ("aucpr", True), "rmse": ("rmse", False),
            "r2": ("rmse", False), "mae": ("mae", False), "mape": ("mape", False)}


class XGBoostFamily(Family):
    name = "xgboost"
    libraries = ("xgboost",)
    tune_patience = 50
    kind = "tree ensemble"

    def eval_metric(self, metric: str, task: str, n_classes: int) -> tuple[str, bool]:
        return library_metric(_METRICS, metric, task, n_classes, losses=("logloss", "mlogloss"),
                              multi_unsupported=("average_precision",))

    def fit(self, model_type: Any, params: dict[str, Any], data: Any, *, metric: str, seed: int,
            early_stopping_rounds: int | None, on_step: Callable[[int, float], None] | None,
            report_every: int, n_jobs: int | None) -> Fitted:
        import xgboost as xgb

        has_val = data.has("val")
        name, _higher = self.eval_metric(metric, data.task, data.n_classes)
        params = dict(params)
        params.setdefault("eval_metric", name)
        watched = params["eval_metric"] if isinstance(params["eval_metric"], str) else name
        history: list[float] = []

        class _Report(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):  # noqa: ANN001
                values = next(iter(evals_log.values()), {}).get(watched) if evals_log else None
                if values:
                    history.append(float(values[-1]))
                    if on_step is not None and (epoch + 1) % report_every == 0:
                        on_step(epoch + 1, float(values[-1]))
                return False

        threads = {"n_jobs": n_jobs} if n_jobs and "n_jobs" not in params else {}
        est = model_type.estimator_class(data.task)(
            **params, random_state=seed, callbacks=[_Report()],
            early_stopping_rounds=early_stopping_rounds if has_val else None, **threads)
        est.fit(data.X["train"], data.y["train"],
                eval_set=[(data.X["val"], data.y["val"])] if has_val else None, verbose=False)
        est.set_params(callbacks=None)
        best = getattr(est, "best_iteration", None) if has_val and early_stopping_rounds else None
        return Fitted(est, best, history, watched)

    def save(self, model: Any, folder: Path) -> str:
        model.estimator.set_params(callbacks=None)
        model.estimator.save_model(folder / "model.ubj")
        return "model.ubj"

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        import xgboost as xgb

        est = xgb.XGBRegressor() if meta["task"] == "regression" else xgb.XGBClassifier()
        est.load_model(file)
        return est

    def is_tree(self, model: Any) -> bool:
        return True

    def parameter_count(self, model: Any) -> int | None:
        dump = model.estimator.get_booster().get_dump()
        return int(sum(len(tree.strip().splitlines()) for tree in dump))

    def to_onnx(self, model: Any, opset: int) -> Any:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_xgboost(model.estimator, initial_types=[("input", FloatTensorType(
            [None, len(model.feature_names)]))], target_opset=opset)
