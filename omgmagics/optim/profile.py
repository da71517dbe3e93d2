"""``optim profile``: size, parameters, latency p50/p99 per batch size, throughput, peak memory."""

from __future__ import annotations

from typing import Any

from ..results import Report
from . import measure
from .models import describe, load_any_model, resolve_ref


def parameter_count(model: Any) -> int | None:
    """Learned parameters: MLP weights and biases, tree nodes, linear coefficients."""
    import numpy as np

    if getattr(model, "variant", None) == "onnx":
        return (model.meta.get("optimization") or {}).get("base_parameters")
    family = model.family
    est = getattr(model, "estimator", None)
    if family == "mlp":
        net = est.network if est is not None else model.runtime
        total = 0
        for key, value in net.state_dict().items():
            if key.endswith(("weight", "bias")) and hasattr(value, "numel"):
                total += int(value.numel())
            elif key.endswith("_packed_params._packed_params"):  # a dynamically quantized Linear
                total += sum(int(t.numel()) for t in value if hasattr(t, "numel"))
        return total
    if family == "xgboost":
        return int(sum(len(tree.strip().splitlines()) for tree in est.get_booster().get_dump()))
    if family == "lightgbm":
        trees = est.dump_model().get("tree_info", [])
        return int(sum(2 * t.get("num_leaves", 1) - 1 for t in trees))
    inner = est.steps[-1][1] if hasattr(est, "steps") else est
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


def profile_model(project: Any, model_ref: str | None = None, batch_sizes: str = "1,1024",
                  features: str | None = None, repeats: int = 50) -> Report:
    """Profile a model on rows of its validation split.

    Parameters
    ----------
    model_ref : str, optional
        A model folder, ``models:/NAME@alias``, a bare alias or a run name (default: the champion).
    batch_sizes : str
        Comma-separated batch sizes to time.
    features : str, optional
        The feature set ``NAME@vN`` to take rows from (default: the one the model was trained on).
    """
    import pandas as pd
    from matplotlib.figure import Figure

    sizes = measure.parse_batch_sizes(batch_sizes)
    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    data = measure.eval_data(project, model, features)
    rows = measure.time_batches(model, data.X, sizes, repeats=repeats)
    peak = measure.peak_memory_mb(model, data.X, n=max(sizes))
    size = measure.model_size(model)
    params = parameter_count(model)
    metric = measure.metric_value(model, data)
    table = pd.DataFrame(rows)
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    labels = [str(r["batch"]) for r in rows]
    ax.bar([x - 0.2 for x in range(len(rows))], table["p50_ms"], width=0.4, label="p50")
    ax.bar([x + 0.2 for x in range(len(rows))], table["p99_ms"], width=0.4, label="p99")
    ax.set_xticks(range(len(rows)), labels)
    ax.set_xlabel("batch size (rows)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"{model.model_type}: prediction latency")
    ax.legend()
    info = describe(model)
    first, last = rows[0], rows[-1]
    summary = {"model": ref, "type": info["model"], "variant": info["variant"],
               "size (KB)": round(size / 1024, 1), "parameters": params,
               f"p50 batch {first['batch']} (ms)": first["p50_ms"],
               f"p99 batch {first['batch']} (ms)": first["p99_ms"],
               f"throughput batch {last['batch']} (rows/s)": round(last["rows_per_s"] or 0),
               "peak memory (MB)": None if peak is None else round(peak, 2),
               f"val {data.metric}": metric, "rows from": f"{data.ref} ({data.split})"}
    report = Report(f"Profile of {info['model']} ({info['variant']})", summary=summary,
                    tables={"latency by batch size": table},
                    data={"rows": rows, "size_bytes": size, "parameters": params,
                          "peak_memory_mb": peak, "metric": {data.metric: metric}})
    report.add_figure("latency", fig)
    report.messages.append("Latency is the model alone (features already computed); the server adds "
                           "request parsing, the feature pipeline and the handler.")
    limit = project.config.get_path("brief.constraints.model_size_mb")
    if limit is not None and size > float(limit) * 2**20:
        report.messages.append(f"The model ({size / 2**20:.1f} MB) exceeds the brief's model_size_mb "
                               f"{limit}: quantize or prune it.")
    return report
