"""``optim prune``: global magnitude pruning of the MLP's Linear weights, made permanent.

``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` zeroes the smallest-magnitude
weights across all Linear layers together until the requested share is zero; optional fine-tuning
epochs train the surviving weights with the masks in place; ``prune.remove`` then bakes the zeros
into plain weight tensors. The result is an ordinary MLP (loadable everywhere phase 3 models are).

Unstructured sparsity does not make dense CPU matrix kernels faster: the zeros are still multiplied.
What it buys is a smaller model when stored sparse (reported) and a step towards structured pruning.
"""

from __future__ import annotations

import io
from typing import Any

from ..errors import UsageError
from ..results import Report
from . import measure
from .models import OptimizedModel, load_any_model, model_label, resolve_ref


def _linears(net: Any) -> list[Any]:
    from torch import nn

    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def sparsity_of(net: Any) -> float:
    """Share of zero weights over all Linear layers."""
    layers = _linears(net)
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    total = sum(int(m.weight.numel()) for m in layers)
    return zeros / total if total else 0.0


def sparse_size(net: Any) -> int:
    """Bytes of the state dict with each Linear weight stored as a bit mask plus its non-zero values.

    A bit per weight and four bytes per kept weight: about ``(1 - sparsity) + 1/32`` of the dense size
    (CSR with 64-bit indices would be larger than dense below about 67% sparsity).
    """
    import numpy as np
    import torch

    state: dict[str, Any] = {}
    for key, value in net.state_dict().items():
        if key.endswith("weight") and value.dim() == 2:
            mask = (value != 0).numpy().ravel()
            state[key] = {"shape": list(value.shape),
                          "mask": torch.from_numpy(np.packbits(mask)),
                          "values": value.ravel()[torch.from_numpy(mask)].clone()}
        else:
            state[key] = value
    buf = io.BytesIO()
    torch.save(state, buf)
    return len(buf.getvalue())


def _fine_tune(model: Any, data: measure.EvalData, epochs: int, lr: float, seed: int) -> list[float]:
    """Train the pruned network (masks active) for `epochs`; returns the val metric per epoch."""
    import numpy as np
    import torch
    from torch import nn

    from ..metrics import score

    est = model.estimator
    net = est.network
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(np.asarray(data.train_X, dtype=np.float32))
    y = np.asarray(data.train_y)
    n_out = est.n_outputs
    if model.task == "regression":
        yt = (torch.as_tensor(y, dtype=torch.float32) - net.y_mean) / net.y_std
        yt, loss_fn = yt.unsqueeze(1), nn.MSELoss()
    elif n_out == 1:
        yt, loss_fn = torch.as_tensor(y, dtype=torch.float32).unsqueeze(1), nn.BCEWithLogitsLoss()
    else:
        yt, loss_fn = torch.as_tensor(y, dtype=torch.int64), nn.CrossEntropyLoss()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    batch = int(est.params.get("batch_size", 256))
    history = []
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), yt[idx])
            loss.backward()
            opt.step()
        net.eval()
        history.append(float(score(data.metric, data.y, est.predict_scores(data.X.to_numpy()),
                                   data.task)))
    return history


def prune_model(project: Any, model_ref: str | None = None, sparsity: float = 0.5,
                fine_tune_epochs: int = 0, max_drop: float = 0.01, force: bool = False,
                output: str | None = None, features: str | None = None,
                learning_rate: float | None = None) -> Report:
    """Prune the MLP to `sparsity`, optionally fine-tune, and write it if the metric holds.

    Raises
    ------
    UsageError
        For a sparsity outside (0, 1), negative epochs, or a model that is not the torch MLP.
    DataError
        For a model that cannot be loaded, or a metric drop beyond `max_drop` without `force`.
    """
    import copy

    import torch.nn.utils.prune as prune

    from .quantize import check_drop, compare, comparison_table, resolve_output

    if not 0 < float(sparsity) < 1:
        raise UsageError(f"--sparsity must be in (0, 1) (the share of weights set to zero), got "
                         f"{sparsity}.")
    if fine_tune_epochs < 0:
        raise UsageError(f"--fine-tune-epochs must be >= 0, got {fine_tune_epochs}.")
    if max_drop < 0:
        raise UsageError(f"--max-drop must be >= 0, got {max_drop}.")
    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    if isinstance(model, OptimizedModel) or not model.family_impl.prunable:
        kind = getattr(model, "variant", None) or model.family
        raise UsageError(f"Pruning applies to the torch MLP's Linear layers; {ref} is a {kind} model "
                         f"({model.model_type}). For tree ensembles, fewer or shallower trees "
                         "(n_estimators, max_depth in phase 3 tuning) are the equivalent.")
    data = measure.eval_data(project, model, features, need_train=fine_tune_epochs > 0)
    pruned = copy.deepcopy(model)
    net = pruned.estimator.network
    params = [(m, "weight") for m in _linears(net)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    history: list[float] = []
    if fine_tune_epochs:
        lr = learning_rate or float(model.params.get("learning_rate", 1e-3)) / 10
        history = _fine_tune(pruned, data, fine_tune_epochs, lr, project.seed)
    for module, name in params:
        prune.remove(module, name)  # the zeros become part of the plain weight tensor
    net.eval()
    achieved = sparsity_of(net)
    cmp = compare(model, pruned, data)
    messages = check_drop(cmp, data.metric, max_drop, force, f"pruning to {sparsity:.0%}")
    label = model_label(model, ref)
    dest = resolve_output(project, output, label, f"pruned{round(sparsity * 100)}")
    dense_b, sparse_b = cmp["after"]["size_bytes"], sparse_size(net)
    pruned.meta.update({
        "base": {"ref": ref, "source": str(model.source),
                 **({"registry": model.meta["registry"]} if model.meta.get("registry") else {})},
        "optimization": {"kind": "prune", "sparsity_requested": float(sparsity),
                         "sparsity": achieved, "fine_tune_epochs": fine_tune_epochs,
                         "fine_tune_history": history, "feature_set": data.ref,
                         "metric": data.metric, "before": cmp["before"], "after": cmp["after"],
                         "drop": cmp["drop"], "max_drop": max_drop, "forced": bool(messages),
                         "sparse_size_bytes": sparse_b}})
    pruned.meta.pop("registry", None)
    pruned.save(dest)
    b, a = cmp["before"], cmp["after"]
    summary = {"model": ref, "sparsity": f"{achieved:.3f} (requested {sparsity})",
               f"val {data.metric}": f"{b['metric']:.4f} -> {a['metric']:.4f}",
               "metric drop": round(cmp["drop"], 5),
               "size dense": f"{dense_b / 1024:.1f} KB", "size stored sparse":
               f"{sparse_b / 1024:.1f} KB ({sparse_b / b['size_bytes']:.2f}x)",
               "p50 batch 1": f"{b['p50_ms']:.3f} ms -> {a['p50_ms']:.3f} ms",
               "fine-tune epochs": fine_tune_epochs}
    messages = messages + [
        "Unstructured sparsity does not speed up dense CPU kernels: the zeroed weights are still "
        "multiplied, so latency stays about the same (see the table). The gain is storage (the "
        "sparse size) and a starting point for structured pruning.",
        "The pruned model is saved dense, as an ordinary MLP, so every tool that loads phase 3 "
        "models loads it."]
    table = comparison_table(cmp, data.metric)
    return Report(f"Pruned {model.model_type} to {achieved:.0%} sparsity, written to {dest.name}",
                  summary=summary, tables={"before -> after": table}, messages=messages,
                  artifacts={"model": str(dest)},
                  data={"comparison": cmp, "sparsity": achieved, "sparse_size_bytes": sparse_b,
                        "fine_tune_history": history, "path": str(dest)}, value=pruned)
