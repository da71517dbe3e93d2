"""``optim profile``: size, parameters, latency p50/p99 per batch size, throughput, peak memory."""

from __future__ import annotations

from typing import Any

from ..results import Report
from . import measure
from .models import describe, load_any_model, resolve_ref


def parameter_count(model: Any) -> int | None:
    """Learned parameters: MLP weights and biases, tree nodes, linear coefficients."""
    from ..modeling.families import get_family

    if getattr(model, "variant", None) == "onnx":
        return (model.meta.get("optimization") or {}).get("base_parameters")
    return get_family(model.family).parameter_count(model)


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

    sizes = measure.parse_batch_sizes(batch_sizes)
    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    data = measure.eval_data(project, model, features)
    samples: dict[int, list[float]] = {}
    rows = measure.time_batches(model, data.X, sizes, repeats=repeats, samples=samples)
    peak = measure.peak_memory_mb(model, data.X, n=max(sizes))
    size = measure.model_size(model)
    params = parameter_count(model)
    metric = measure.metric_value(model, data)
    table = pd.DataFrame(rows)
    fig = latency_figure(rows, samples, f"{model.model_type} ({describe(model)['variant']})")
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


def latency_figure(rows: list[dict[str, Any]], samples: dict[int, list[float]], name: str) -> Any:
    """Per batch size: the distribution of per-call latency (box and points, log scale) and the
    throughput."""
    import numpy as np

    from ..plotstyle import (
        BAD,
        PRIMARY,
        label_axes,
        new_figure,
        plain_log_ticks,
        style_legend,
        suptitle,
    )

    fig, (a, b) = new_figure(10, 3.6, 1, 2)
    sizes = [r["batch"] for r in rows]
    labels = [str(n) for n in sizes]
    data = [np.asarray(samples.get(n) or [r["p50_ms"]], dtype=float) for n, r in zip(sizes, rows,
                                                                                        strict=True)]
    a.boxplot(data, tick_labels=labels, whis=(1, 99), showfliers=False, widths=0.5,
              medianprops={"color": PRIMARY})
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        a.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.4, color=PRIMARY,
                  label="timed call" if i == 1 else None)
    a.scatter(range(1, len(rows) + 1), [r["p99_ms"] for r in rows], marker="_", s=300, color=BAD,
              label="p99")
    a.set_yscale("log")
    plain_log_ticks(a)
    label_axes(a, "Latency per call (whiskers p1-p99)", "batch size", "latency",
               x_unit="rows", y_unit="ms, log scale")
    style_legend(a, loc="upper left")
    b.bar(labels, [r["rows_per_s"] or 0 for r in rows], color=PRIMARY, width=0.5)
    b.set_yscale("log")
    plain_log_ticks(b)
    label_axes(b, "Throughput (median call)", "batch size", "throughput",
               x_unit="rows", y_unit="rows/s, log scale")
    b.grid(axis="x", visible=False)
    suptitle(fig, f"{name}: prediction latency, model alone")
    return fig
