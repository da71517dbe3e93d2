"""``%omgoptim`` / ``omg optim``: profile, quantize, prune (command layer)."""

from __future__ import annotations

import argparse

from ._registry import Context, arg, command

MODEL = arg("--model", default=None,
            help="a model folder, models:/NAME@alias, an alias (champion, challenger) or an MLflow "
                 "run name (default: the champion)")
FEATURES = arg("--features", metavar="NAME@VERSION", default=None,
               help="feature set whose validation split is used (default: the model's own)")
MAX_DROP = arg("--max-drop", type=float, default=0.01,
               help="largest drop of the primary metric on the validation split accepted (for "
                    "rmse and mae, which are in the target's units: a share of their value)")
FORCE = arg("--force", action="store_true", help="write the model even past --max-drop")
OUTPUT = arg("--output", metavar="DIR", default=None,
             help="where to write the model (default: models/optimized/LABEL-VARIANT)")


@command(
    "optim", "profile", MODEL,
    arg("--batch-sizes", default="1,1024", help="comma-separated batch sizes to time"),
    arg("--repeats", type=int, default=50, help="timed calls per batch size (fewer if slow)"),
    FEATURES,
    help="size, parameters, latency p50/p99 at batch 1 and N, throughput, peak memory",
    description="Times the model alone on rows of its validation split (features already computed).",
    examples=["profile --model champion", "profile --model models/optimized/champion-torch-int8",
              "profile --batch-sizes 1,32,1024"],
    writes=False,  # times the model, writes nothing
)
def profile(ns: argparse.Namespace, ctx: Context):
    from ..errors import UsageError
    from ..optim.profile import profile_model

    if ns.repeats < 5 or ns.repeats > 10_000:
        raise UsageError(f"--repeats must be in 5..10000, got {ns.repeats}.")
    return profile_model(ctx.project(), ns.model, ns.batch_sizes, ns.features, ns.repeats)


@command(
    "optim", "quantize", MODEL,
    arg("--precision", choices=["int8", "fp16", "bf16"], default="int8",
        help="target precision of the MLP's weights (int8: dynamic quantization of Linear layers)"),
    arg("--export", choices=["torch", "onnx", "auto"], default="torch",
        help="torch (the MLP), onnx (tree and scikit-learn models, run by onnxruntime), or auto "
             "(whichever applies to the model)"),
    MAX_DROP, FORCE, OUTPUT, FEATURES,
    help="torch dynamic int8 quantization (ONNX export for trees); accuracy delta reported",
    description=("Reports size, latency and the primary metric before -> after on the validation "
                 "split and refuses to write a model that loses more than --max-drop."),
    examples=["quantize --precision int8", "quantize --model champion --export auto",
              "quantize --model models/trained/mlp --precision bf16"],
)
def quantize(ns: argparse.Namespace, ctx: Context):
    from ..io import project_output
    from ..optim.quantize import quantize_model

    project = ctx.project()
    return quantize_model(project, ns.model, ns.precision, ns.export, ns.max_drop, ns.force,
                          project_output(project.root, ns.output, "--output"), ns.features)


@command(
    "optim", "prune", MODEL,
    arg("--sparsity", type=float, default=0.5, help="share of weights set to zero, in (0, 1)"),
    arg("--fine-tune-epochs", type=int, default=0, help="epochs of fine-tuning after pruning"),
    arg("--learning-rate", type=float, default=None,
        help="fine-tuning learning rate (default: a tenth of the model's)"),
    MAX_DROP, FORCE, OUTPUT, FEATURES,
    help="torch magnitude pruning to the requested sparsity; accuracy delta reported",
    description=("Global L1 magnitude pruning of the MLP's Linear weights, made permanent. "
                 "Unstructured sparsity saves storage, not CPU time."),
    examples=["prune --sparsity 0.5", "prune --model models/trained/mlp --sparsity 0.8 "
              "--fine-tune-epochs 3"],
)
def prune(ns: argparse.Namespace, ctx: Context):
    from ..io import project_output
    from ..optim.prune import prune_model

    project = ctx.project()
    return prune_model(project, ns.model, ns.sparsity, ns.fine_tune_epochs, ns.max_drop,
                       ns.force, project_output(project.root, ns.output, "--output"), ns.features,
                       ns.learning_rate)
