"""A torch multi-layer perceptron for tabular features (core layer).

The network standardises its inputs with buffers fitted on the training split, so its state dict
alone (plus :attr:`MLPModel.architecture`) rebuilds it: phase 4 optimises and serves exactly these
weights. Saved with ``torch.save(state_dict)`` and loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "hidden_sizes": [64, 32],
    "activation": "relu",
    "dropout": 0.1,
    "learning_rate": 1e-3,
    "weight_decay": 1e-5,
    "batch_size": 256,
    "epochs": 50,
}
ACTIVATIONS = ("relu", "gelu", "tanh")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Merge `params` over :data:`DEFAULTS` and check their types and ranges."""
    p = {**DEFAULTS, **params}
    sizes = p["hidden_sizes"]
    if isinstance(sizes, int):
        sizes = [sizes]
    if not isinstance(sizes, (list, tuple)) or not sizes or not all(
            isinstance(s, int) and s > 0 for s in sizes):
        raise ConfigError(f"mlp hidden_sizes must be a list of positive integers such as [64, 32], "
                          f"got {p['hidden_sizes']!r}.")
    p["hidden_sizes"] = [int(s) for s in sizes]
    if p["activation"] not in ACTIVATIONS:
        raise ConfigError(f"mlp activation must be one of {', '.join(ACTIVATIONS)}, got "
                          f"{p['activation']!r}.")
    if not 0 <= float(p["dropout"]) < 1:
        raise ConfigError(f"mlp dropout must be in [0, 1), got {p['dropout']!r}.")
    for key in ("learning_rate", "batch_size", "epochs"):
        if not float(p[key]) > 0:
            raise ConfigError(f"mlp {key} must be positive, got {p[key]!r}.")
    if float(p["weight_decay"]) < 0:
        raise ConfigError(f"mlp weight_decay must be >= 0, got {p['weight_decay']!r}.")
    p["batch_size"], p["epochs"] = int(p["batch_size"]), int(p["epochs"])
    return p


@functools.cache
def _net_class() -> type:
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """Standardise, then Linear-activation-dropout blocks, then the output layer."""

        def __init__(self, n_features: int, hidden_sizes: list[int], n_outputs: int,
                     activation: str = "relu", dropout: float = 0.0):
            super().__init__()
            self.register_buffer("x_mean", torch.zeros(n_features))
            self.register_buffer("x_std", torch.ones(n_features))
            self.register_buffer("y_mean", torch.zeros(1))
            self.register_buffer("y_std", torch.ones(1))
            act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[activation]
            layers: list[nn.Module] = []
            width = n_features
            for size in hidden_sizes:
                layers += [nn.Linear(width, size), act(), nn.Dropout(dropout)]
                width = size
            layers.append(nn.Linear(width, n_outputs))
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - self.x_mean) / self.x_std)

    return TabularMLP


def build_network(architecture: dict[str, Any]) -> Any:
    """A fresh (untrained) network for `architecture` (see :attr:`MLPModel.architecture`)."""
    return _net_class()(architecture["n_features"], list(architecture["hidden_sizes"]),
                        architecture["n_outputs"], architecture.get("activation", "relu"),
                        float(architecture.get("dropout", 0.0)))


class MLPModel:
    """A fitted or unfitted MLP with a scikit-learn-like surface.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_classes : int
        2 for binary (one logit), k > 2 for multi-class, ignored for regression.
    **params
        See :data:`DEFAULTS`.
    """

    def __init__(self, task: str, n_classes: int = 2, **params: Any):
        self.task = task
        self.n_classes = n_classes
        self.params = check_params(params)
        self.network: Any = None
        self.best_epoch: int | None = None
        self.history: list[float] = []

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task != "regression" and self.n_classes > 2 else 1

    @property
    def architecture(self) -> dict[str, Any]:
        return {"n_features": int(self.network.x_mean.shape[0]), "n_outputs": self.n_outputs,
                "hidden_sizes": self.params["hidden_sizes"], "activation": self.params["activation"],
                "dropout": float(self.params["dropout"]), "task": self.task,
                "n_classes": self.n_classes}

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, *, seed: int = 0,
            patience: int | None = None, on_epoch: Callable[[int, float], bool] | None = None,
            val_score: Callable[[Any, Any], float] | None = None,
            greater_is_better: bool = True) -> MLPModel:
        """Train with Adam; keep the weights of the best validation epoch.

        `on_epoch(epoch, value)` sees each epoch's validation score (`val_score(y_val, scores)`, or
        the validation loss); it may raise (e.g. ``optuna.TrialPruned``) or return True to stop.
        """
        import copy

        import numpy as np
        import torch

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32 if self.n_outputs == 1 else np.int64))
        self.network = build_network({"n_features": Xt.shape[1], "n_outputs": self.n_outputs,
                                      **{k: self.params[k] for k in ("hidden_sizes", "activation",
                                                                     "dropout")}})
        net = self.network
        std = Xt.std(dim=0)
        net.x_mean.copy_(Xt.mean(dim=0))
        net.x_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        if self.task == "regression":
            net.y_mean.fill_(float(yt.mean()))
            net.y_std.fill_(float(yt.std()) if float(yt.std()) > 1e-8 else 1.0)
        loss_fn = self._loss()
        opt = torch.optim.Adam(net.parameters(), lr=float(self.params["learning_rate"]),
                               weight_decay=float(self.params["weight_decay"]))
        has_val = X_val is not None and y_val is not None and len(X_val) > 0
        best, best_state, bad_epochs = None, None, 0
        self.history = []
        for epoch in range(self.params["epochs"]):
            net.train()
            order = torch.randperm(len(Xt), generator=gen)
            for start in range(0, len(Xt), self.params["batch_size"]):
                idx = order[start:start + self.params["batch_size"]]
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), self._target(yt[idx]))
                loss.backward()
                opt.step()
            if not has_val:
                continue
            if val_score is not None:
                value, higher = float(val_score(y_val, self.predict_scores(X_val))), greater_is_better
            else:
                value, higher = self._val_loss(X_val, y_val), False
            self.history.append(value)
            improved = best is None or (value > best if higher else value < best)
            if improved:
                best, best_state, bad_epochs = value, copy.deepcopy(net.state_dict()), 0
                self.best_epoch = epoch
            else:
                bad_epochs += 1
            if on_epoch is not None and on_epoch(epoch, value):
                break
            if patience is not None and bad_epochs >= patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return self

    def _loss(self) -> Any:
        from torch import nn

        if self.task == "regression":
            return nn.MSELoss()
        return nn.BCEWithLogitsLoss() if self.n_outputs == 1 else nn.CrossEntropyLoss()

    def _target(self, y: Any) -> Any:
        if self.task == "regression":
            return ((y - self.network.y_mean) / self.network.y_std).unsqueeze(1)
        return y.unsqueeze(1) if self.n_outputs == 1 else y

    def _val_loss(self, X: Any, y: Any) -> float:
        import numpy as np
        import torch

        with torch.no_grad():
            self.network.eval()
            out = self.network(torch.as_tensor(np.asarray(X, dtype=np.float32)))
            yt = torch.as_tensor(np.asarray(y, dtype=np.float32 if self.n_outputs == 1 else np.int64))
            return float(self._loss()(out, self._target(yt)))

    def predict_scores(self, X: Any) -> Any:
        """P(positive) (binary), an (n, k) probability matrix (multi-class) or values (regression)."""
        import numpy as np
        import torch

        self.network.eval()
        with torch.no_grad():
            out = self.network(torch.as_tensor(np.asarray(X, dtype=np.float32)))
            if self.task == "regression":
                out = out * self.network.y_std + self.network.y_mean
                return out.squeeze(1).numpy().astype(np.float64)
            if self.n_outputs == 1:
                return torch.sigmoid(out).squeeze(1).numpy().astype(np.float64)
            return torch.softmax(out, dim=1).numpy().astype(np.float64)

    def save(self, path: Any) -> None:
        import torch

        torch.save(self.network.state_dict(), path)

    @classmethod
    def load(cls, path: Any, architecture: dict[str, Any], params: dict[str, Any]) -> MLPModel:
        import torch

        model = cls(architecture["task"], int(architecture.get("n_classes", 2)),
                    **{k: v for k, v in params.items() if k in DEFAULTS})
        model.network = build_network(architecture)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.network.load_state_dict(state)
        model.network.eval()
        return model
