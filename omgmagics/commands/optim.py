"""``%omgoptim`` / ``omg optim``: profile, quantize, prune (command layer)."""

from __future__ import annotations

from ._registry import arg, planned

P4 = "issue #6 (Phase 4: optimization & deployment)"
MODEL = arg("--model", default=None, help="a model path or models:/NAME@alias")

planned(
    "optim", "profile", MODEL,
    arg("--batch-sizes", default="1,1024", help="comma-separated batch sizes to time"),
    help="size, parameters, latency p50/p99 at batch 1 and N, throughput",
    examples=["profile --model best_model.pt"],
    issue=P4,
)
planned(
    "optim", "quantize", MODEL,
    arg("--precision", choices=["int8", "fp16", "bf16"], default="int8", help="target precision"),
    arg("--export", choices=["torch", "onnx"], default="torch",
        help="torch (MLP) or onnx (tree models)"),
    arg("--max-drop", type=float, default=0.01, help="largest metric drop accepted"),
    arg("--force", action="store_true", help="write the model even past --max-drop"),
    help="torch dynamic int8 quantization (ONNX export for trees); accuracy delta reported",
    examples=["quantize --precision int8"],
    issue=P4,
)
planned(
    "optim", "prune", MODEL,
    arg("--sparsity", type=float, default=0.5, help="share of weights set to zero, in (0, 1)"),
    arg("--fine-tune-epochs", type=int, default=0, help="epochs of fine-tuning after pruning"),
    arg("--max-drop", type=float, default=0.01, help="largest metric drop accepted"),
    arg("--force", action="store_true", help="write the model even past --max-drop"),
    help="torch magnitude pruning to the requested sparsity; accuracy delta reported",
    examples=["prune --sparsity 0.5"],
    issue=P4,
)
