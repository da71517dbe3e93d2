"""Phase 4 optimization: profile, quantize (torch int8 / fp16 / bf16, ONNX for trees), prune; refusals
and bad input. Real models trained by the kit on a small seeded sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omgmagics.errors import DataError, UsageError
from omgmagics.optim.models import OptimizedModel, load_any_model
from omgmagics.optim.profile import profile_model
from omgmagics.optim.prune import prune_model
from omgmagics.optim.quantize import quantize_model
from omgmagics.project import Project
from tests.helpers.deploy import shared


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = shared(tmp_path_factory)
    return Project.at(data["root"]), data["refs"]


def test_profile_champion_by_alias(env):
    project, _ = env
    report = profile_model(project, "champion", "1,64", repeats=10)
    table = report.tables["latency by batch size"]
    assert list(table["batch"]) == [1, 64]
    assert (table["p99_ms"] >= table["p50_ms"]).all() and (table["rows_per_s"] > 0).all()
    assert report.summary["model"] == "models:/p4-model@champion"
    assert report.summary["type"] == "xgboost" and report.summary["parameters"] > 40
    assert report.summary["size (KB)"] > 1 and 0.5 < report.summary["val roc_auc"] <= 1
    assert "latency" in report.figures and report.figures["latency"][:4] == b"\x89PNG"


def test_profile_mlp_counts_weights(env):
    project, refs = env
    report = profile_model(project, refs["mlp"], "1", repeats=5)
    n_features = len(load_any_model(project, refs["mlp"]).feature_names)
    assert report.summary["parameters"] == n_features * 128 + 128 + 128 * 64 + 64 + 64 + 1
    assert report.summary["peak memory (MB)"] is None or report.summary["peak memory (MB)"] >= 0


def test_quantize_mlp_int8_reports_before_after_and_writes_a_loadable_model(env, tmp_path):
    project, refs = env
    out = tmp_path / "int8"
    report = quantize_model(project, refs["mlp"], "int8", "torch", output=str(out))
    cmp = report.data["comparison"]
    assert cmp["after"]["size_bytes"] < 0.45 * cmp["before"]["size_bytes"]
    assert abs(cmp["drop"]) < 0.02 and cmp["label_agreement"] > 0.97
    table = report.tables["before -> after"]
    assert list(table["measure"]) == ["val roc_auc", "size (KB)", "p50 batch 1 (ms)",
                                      "p99 batch 1 (ms)", "rows/s batch 1024"]
    loaded = load_any_model(project, str(out))
    assert isinstance(loaded, OptimizedModel) and loaded.variant == "torch-int8"
    assert loaded.meta["optimization"]["kind"] == "quantize"
    assert loaded.meta["base"]["ref"] == refs["mlp"]
    assert "DynamicQuantizedLinear" in repr(loaded.runtime)


def test_quantize_mlp_bf16(env, tmp_path):
    project, refs = env
    report = quantize_model(project, refs["mlp"], "bf16", "auto", output=str(tmp_path / "bf16"))
    assert report.value.variant == "torch-bf16"
    assert report.data["comparison"]["after"]["size_bytes"] < \
        0.6 * report.data["comparison"]["before"]["size_bytes"]


def test_quantizing_a_tree_model_says_what_applies_instead(env):
    project, _ = env
    with pytest.raises(UsageError, match=re.escape(
            "xgboost is a tree ensemble: torch dynamic quantization applies only to the MLP's Linear "
            "layers, and tree thresholds are already float32 comparisons. What applies instead is "
            "an ONNX export run by onnxruntime: use --export onnx (or auto).")):
        quantize_model(project, "champion", "int8", "torch")


def test_onnx_export_of_the_tree_champion_matches_it(env, tmp_path):
    project, _ = env
    report = quantize_model(project, "champion", "int8", "onnx", output=str(tmp_path / "onnx"))
    assert report.value.variant == "onnx"
    assert report.data["comparison"]["max_score_diff"] < 1e-5
    assert report.data["comparison"]["label_agreement"] == 1.0
    assert any("Tree models are not quantized" in m for m in report.messages)
    loaded = load_any_model(project, str(tmp_path / "onnx"))
    assert loaded.meta["base"]["registry"]["version"] == "1"


def test_mlp_with_onnx_export_is_refused(env):
    project, refs = env
    with pytest.raises(UsageError, match=re.escape("ONNX export is for tree and scikit-learn models; "
                                                   "the torch MLP is quantized with torch")):
        quantize_model(project, refs["mlp"], "int8", "onnx")


def test_prune_is_permanent_and_honest(env, tmp_path):
    project, refs = env
    out = tmp_path / "pruned"
    report = prune_model(project, refs["mlp"], 0.5, fine_tune_epochs=1, max_drop=0.05,
                         output=str(out))
    assert abs(report.data["sparsity"] - 0.5) < 0.01
    assert len(report.data["fine_tune_history"]) == 1
    assert report.data["sparse_size_bytes"] < report.data["comparison"]["after"]["size_bytes"]
    assert any("does not speed up dense CPU kernels" in m for m in report.messages)
    from omgmagics.modeling.models import OmgModel

    plain = OmgModel.load(out)  # an ordinary MLP for phase 3 tools
    state = plain.estimator.network.state_dict()
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    weights = [v for k, v in state.items() if k.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert abs(zeros - 0.5) < 0.01


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 1.5, -0.2])
def test_sparsity_outside_0_1_is_refused(env, sparsity):
    project, refs = env
    with pytest.raises(UsageError, match=re.escape(
            f"--sparsity must be in (0, 1) (the share of weights set to zero), got {sparsity}.")):
        prune_model(project, refs["mlp"], sparsity)


def test_pruning_a_tree_model_is_refused(env):
    project, _ = env
    with pytest.raises(UsageError, match="Pruning applies to the torch MLP's Linear layers; "
                                         "models:/p4-model@champion is a xgboost model"):
        prune_model(project, "champion", 0.5)


def test_metric_drop_beyond_max_drop_writes_nothing_unless_forced(env, tmp_path):
    project, refs = env
    out = tmp_path / "too-sparse"
    with pytest.raises(DataError, match=r"^Refused: pruning to 97% lowers val roc_auc from .* "
                                        r"nothing was written\. Pass --force"):
        prune_model(project, refs["mlp"], 0.97, max_drop=0.0, output=str(out))
    assert not out.exists() and not list(tmp_path.glob(".too-sparse*"))
    report = prune_model(project, refs["mlp"], 0.97, max_drop=0.0, force=True, output=str(out))
    assert out.is_dir() and report.messages[0].startswith("Written despite the drop because of "
                                                          "--force")


def test_a_model_path_that_does_not_exist_or_is_not_a_model(env, tmp_path):
    project, _ = env
    with pytest.raises(DataError, match=re.escape("Model nowhere/model.pt does not exist")):
        profile_model(project, "nowhere/model.pt")
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "x.txt").write_text("hello")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'notamodel'} is not a model: "
                                                  f"{tmp_path / 'notamodel'} has no omg_model.json")):
        quantize_model(project, str(tmp_path / "notamodel"))


def test_cli_bad_flag_and_bad_value(env, run_cli):
    project, refs = env
    code, _, err = run_cli(["optim", "quantize", "--precision", "int4"], cwd=project.root)
    assert code == 2 and "invalid choice: 'int4'" in err
    code, _, err = run_cli(["optim", "prune", "--model", refs["mlp"], "--sparsity", "2"],
                           cwd=project.root)
    assert code == 2
    assert err.strip() == "error: --sparsity must be in (0, 1) (the share of weights set to zero), " \
                          "got 2.0."
    code, out, _ = run_cli(["optim", "profile", "--model", refs["mlp"], "--batch-sizes", "1,8",
                            "--repeats", "5", "--format", "json"], cwd=project.root)
    assert code == 0 and '"p50 batch 1 (ms)"' in out


def test_magic_binds_the_optimized_model(env, ipython, tmp_path):
    project, refs = env
    ipython.run_line_magic("omgoptim", f"quantize --model {refs['mlp']} --output {tmp_path / 'q'} "
                                       f"--project {project.root} --out q -q")
    assert isinstance(ipython.user_ns["q"], OptimizedModel)
    assert Path(tmp_path / "q" / "omg_model.json").is_file()


def test_auto_keeps_a_model_no_converter_supports(env, tmp_path):
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import fit_model, get_model_type

    project, _ = env
    fit = fit_model(get_model_type("hist_gradient_boosting", "classification"), {"max_iter": 20},
                    load_model_data(project), metric="roc_auc", seed=1)
    path = fit.model.save(tmp_path / "hgb")
    with pytest.raises(DataError, match="Exporting hist_gradient_boosting to ONNX failed"):
        quantize_model(project, str(path), export="onnx", output=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    report = quantize_model(project, str(path), export="auto", output=str(tmp_path / "kept"))
    assert report.data["kept"] and report.title.startswith("Kept hist_gradient_boosting as it is")
    kept = load_any_model(project, str(tmp_path / "kept"))
    assert kept.meta["optimization"]["kind"] == "none"
