"""``optim quantize``: torch dynamic int8 (or fp16/bf16) for the MLP, ONNX export for tree models.

Dynamic int8 quantization stores each ``nn.Linear`` weight as int8 with a scale and quantizes the
activations on the fly; nothing else in the network changes, so no calibration data is needed. Tree
ensembles have no weights to quantize (their thresholds are float32 comparisons already): what
applies to them is an export to ONNX, run by onnxruntime, measured the same way.

Every run reports size, latency and the primary metric before -> after on the validation split and
refuses to write a model whose metric drops more than ``max_drop`` unless ``force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError, unknown_choice
from ..results import Report
from . import measure
from .models import (
    TORCH_VARIANTS,
    OptimizedModel,
    build_torch_variant,
    describe,
    load_any_model,
    model_label,
    resolve_ref,
    torch_quiet,
)

PRECISIONS = ("int8", "fp16", "bf16")
EXPORTS = ("torch", "onnx", "auto")
ONNX_OPSET = 15


def _torch_variant(model: Any, precision: str) -> OptimizedModel:
    """The MLP's network quantized (int8) or cast (fp16/bf16), weights copied over."""
    import copy

    import torch
    from torch import nn

    variant = TORCH_VARIANTS[precision]
    net = copy.deepcopy(model.estimator.network).eval()
    with torch_quiet():
        if precision == "int8":
            qnet = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
        else:
            qnet = net.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    meta = {k: v for k, v in model.meta.items() if k not in ("format", "format_version", "file")}
    meta.update({"task": model.task, "feature_names": model.feature_names, "classes": model.classes,
                 "positive_label": model.positive_label, "model_type": model.model_type,
                 "architecture": model.estimator.architecture, "params": model.params})
    out = OptimizedModel(variant, qnet, meta)
    try:
        probe = out.predict_scores(measure.batch_of([[0.0] * len(model.feature_names)], 4))
    except (RuntimeError, NotImplementedError) as exc:
        raise UsageError(f"{precision} is not supported by torch on this CPU "
                         f"({str(exc).splitlines()[0]}). Use --precision int8.") from None
    import numpy as np

    if not np.all(np.isfinite(probe)):
        raise UsageError(f"{precision} gives non-finite outputs for this network on this CPU. Use "
                         "--precision int8.")
    # A round trip through the saved form proves the weights reload into a fresh network.
    build_torch_variant(meta["architecture"], variant)
    return out


def _onnx_payload(model: Any) -> bytes:
    """The model exported to ONNX (float32 input ``input``)."""
    try:
        onx = model.family_impl.to_onnx(model, ONNX_OPSET)
    except ImportError as exc:
        raise UsageError(f"ONNX export needs onnx, onnxruntime, onnxmltools and skl2onnx ({exc}). "
                         "Install them: pip install 'omgmagics[optim]'.") from None
    except Exception as exc:  # noqa: BLE001 - converters raise many kinds of errors
        raise DataError(f"Exporting {model.model_type} to ONNX failed: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}. Serve the model as it "
                        "is (package it without quantizing).") from None
    return onx.SerializeToString()


def _onnx_variant(model: Any) -> OptimizedModel:
    from .models import _onnx_session

    payload = _onnx_payload(model)
    meta = {k: v for k, v in model.meta.items() if k not in ("format", "format_version", "file")}
    meta.update({"task": model.task, "feature_names": model.feature_names, "classes": model.classes,
                 "positive_label": model.positive_label, "model_type": model.model_type,
                 "params": model.params, "onnx_opset": ONNX_OPSET})
    return OptimizedModel("onnx", _onnx_session(payload), meta, payload)


def route(model: Any, precision: str, export: str) -> str:
    """``torch`` or ``onnx``: what applies to this model, or a UsageError saying what does."""
    if precision not in PRECISIONS:
        raise UsageError(unknown_choice("precision", precision, PRECISIONS))
    if export not in EXPORTS:
        raise UsageError(unknown_choice("export", export, EXPORTS))
    if isinstance(model, OptimizedModel):
        raise UsageError(f"{model.source} is already optimized ({model.variant}). Quantize the "
                         "original model (e.g. --model champion).")
    family = model.family_impl
    if family.quantize_with is None and export == "auto":
        return "none"
    if family.quantize_with == "torch":
        if export == "onnx":
            raise UsageError(f"ONNX export is for tree and scikit-learn models; the {family.kind} is "
                             "quantized with torch: use --export torch (or auto).")
        return "torch"
    if family.quantize_with == "onnx":
        if export == "torch":
            raise UsageError(
                f"{model.model_type} is a {family.kind}: torch dynamic quantization applies only to "
                "the MLP's Linear layers, and tree thresholds are already float32 comparisons. What "
                "applies instead is an ONNX export run by onnxruntime: use --export onnx (or auto).")
        return "onnx"
    raise UsageError(f"Cannot quantize {model.model_type}: the {family.kind} has no single torch "
                     "module or ONNX graph. Use --export auto to keep it as it is.")


def compare(before: Any, after: Any, data: measure.EvalData) -> dict[str, Any]:
    """Metric, size, latency and agreement of two models on the validation split."""
    import numpy as np

    out: dict[str, Any] = {}
    for name, m in (("before", before), ("after", after)):
        timing = measure.time_batches(m, data.X, [1, 1024], repeats=30, budget_s=1.5)
        out[name] = {"metric": measure.metric_value(m, data), "size_bytes": measure.model_size(m),
                     "p50_ms": timing[0]["p50_ms"], "p99_ms": timing[0]["p99_ms"],
                     "rows_per_s": timing[1]["rows_per_s"]}
    s0, s1 = before.predict_scores(data.X), after.predict_scores(data.X)
    out["max_score_diff"] = float(np.max(np.abs(np.asarray(s0) - np.asarray(s1))))
    if before.task != "regression":
        out["label_agreement"] = float(np.mean(before.predict_encoded(data.X) ==
                                               after.predict_encoded(data.X)))
    out["drop"] = measure.metric_drop(data.metric, out["before"]["metric"], out["after"]["metric"])
    return out


def comparison_table(cmp: dict[str, Any], metric: str) -> Any:
    import pandas as pd

    b, a = cmp["before"], cmp["after"]

    def ratio(x: Any, y: Any) -> float | None:
        return None if not x or y is None else y / x

    rows = [
        {"measure": f"val {metric}", "before": b["metric"], "after": a["metric"],
         "after/before": ratio(b["metric"], a["metric"])},
        {"measure": "size (KB)", "before": b["size_bytes"] / 1024, "after": a["size_bytes"] / 1024,
         "after/before": ratio(b["size_bytes"], a["size_bytes"])},
        {"measure": "p50 batch 1 (ms)", "before": b["p50_ms"], "after": a["p50_ms"],
         "after/before": ratio(b["p50_ms"], a["p50_ms"])},
        {"measure": "p99 batch 1 (ms)", "before": b["p99_ms"], "after": a["p99_ms"],
         "after/before": ratio(b["p99_ms"], a["p99_ms"])},
        {"measure": "rows/s batch 1024", "before": b["rows_per_s"], "after": a["rows_per_s"],
         "after/before": ratio(b["rows_per_s"], a["rows_per_s"])},
    ]
    return pd.DataFrame(rows)


def check_drop(cmp: dict[str, Any], metric: str, max_drop: float, force: bool, what: str) -> list[str]:
    """Refuse (DataError) when the metric drops more than `max_drop`, unless `force`."""
    b, a, drop = cmp["before"]["metric"], cmp["after"]["metric"], cmp["drop"]
    checked = measure.checked_drop(metric, b, drop)
    if checked > max_drop or checked != checked:  # NaN: a metric that became undefined
        if metric in measure.UNIT_METRICS:
            text = (f"{what} raises val {metric} from {b:.6g} to {a:.6g} (by {checked:.3g} of its "
                    f"value > --max-drop {max_drop}, a share for {metric})")
        else:
            text = (f"{what} lowers val {metric} from {b:.4f} to {a:.4f} (drop {drop:.4f} > "
                    f"--max-drop {max_drop})")
        if not force:
            raise DataError(f"Refused: {text}; nothing was written. Pass --force to write it anyway, "
                            "raise --max-drop, or serve the original model.")
        return [f"Written despite the drop because of --force: {text}."]
    return []


def _drop_text(cmp: dict[str, Any], metric: str) -> Any:
    """The drop as reported: a number, with its share of the value for a metric in units."""
    drop = cmp["drop"]
    if metric not in measure.UNIT_METRICS:
        return round(drop, 5)
    share = measure.checked_drop(metric, cmp["before"]["metric"], drop)
    return f"{drop:.4g} ({share:.2g} of the value)"


def _cpu() -> str:
    try:
        import torch

        return f"torch kernels {torch.backends.cpu.get_cpu_capability()}"
    except Exception:  # noqa: BLE001 - informative only
        return "unknown capability"


def _keep_as_is(project: Any, model: Any, ref: str, data: measure.EvalData, output: str | None,
                label: str, what: str, reason: str) -> Report:
    """``--export auto`` when nothing applies cleanly: write the model unchanged, say why."""
    dest = resolve_output(project, output, label, "native")
    metric = measure.metric_value(model, data)
    model.meta["base"] = {"ref": ref, "source": str(model.source),
                          **({"registry": model.meta["registry"]} if model.meta.get("registry")
                             else {})}
    model.meta["optimization"] = {"kind": "none", "reason": reason, "metric": data.metric,
                                  "feature_set": data.ref}
    model.save(dest)
    return Report(f"Kept {model.model_type} as it is (written to {dest.name})",
                  summary={"model": ref, "method": "none (--export auto)",
                           f"val {data.metric}": round(metric, 4)},
                  messages=[f"{what[0].upper() + what[1:]} did not apply: {reason}",
                            "The original model was written unchanged so that packaging can go on; "
                            "pass --export torch or onnx to make this an error."],
                  artifacts={"model": str(dest)}, data={"path": str(dest), "kept": True},
                  value=model)


def default_output(project: Any, label: str, variant: str) -> Path:
    return Path(project.models_dir) / "optimized" / f"{label}-{variant}"


def resolve_output(project: Any, output: str | None, label: str, variant: str) -> Path:
    if not output:
        return default_output(project, label, variant)
    return project.resolve(output)


def quantize_model(project: Any, model_ref: str | None = None, precision: str = "int8",
                   export: str = "torch", max_drop: float = 0.01, force: bool = False,
                   output: str | None = None, features: str | None = None) -> Report:
    """Quantize the MLP (torch) or export a tree model to ONNX; report before -> after.

    Parameters
    ----------
    precision : {"int8", "fp16", "bf16"}
        For the MLP. Tree models keep float32 (the ONNX export is what applies to them).
    export : {"torch", "onnx", "auto"}
        ``auto`` picks torch for the MLP and ONNX for tree and scikit-learn models.
    max_drop : float
        Largest accepted drop of the primary metric on the validation split.
    output : str, optional
        The folder to write (default ``models/optimized/LABEL-VARIANT``).

    Raises
    ------
    UsageError
        For a combination that does not apply (a tree model with ``--export torch`` ...).
    DataError
        For a model that cannot be loaded, or a metric drop beyond `max_drop` without `force`.
    """
    if max_drop < 0:
        raise UsageError(f"--max-drop must be >= 0, got {max_drop}.")
    ref = resolve_ref(project, model_ref)
    model = load_any_model(project, ref)
    how = route(model, precision, export)
    data = measure.eval_data(project, model, features)
    from .profile import parameter_count

    base_params = parameter_count(model)
    label = model_label(model, ref)
    if how == "none":
        return _keep_as_is(project, model, ref, data, output, label, "optimization",
                           f"the {model.family_impl.kind} has no single torch module or ONNX graph "
                           "to optimize")
    what = f"{precision} quantization" if how == "torch" else "the ONNX export"
    try:
        optimized = _torch_variant(model, precision) if how == "torch" else _onnx_variant(model)
        cmp = compare(model, optimized, data)
        messages = check_drop(cmp, data.metric, max_drop, force, what)
    except (DataError, UsageError) as exc:
        if export != "auto":
            raise
        return _keep_as_is(project, model, ref, data, output, label, what, str(exc))
    dest = resolve_output(project, output, label, optimized.variant)
    optimized.meta["base"] = {"ref": ref, "source": str(model.source), "variant": describe(model)["variant"],
                              **({"registry": model.meta["registry"]} if model.meta.get("registry")
                                 else {})}
    optimized.meta["optimization"] = {"kind": "quantize", "precision": precision if how == "torch"
                                      else "fp32", "export": how, "feature_set": data.ref,
                                      "metric": data.metric, "before": cmp["before"],
                                      "after": cmp["after"], "drop": cmp["drop"],
                                      "max_drop": max_drop, "forced": bool(messages),
                                      "base_parameters": base_params}
    optimized.save(dest)
    b, a = cmp["before"], cmp["after"]
    method = {"int8": "torch dynamic int8 (Linear layers)", "fp16": "torch float16 weights",
              "bf16": "torch bfloat16 weights"}[precision] if how == "torch" else \
        "ONNX export (onnxruntime)"
    summary = {"model": ref, "method": method,
               f"val {data.metric}": f"{b['metric']:.4f} -> {a['metric']:.4f}",
               "metric drop": _drop_text(cmp, data.metric), "size": f"{b['size_bytes'] / 1024:.1f} KB -> "
               f"{a['size_bytes'] / 1024:.1f} KB ({a['size_bytes'] / b['size_bytes']:.2f}x)",
               "p50 batch 1": f"{b['p50_ms']:.3f} ms -> {a['p50_ms']:.3f} ms",
               "max |score diff|": cmp["max_score_diff"]}
    if "label_agreement" in cmp:
        summary["label agreement"] = round(cmp["label_agreement"], 5)
    if how == "onnx" and precision != "int8":
        messages.append(f"--precision {precision} does not apply to tree models; they stay float32.")
    if how == "onnx":
        messages.append("Tree models are not quantized: their split thresholds are float32 "
                        "comparisons already. The ONNX export with onnxruntime is what applies; "
                        "its gain is latency, not size.")
    elif precision == "int8":
        messages.append("Only the Linear layers are quantized (dynamic: activations are quantized "
                        "on the fly per batch, so a row's score moves slightly with the other rows of "
                        "its batch); input standardisation stays float32. Latency gains depend on "
                        "the CPU's int8 kernels and show mostly on large batches.")
    else:
        messages.append(f"Every weight is cast to {precision}; inputs are cast on the way in and "
                        "outputs back to float32.")
    if how == "onnx" and (a["p50_ms"] > 1.1 * b["p50_ms"] or
                          (a["rows_per_s"] or 0) < 0.9 * (b["rows_per_s"] or 0)):
        messages.append("Slower than the original on some measure (see the table): onnxruntime "
                        "runs here on one thread, which is what single-record serving needs, while "
                        f"{model.family} predicts large batches on every core.")
    elif a["p50_ms"] > 1.1 * b["p50_ms"] or (a["rows_per_s"] or 0) < 0.9 * (b["rows_per_s"] or 0):
        messages.append(f"Slower than the original on this CPU ({_cpu()}): the size shrinks but "
                        "latency or throughput got worse (see the table). Small networks gain "
                        "little from int8 kernels, and CPUs without native half-precision matrix "
                        "units emulate fp16/bf16.")
    report = Report(f"{'Quantized' if how == 'torch' else 'Exported'} {model.model_type} "
                    f"({optimized.variant}), written to {dest.name}", summary=summary,
                    tables={"before -> after": comparison_table(cmp, data.metric)},
                    messages=messages, artifacts={"model": str(dest)},
                    data={"comparison": cmp, "path": str(dest)}, value=optimized)
    return report
