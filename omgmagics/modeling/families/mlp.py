"""The torch MLP: trained with Adam, early-stopped on the brief's metric, saved as a state dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Family, Fitted


class MLPFamily(Family):
    name = "mlp"
    libraries = ("torch",)
    step = "epoch"
    tune_patience = 10
    report_every = 1
    quantize_with = "torch"
    prunable = True
    kind = "torch MLP"
    variant = "fp32"

    def valid_params(self, model_type: Any, task: str) -> list[str]:
        from ..mlp import DEFAULTS

        return sorted(DEFAULTS)

    def check_params(self, params: dict[str, Any]) -> None:
        from ..mlp import check_params

        check_params(params)

    def fit(self, model_type: Any, params: dict[str, Any], data: Any, *, metric: str, seed: int,
            early_stopping_rounds: int | None, on_step: Callable[[int, float], None] | None,
            report_every: int, n_jobs: int | None) -> Fitted:
        from ...metrics import get_metric, score
        from ..mlp import MLPModel

        has_val = data.has("val")

        def _on_epoch(epoch: int, value: float) -> bool:
            if on_step is not None:
                on_step(epoch + 1, value)
            return False

        est = MLPModel(data.task, max(data.n_classes, 2), **params)
        est.fit(data.X["train"], data.y["train"], data.X["val"] if has_val else None,
                data.y["val"] if has_val else None, seed=seed,
                patience=early_stopping_rounds if has_val else None, on_epoch=_on_epoch,
                val_score=lambda y, s: score(metric, y, s, data.task),
                greater_is_better=get_metric(metric).greater_is_better)
        best = est.best_epoch + 1 if est.best_epoch is not None else None
        return Fitted(est, best, list(est.history), metric)

    def predict_scores(self, model: Any, X: Any) -> Any:
        return model.estimator.predict_scores(X)

    def save(self, model: Any, folder: Path) -> str:
        model.estimator.save(folder / "model.pt")
        return "model.pt"

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        from ..mlp import MLPModel

        return MLPModel.load(file, meta["architecture"], meta.get("params") or {})

    def model_meta(self, model: Any) -> dict[str, Any]:
        return {"architecture": model.estimator.architecture}

    def parameter_count(self, model: Any) -> int | None:
        """Weights and biases, of the trained network or of its optimized (quantized) copy."""
        est = getattr(model, "estimator", None)
        net = est.network if est is not None else model.runtime
        total = 0
        for key, value in net.state_dict().items():
            if key.endswith(("weight", "bias")) and hasattr(value, "numel"):
                total += int(value.numel())
            elif key.endswith("_packed_params._packed_params"):  # a dynamically quantized Linear
                total += sum(int(t.numel()) for t in value if hasattr(t, "numel"))
        return total

    def to_onnx(self, model: Any, opset: int) -> Any:
        raise NotImplementedError("the torch MLP is quantized with torch, not exported to ONNX")
