"""Dynamic int8 quantization of the kit's MLP vs the same MLP in fp32 (the peer), in the same run.

An MLP (hidden layers 256, 128) is trained by the kit on the Adult features (20,000 rows), then
quantized by ``omg optim quantize --precision int8``. Measured on the validation split: the size of
the saved weights, the primary metric (ROC AUC) and the latency of one record and of 1,024 records.
Targets: size <= 0.35x, metric drop <= 0.005; the latency ratio is reported as measured.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run() -> dict:
    import torch
    from _phase4_project import build, fit

    from omgmagics.optim.quantize import quantize_model

    torch.set_num_threads(1)  # a serving process: one thread (see omgmagics.deploy.process)
    tmp = Path(tempfile.mkdtemp(prefix="omg-bench-quantize-"))
    try:
        project = build(tmp)
        mlp = fit(project, "mlp", {"hidden_sizes": [256, 128], "epochs": 15, "dropout": 0.1}, "mlp")
        report = quantize_model(project, str(mlp), "int8", "torch", max_drop=0.005,
                                output=str(tmp / "int8"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cmp = report.data["comparison"]
    b, a = cmp["before"], cmp["after"]
    size_ratio = a["size_bytes"] / b["size_bytes"]
    return {
        "title": "int8 vs fp32 MLP (torch dynamic quantization, 256-128 hidden)",
        "figures": {"size_kb": round(a["size_bytes"] / 1024, 1), "roc_auc": round(a["metric"], 4),
                    "metric_drop": round(cmp["drop"], 5), "p50_ms_batch1": round(a["p50_ms"], 4),
                    "rows_per_s_batch1024": round(a["rows_per_s"] or 0),
                    "latency_ratio_batch1": round(a["p50_ms"] / b["p50_ms"], 3),
                    "throughput_ratio_batch1024": round((a["rows_per_s"] or 0) / b["rows_per_s"], 3),
                    "label_agreement": round(cmp["label_agreement"], 5)},
        "peer": {"name": "the same MLP in fp32", "size_kb": round(b["size_bytes"] / 1024, 1),
                 "roc_auc": round(b["metric"], 4), "p50_ms_batch1": round(b["p50_ms"], 4),
                 "rows_per_s_batch1024": round(b["rows_per_s"] or 0)},
        "ratio": round(size_ratio, 3),
        "target": "size <= 0.35x fp32, metric drop <= 0.005, latency as measured",
        "met": size_ratio <= 0.35 and cmp["drop"] <= 0.005,
        "notes": ("ratio is int8/fp32 saved size. One torch thread. Dynamic int8 quantizes the "
                  "activations per batch, so it pays off on large batches and can cost on single "
                  "records of a small network."),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
