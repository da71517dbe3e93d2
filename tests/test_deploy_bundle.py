"""Phase 4 packaging without servers: the bundle's contents, verification and tampering, the MLflow
pyfunc flavor, the compiled feature pipeline, request validation, settings, manifests, docs, the
prediction log and the rollout policy."""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from omgmagics.deploy.bundle import ServingBundle
from omgmagics.deploy.integrity import verify_bundle
from omgmagics.deploy.packaging import package_model
from omgmagics.deploy.signature import InvalidRequest, RequestValidator
from omgmagics.errors import ConfigError, DataError, UsageError
from tests.helpers.deploy import (
    BROKEN_HANDLER,
    FAILING_HANDLER,
    onnx_bundle_project,
)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return onnx_bundle_project(tmp_path_factory, "bundle")


@pytest.fixture(scope="module")
def val(proj):
    project, _ = proj
    return pd.read_parquet(project.processed_dir / "val.parquet")


def test_bundle_layout_and_manifest(proj):
    project, bundle = proj
    for rel in ("MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "signature.json",
                "metadata.json", "manifest.json", "data/omg/model/omg_model.json",
                "data/omg/model/model.onnx", "data/omg/pipeline.skops", "data/omg/features.json",
                "data/omg/handler.py", "code/projectlib/handler.py"):
        assert (bundle / rel).is_file(), rel
    assert bundle.relative_to(project.models_dir).parts == ("p4-model", "1")
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*")
                   if p.is_file() and p.name != "manifest.json")
    assert sorted(manifest["files"]) == files
    reqs = (bundle / "requirements.txt").read_text().split()
    assert all("==" in r for r in reqs if not r.startswith("-"))
    assert any(r.startswith("onnxruntime==") for r in reqs)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["model"]["variant"] == "onnx" and meta["model"]["registry"]["version"] == "1"
    assert meta["feature_set"]["ref"] == "project_features@v1"
    assert meta["mlflow"]["run_id"] and meta["created"]
    sig = json.loads((bundle / "signature.json").read_text())
    cols = {c["name"]: c for c in sig["columns"]}
    assert cols["age"]["type"] == "integer" and cols["age"]["nullable"] is False
    assert cols["sex"]["type"] == "string" and cols["sex"]["categories"] == ["Female", "Male"]
    assert "income" not in cols and "row_id" not in cols


def test_verify_ok_and_pyfunc_matches_the_server_path(proj, val):
    import mlflow.pyfunc

    _, bundle = proj
    assert verify_bundle(bundle)["ok"]
    served = ServingBundle.load(bundle)
    from omgmagics.deploy.staging import split_valid

    _, records, _ = split_valid(served, val)
    pyfunc = mlflow.pyfunc.load_model(str(bundle))
    out = pyfunc.predict(pd.DataFrame(records[:20]))
    mine = served.predict_records(records[:20])
    assert list(out["prediction"]) == [m["prediction"] for m in mine]
    assert np.allclose(out["score"], [m["score"] for m in mine], rtol=0, atol=0)
    assert verify_bundle(bundle)["ok"]  # loading wrote nothing into the bundle


def test_compiled_pipeline_equals_the_fitted_pipeline(proj, val):
    _, bundle = proj
    served = ServingBundle.load(bundle)
    assert served.pipeline is None and served.compiled.enabled  # stored program, no skops import
    fs_pipe = ServingBundle.load(bundle, use_program=False)
    ref = np.asarray(fs_pipe.pipeline.transform(val[served.input_names]), dtype=float)
    from omgmagics.deploy.fastpath import _column_values

    cols = {c: _column_values(val[c]) for c in served.input_names}
    assert np.array_equal(served.compiled.transform(cols), ref)  # exact, unseen categories included
    one = {c: v[:1] for c, v in cols.items()}
    assert np.array_equal(served.compiled.transform(one), ref[:1])


def test_tampered_bundle_is_never_loaded(proj, tmp_path, run_cli):
    import shutil

    _, bundle = proj
    bad = tmp_path / "tampered"
    shutil.copytree(bundle, bad)
    (bad / "data/omg/handler.py").write_text("raise SystemExit('pwned')\n")
    result = verify_bundle(bad)
    assert not result["ok"] and result["changed"] == ["data/omg/handler.py"]
    with pytest.raises(DataError, match=re.escape(
            f"Bundle {bad} failed verification (changed: data/omg/handler.py): its files do not "
            "match manifest.json, so it was not loaded.")):
        ServingBundle.load(bad)
    code, _, err = run_cli(["deploy", "package", "--verify", str(bad)])
    assert code == 1 and "failed verification: changed: data/omg/handler.py" in err
    extra = tmp_path / "extra"
    shutil.copytree(bundle, extra)
    (extra / "code" / "projectlib" / "evil.py").write_text("x = 1\n")
    assert verify_bundle(extra)["unexpected"] == ["code/projectlib/evil.py"]
    code, out, _ = run_cli(["deploy", "package", "--verify", str(bundle)])
    assert code == 0 and "verified" in out


def test_bad_handler_leaves_no_partial_bundle(proj, tmp_path):
    project, _ = proj
    handler = tmp_path / "broken.py"
    handler.write_text("def preprocess(records):\n    return records +\n")
    before = sorted(p.name for p in (project.models_dir / "p4-model").iterdir())
    with pytest.raises(DataError, match=re.escape(f"Handler {handler} fails to import: SyntaxError")):
        package_model(project, "champion", handler=str(handler))
    assert sorted(p.name for p in (project.models_dir / "p4-model").iterdir()) == before
    with pytest.raises(DataError, match=re.escape("Model no/such/model does not exist")):
        package_model(project, "no/such/model")
    handler.write_text(FAILING_HANDLER)
    with pytest.raises(DataError, match=re.escape("The bundle fails on validation rows: RuntimeError: "
                                                  "always fails. Fix the handler")):
        package_model(project, "champion", handler=str(handler))
    assert sorted(p.name for p in (project.models_dir / "p4-model").iterdir()) == before


def test_existing_version_is_refused_and_handler_is_bundled(proj, tmp_path):
    project, bundle = proj
    with pytest.raises(UsageError, match=re.escape("Bundle p4-model/1 already exists and bundles are "
                                                   "immutable.")):
        package_model(project, "champion", version="1")
    handler = tmp_path / "flaky.py"
    handler.write_text(BROKEN_HANDLER)
    out = Path(package_model(project, str(bundle / "data/omg/model"), handler=str(handler),
                             name="broken").value)
    assert (out / "data/omg/handler.py").read_text() == BROKEN_HANDLER
    assert json.loads((out / "metadata.json").read_text())["handler"]["hooks"] == ["preprocess"]


# --- request validation --------------------------------------------------------------------------
SIG = {"columns": [
    {"name": "age", "type": "integer", "dtype": "int64", "nullable": False},
    {"name": "hours", "type": "number", "dtype": "float64", "nullable": True},
    {"name": "sex", "type": "string", "dtype": "object", "nullable": False,
     "categories": ["Female", "Male"]}]}


def _errors(payload, max_batch=3):
    with pytest.raises(InvalidRequest) as exc:
        RequestValidator(SIG, max_batch).records(payload)
    return [e["msg"] for e in exc.value.errors]


def test_validation_names_each_bad_field():
    assert _errors({"age": "39", "hours": 1.0, "sex": "Male"}) == [
        "field 'age' must be an integer, got string '39'"]
    assert _errors({"age": 39, "hours": 1.0}) == ["field 'sex' is required (string)"]
    assert _errors({"age": 39, "hours": 1.0, "sex": "Mal"}) == [
        "field 'sex' has the unknown category 'Mal'. Did you mean: Male? Known: Female, Male"]
    assert _errors({"age": 39, "hours": 1.0, "sex": "Male", "sexx": 1}) == [
        "field 'sexx' is not an input of this model. Did you mean: sex?"]
    assert _errors({"age": None, "hours": None, "sex": "Male"}) == [
        "field 'age' must not be null (training data had no missing values here)"]
    assert _errors({"age": True, "hours": 1, "sex": "Male"}) == [
        "field 'age' must be an integer, got boolean true"]
    assert _errors([{"age": 1, "hours": 1, "sex": "Male"}] * 4) == [
        "the batch has 4 records, more than the limit of 3 (serving.max_batch); split it"]
    assert _errors([]) == ["the batch is empty: send one record (a JSON object) or a non-empty list "
                           "of records"]
    assert _errors("text") == ["the body must be one record (a JSON object) or a list of records, got "
                               "string"]
    assert _errors([{"age": 1, "hours": 1, "sex": "Male"}, 5]) == [
        "record 1 must be a JSON object of field: value, got number"]
    records, single = RequestValidator(SIG, 3).records({"age": 39.0, "hours": 2, "sex": "Male"})
    assert single and records == [{"age": 39, "hours": 2.0, "sex": "Male"}]


# --- settings ------------------------------------------------------------------------------------
def test_malformed_staging_yaml(proj, tmp_path):
    from omgmagics.deploy.settings import resolve_settings

    project, _ = proj
    bad = tmp_path / "staging.yaml"
    bad.write_text("port: [8081\nhost: x\n")
    with pytest.raises(ConfigError, match=re.escape(f"The serving config {bad} is not valid YAML at "
                                                    "line")):
        resolve_settings(project, "staging", str(bad))
    bad.write_text("prot: 8081\n")
    with pytest.raises(ConfigError, match=re.escape("staging.yaml: unknown key 'prot'. Did you mean: "
                                                    "port?")):
        resolve_settings(project, "staging", str(bad))
    bad.write_text("port: 70000\n")
    with pytest.raises(ConfigError, match=re.escape("'port' must be in 0..65535, got 70000.")):
        resolve_settings(project, "staging", str(bad))
    bad.write_text("log: {max_buffer: 0}\n")
    with pytest.raises(ConfigError, match=re.escape("'log.max_buffer' must be a positive integer, got "
                                                    "0.")):
        resolve_settings(project, "staging", str(bad))
    bad.write_text("port: 9999\nauth_token_env: OMG_TEST_TOKEN_UNSET\n")
    s = resolve_settings(project, "staging", str(bad))
    assert s.port == 9999 and s.sources[-1] == str(bad)
    with pytest.raises(ConfigError, match="names OMG_TEST_TOKEN_UNSET, which is not set"):
        s.token()


def test_canary_steps_must_end_at_100(proj):
    from omgmagics.deploy.settings import canary_settings

    project, _ = proj
    assert canary_settings(project)["steps"] == [10, 25, 50, 100]
    assert canary_settings(project)["max_latency_p99_ms"] == 2000.0  # the brief's bound
    with pytest.raises(ConfigError, match="serving.canary.steps must be increasing percentages"):
        canary_settings(project, {"steps": [10, 50]})


# --- manifests and docs --------------------------------------------------------------------------
def test_kserve_and_k8s_manifests(proj):
    import dataclasses

    from omgmagics.config import Config, deep_merge
    from omgmagics.deploy.rollout import cloud

    project, bundle = proj
    # The pods listen on 0.0.0.0: they always need a bearer token, from the Secret (the structure of
    # the security settings: tests/reliability/test_manifest_security.py). This test's own view of
    # the project names the token variable (the module's project stays unchanged).
    project = dataclasses.replace(project, config=Config(deep_merge(
        project.config, {"serving": {"production": {"auth_token_env": "OMG_P4_TOKEN"}}})))
    report = cloud(project, target="kserve", challenger=str(bundle))
    isvc = yaml.safe_load(Path(report.data["files"]["inferenceservice.yaml"]).read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    pred = isvc["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 10
    c = pred["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "STORAGE_URI", "value": "s3://CHANGE-ME/models/p4-model/1"} in c["env"]
    assert {"name": "OMG_P4_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "p4-model-token", "key": "token"}}} in c["env"]
    report = cloud(project, target="k8s", strategy="canary", challenger=str(bundle))
    docs = list(yaml.safe_load_all(Path(report.data["files"]["k8s.yaml"]).read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]  # nothing in production yet
    # With a bundle in production: stable (it) and canary (the new one) behind one Service.
    from omgmagics.deploy.state import record_production

    newer = Path(package_model(project, "champion").value)
    record_production(project, "production", bundle, "p4-model/1", "canary", "t", "promoted")
    report = cloud(project, target="k8s", strategy="canary", challenger=str(newer))
    docs = list(yaml.safe_load_all(Path(report.data["files"]["k8s.yaml"]).read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "p4-model-stable"), ("Deployment", "p4-model-canary"), ("Service", "p4-model")]
    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in docs[:2]]
    assert images == ["registry.example.com/p4-model:1", f"registry.example.com/p4-model:{newer.name}"]
    assert docs[0]["spec"]["replicas"] == 2 and docs[1]["spec"]["replicas"] == 1
    assert docs[2]["spec"]["ports"][0]["targetPort"] == 8080
    assert docs[2]["spec"]["selector"] == {"app.kubernetes.io/name": "p4-model", "omg/env": "production"}
    runbook = (project.docs_dir / "runbook.md").read_text()
    assert "omg deploy stop --env production" in runbook and "p99 latency above 2000 ms" in runbook
    adr = (project.decisions_dir / "adr-002-deployment-strategy.md").read_text()
    assert "10 % → 25 % → 50 % → 100 %" in adr and "target **k8s**" in adr


def test_production_pins_the_digest_it_rolled_out(proj, tmp_path):
    """H2: a bundle edited and re-signed after its rollout verified, and production served it."""
    from omgmagics.deploy.integrity import verify_bundle, write_manifest
    from omgmagics.deploy.serving import default_bundle
    from omgmagics.deploy.settings import resolve_settings
    from omgmagics.deploy.state import deployments_dir, production_bundle, record_production

    project, bundle = proj
    state = deployments_dir(project) / "production.json"
    before = state.read_text() if state.is_file() else None
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    try:
        record_production(project, "production", copy, "p4-model/1", "canary", "t", "promoted")
        assert json.loads(state.read_text())["digest"] == verify_bundle(copy)["digest"]
        assert production_bundle(project) == copy
        assert default_bundle(project, "production", resolve_settings(project, "production")) == copy
        handler = copy / "code" / "handler.py"
        handler = handler if handler.is_file() else next(copy.rglob("handler.py"))
        handler.write_text(handler.read_text() + "\nimport os  # planted\n")
        write_manifest(copy)  # re-signed: the bundle verifies on its own
        assert verify_bundle(copy)["ok"]
        with pytest.raises(DataError, match=re.escape(
                f"The bundle recorded in production ({copy.name}) is not the one rolled out: its "
                "digest is ")):
            default_bundle(project, "production", resolve_settings(project, "production"))
    finally:
        if before is None:
            state.unlink(missing_ok=True)
        else:
            state.write_text(before)


# --- prediction log ------------------------------------------------------------------------------
def test_prediction_log_whole_lines_and_bounded_buffer(tmp_path):
    from omgmagics.deploy.predlog import PredictionLog, read_log

    logs = [PredictionLog(tmp_path, "test", f"m/{i}", flush_records=7, flush_seconds=0.05).start()
            for i in range(2)]

    def write(log):
        for i in range(500):
            log.add(f"r{i}", {"age": i, "text": "x" * 300}, ">50K", 0.5, 1.0)

    threads = [threading.Thread(target=write, args=(lg,)) for lg in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lg in logs:
        lg.close()
    lines = [line for p in tmp_path.glob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(lines) == 1000 and all(json.loads(line)["inputs"]["text"] for line in lines)
    rec = read_log(tmp_path)[0]
    assert set(rec) == {"request_id", "time", "env", "model_version", "latency_ms", "status",
                        "inputs", "prediction", "score", "error"}
    assert rec["time"].endswith("+00:00")
    small = PredictionLog(tmp_path / "small", "t", "m", flush_records=10**6, flush_seconds=60,
                          max_buffer=5)
    for i in range(8):
        small.add(str(i), {}, 1, None, 0.1)
    assert small.buffered == 5 and small.dropped == 3


# --- the rollout policy --------------------------------------------------------------------------
def test_canary_policy_steps_promotes_and_splits_exactly():
    from omgmagics.deploy.router import Rollout

    events = []
    policy = Rollout([10, 50, 100], window=10, max_error_rate=0.1, max_latency_p99_ms=100,
                     on_event=events.append)
    picks = [policy.pick() for _ in range(100)]
    assert picks.count("challenger") == 10 and picks[9] == "challenger"
    for _ in range(10):
        policy.record(5.0, False)
    assert policy.share == 50 and events[-1]["event"] == "step"
    for _ in range(10):
        policy.record(5.0, False)
    for _ in range(10):
        policy.record(5.0, error=len(events) == 2 and _ == 0)  # one error allowed (10 %)
    assert policy.state == "promoted" and [e["event"] for e in events] == ["step", "step",
                                                                           "promoted"]
    assert policy.pick() == "challenger"


def test_canary_policy_rolls_back_at_once():
    from omgmagics.deploy.router import Rollout

    policy = Rollout([10, 100], window=100, max_error_rate=0.01, max_latency_p99_ms=50)
    policy.record(1.0, True)
    assert policy.state == "canary"  # 1 error in 100 is allowed
    policy.record(1.0, True)
    assert policy.state == "rolled_back" and policy.share == 0 and policy.pick() == "champion"
    assert policy.reason.startswith("challenger error rate over 1.00%: 2 error(s) in 2 request(s)")
    slow = Rollout([10, 100], window=100, max_error_rate=0.01, max_latency_p99_ms=50)
    slow.record(60.0, False)
    slow.record(70.0, False)
    assert slow.state == "rolled_back" and "p99 latency over 50 ms" in slow.reason


def test_nested_pipeline_with_a_custom_function_compiles_exactly(proj, val, monkeypatch):
    """Phase 2's stored shape: Pipeline([Pipeline([ColumnTransformer, AsFloat]), SelectColumns]);
    every branch compiles, the project's custom function is called directly."""
    from sklearn.pipeline import Pipeline

    from omgmagics.deploy.fastpath import CompiledPipeline
    from omgmagics.deploy.signature import build_signature
    from omgmagics.features.extract import extract_features
    from omgmagics.features.spec import check_spec
    from omgmagics.features.transformers import SelectColumns

    project, _ = proj
    monkeypatch.syspath_prepend(str(project.root))
    # this project's projectlib, not one an earlier test of this worker imported from elsewhere
    for name in [m for m in sys.modules if m == "projectlib" or m.startswith("projectlib.")]:
        monkeypatch.delitem(sys.modules, name)
    train = pd.read_parquet(project.processed_dir / "train.parquet")
    spec = check_spec({"features": [
        {"name": "num", "transform": "robust", "columns": ["age", "hours_per_week"]},
        {"name": "cat", "transform": "ordinal", "columns": ["workclass", "sex"]},
        {"name": "te", "transform": "target_encode", "columns": ["occupation"]},
        {"name": "miss", "transform": "missing_indicator", "columns": ["workclass"]},
        {"name": "net", "transform": "custom", "function": "projectlib.features.capital_net",
         "columns": ["capital_gain", "capital_loss"]}]})
    rep = extract_features(spec, {"train": train, "val": val}, "income")
    inner, raw_cols = rep.value["pipeline"], rep.value["raw_columns"]
    names = [c for c in rep.value["splits"]["train"].columns if c not in ("income", "row_id")]
    keep = names[::2]
    select = SelectColumns(tuple(keep)).fit(rep.value["splits"]["train"][names].head(5))
    pipe = Pipeline([("features", inner), ("select", select)]).set_output(transform="pandas")
    sig = build_signature(raw_cols, train)
    compiled = CompiledPipeline(pipe, sig)
    status = compiled.verify(val[list(raw_cols)])
    assert status["enabled"] and status["max_abs_diff"] == 0.0, status
    assert status["branches"] == {"numeric": 2, "lookup": 2, "custom": 1}, status
    assert compiled.names == keep
    from omgmagics.deploy.fastpath import _column_values

    sample = [dict(zip(raw_cols, row, strict=True)) for row in
              zip(*(_column_values(val[c].head(20)) for c in raw_cols), strict=True)]
    program = json.loads(json.dumps(compiled.to_program(sample)))  # plain JSON, no sklearn objects
    rebuilt = CompiledPipeline.from_program(program, {**sig, "sample": sample})
    cols = {c: _column_values(val[c]) for c in raw_cols}
    assert np.array_equal(rebuilt.transform(cols), np.asarray(pipe.transform(val[list(raw_cols)])))


def test_signed_bundles_refuse_an_edit_made_without_the_key(proj, tmp_path, monkeypatch):
    """With $OMG_BUNDLE_KEY set, packaging signs the manifest; a bundle edited and re-manifested by
    someone without the key, or with its signature removed, is refused before any of it runs."""
    from omgmagics.deploy.integrity import SIGNATURE_FILE, require_verified, write_manifest

    project, bundle = proj
    monkeypatch.setenv("OMG_BUNDLE_KEY", "k" * 32)
    signed = Path(package_model(project, str(project.root / "models" / "optimized"
                                             / "champion-onnx")).value)
    try:
        assert (signed / SIGNATURE_FILE).is_file()
        assert verify_bundle(signed)["signature"] == "valid"
        loaded = ServingBundle.load(signed, verify=True)
        assert len(loaded.predict_records(loaded.signature["sample"][:2])) == 2
        assert verify_bundle(bundle)["signature"] == "missing"  # packaged before the key was set
        with pytest.raises(DataError, match=re.escape(
                f"Bundle {bundle} is not signed, and $OMG_BUNDLE_KEY is set, so it was not loaded. "
                "Re-package the model with `omg deploy package` under the same key.")):
            ServingBundle.load(bundle, verify=True)
        edited = tmp_path / "edited"
        shutil.copytree(signed, edited)
        handler = next(edited.rglob("handler.py"))
        handler.write_text(handler.read_text() + "\nimport os  # planted\n")
        monkeypatch.delenv("OMG_BUNDLE_KEY")
        write_manifest(edited)  # the attacker re-manifests without the key
        assert verify_bundle(edited)["ok"] and verify_bundle(edited)["signature"] == "unchecked"
        monkeypatch.setenv("OMG_BUNDLE_KEY", "k" * 32)
        with pytest.raises(DataError, match=re.escape(
                f"Bundle {edited} has a signature that does not match its manifest (it was changed "
                "without the key, or signed with another key), and $OMG_BUNDLE_KEY is set, so it "
                "was not loaded.")):
            require_verified(edited)
        monkeypatch.setenv("OMG_BUNDLE_KEY", "short")
        with pytest.raises(UsageError, match=re.escape(
                "$OMG_BUNDLE_KEY is 5 characters long; a signing key needs at least 16 (make one "
                "with `openssl rand -hex 32`).")):
            verify_bundle(signed)
    finally:
        shutil.rmtree(signed, ignore_errors=True)
