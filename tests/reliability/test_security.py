"""Security: verified bundles in safe formats, no pickled code, exposure needs a token, configurable
input limits, no secret in any artifact, escaped HTML.

Covered elsewhere (not repeated here): a bundle with a changed/added file is refused
(tests/test_deploy_bundle.py::test_tampered_bundle_is_never_loaded), a skops file with foreign types
is refused (tests/test_modeling_formats.py::test_skops_file_with_foreign_types_is_refused), the bearer
token (401 without / with a wrong token, 200 with the right one, probes open) and the default limits
(413 over 8 MiB, 422 over 1024 records) in tests/test_deploy_server.py, escaping in Report HTML
(tests/test_datasets_results.py) and in the review site (tests/test_review.py).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from omgmagics.deploy.bundle import ServingBundle
from omgmagics.deploy.integrity import verify_bundle, write_manifest
from omgmagics.deploy.packaging import package_model
from omgmagics.errors import ConfigError, DataError
from omgmagics.project import Project
from tests.helpers.deploy import children, copy_project, kill_tree, rel, shared, stop_all

OMG = Path(__file__).resolve().parents[2] / "omgmagics"


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file appears if any code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    data = shared(tmp_path_factory)
    root = copy_project(data["root"], tmp_path_factory.mktemp("security"))
    project = Project.at(root)
    bundles = {"xgboost": Path(package_model(project, rel(data["refs"], root, "xgb")).value),
               "mlp": Path(package_model(project, rel(data["refs"], root, "mlp")).value)}
    yield project, bundles
    stop_all(root)


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # noqa: S301 - proves the payload would run
    assert marker.exists()


@pytest.mark.parametrize("family, file", [("xgboost", "model.ubj"), ("mlp", "model.pt")])
@pytest.mark.parametrize("resign", [False, True], ids=["stale-manifest", "re-signed-manifest"])
def test_planted_pickle_in_a_bundle_is_refused_before_any_code_runs(proj, tmp_path, run_cli, family,
                                                                    file, resign):
    project, bundles = proj
    bad = tmp_path / "bundle"
    shutil.copytree(bundles[family], bad)
    marker = tmp_path / "pwned"
    target = bad / "data/omg/model" / file
    assert target.is_file()
    target.write_bytes(pickle.dumps(Payload(marker)))
    rel_file = f"data/omg/model/{file}"
    if not resign:
        with pytest.raises(DataError, match=re.escape(
                f"Bundle {bad} failed verification (changed: {rel_file}): its files do not match "
                "manifest.json, so it was not loaded.")):
            ServingBundle.load(bad)
        code, _, err = run_cli(["deploy", "package", "--verify", str(bad)], cwd=project.root)
        assert code == 1 and f"failed verification: changed: {rel_file}" in err
    else:
        write_manifest(bad)  # an attacker who can also rewrite manifest.json
        assert verify_bundle(bad)["ok"]
        with pytest.raises(DataError, match=re.escape(
                f"Model file {bad / rel_file} is not a valid {family} model file, so it was not "
                "loaded (")) as info:
            ServingBundle.load(bad)
        assert "The kit loads only safe formats (no pickled code)" in str(info.value)
        # the MLflow pyfunc flavour of the bundle goes through the same loader
        import mlflow.pyfunc

        with pytest.raises(Exception) as info:  # noqa: PT011 - mlflow may wrap the error
            mlflow.pyfunc.load_model(str(bad))
        assert "is not a valid" in str(info.value)
        # and a server process refuses to start on it, leaving nothing running
        from omgmagics.deploy.serving import serve

        before = children()
        with pytest.raises(Exception, match="is not a valid"):  # noqa: PT011 - ServerError
            serve(project, "sec", port=0, bundle=str(bad), background=True)
        assert children() <= before
    assert not marker.exists(), "the planted pickle ran"


def test_torch_files_are_loaded_with_weights_only(tmp_path):
    """Every torch.load of the kit passes weights_only=True, and such a load refuses pickled code."""
    import torch

    calls = [(p, line) for p in OMG.rglob("*.py") for line in p.read_text().splitlines()
             if "torch.load(" in line and not line.lstrip().startswith(("#", "``"))
             and "weights_only" not in line.split("#")[0]]
    assert [c for c in calls if "Saved with" not in c[1]] == [], calls
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pt"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_no_pickle_loader_in_the_kit():
    """No module of the kit unpickles: models and pipelines use xgboost/LightGBM text, skops with a
    trusted-type check, torch state dicts, ONNX."""
    pattern = re.compile(r"\b(pickle|cPickle|dill|cloudpickle|joblib)\.loads?\(|pd\.read_pickle\(")
    found = [f"{p.relative_to(OMG)}: {line.strip()}" for p in OMG.rglob("*.py")
             for line in p.read_text().splitlines() if pattern.search(line)]
    assert found == []


def test_exposed_address_needs_a_token(proj, monkeypatch, tmp_path):
    from omgmagics.deploy.serving import serve

    project, bundles = proj
    before = children()
    with pytest.raises(ConfigError, match=re.escape(
            "Serving on 0.0.0.0 would let other machines call the model without auth. Set "
            "serving.auth_token_env to the name of an environment variable holding a bearer token, "
            "or bind 127.0.0.1 (the default).")):
        serve(project, "exposed", host="0.0.0.0", port=0, bundle=str(bundles["xgboost"]),
              background=True)
    cfg = tmp_path / "exposed.yaml"
    cfg.write_text("host: 0.0.0.0\nauth_token_env: OMG_SECURITY_UNSET_TOKEN\n")
    monkeypatch.delenv("OMG_SECURITY_UNSET_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="names OMG_SECURITY_UNSET_TOKEN, which is not set"):
        serve(project, "exposed", str(cfg), port=0, bundle=str(bundles["xgboost"]), background=True)
    assert children() <= before
    # the default is loopback
    from omgmagics.deploy.settings import resolve_settings

    assert resolve_settings(project, "staging").host == "127.0.0.1"


def test_configured_body_and_batch_limits(proj, tmp_path):
    """Limits come from the serving config: over max_body_mb -> 413, over max_batch -> 422."""
    from omgmagics.deploy.serving import serve
    from omgmagics.deploy.staging import split_valid

    project, bundles = proj
    bundle = bundles["xgboost"]
    _, valid, _ = split_valid(ServingBundle.load(bundle),
                              pd.read_parquet(project.processed_dir / "val.parquet"))
    cfg = tmp_path / "limits.yaml"
    cfg.write_text("max_batch: 3\nmax_body_mb: 0.002\n")  # 2,097 bytes
    report = serve(project, "limits", str(cfg), port=0, bundle=str(bundle), background=True)
    pid, url = report.summary["pid"], report.summary["url"]
    try:
        assert httpx.post(url + "/predict", json=valid[:3]).status_code == 200
        r = httpx.post(url + "/predict", json=valid[:4])
        assert r.status_code == 422
        assert r.json()["detail"][0]["msg"].startswith("the batch has 4 records, more than the limit of 3")
        big = httpx.post(url + "/predict", content=b"[" + b" " * 4000 + b"]",
                         headers={"content-type": "application/json"})
        assert big.status_code == 413 and "exceeds the limit of 2097 bytes" in big.json()["detail"]
        # a chunked body (no Content-Length) is cut off at the limit too
        chunked = httpx.post(url + "/predict", content=iter([b"[", b" " * 3000, b"]"]),
                             headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert httpx.post(url + "/predict", json=valid[0]).status_code == 200  # still serving
    finally:
        kill_tree(pid)


SECRETS = {"local": "PLANTED-LOCAL-SECRET-7f3a", "token": "PLANTED-TOKEN-SECRET-91c2",
           "env": "PLANTED-ENV-SECRET-4be8"}


def test_no_secret_in_any_file_after_a_run(tmp_path, tmp_path_factory, monkeypatch, run_cli):
    """Secrets in omg.local.yaml and the environment never reach reports, logs, MLflow or runs."""
    data = shared(tmp_path_factory)
    root = copy_project(data["root"], tmp_path)
    (root / "omg.local.yaml").write_text(
        f"tuning:\n  storage: postgresql://omg:{SECRETS['local']}@127.0.0.1:9/optuna\n"
        "serving:\n  auth_token_env: OMG_PLANTED_TOKEN\n")
    monkeypatch.setenv("OMG_PLANTED_TOKEN", SECRETS["token"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["env"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRETS["env"])
    (root / "fast.yaml").write_text("validation: {rows: 100, load_requests: 100, load_rps: 50, "
                                    "concurrency: 2}\n")
    steps = [["train", "baseline", "--cv", "2", "--models", "dummy,linear", "-q"],
             ["deploy", "package", "--model", rel(data["refs"], root, "xgb"), "-q"],
             ["deploy", "serve", "--env", "staging", "--config", "fast.yaml", "--port", "0",
              "--validate", "-q"],
             ["ml", "status"], ["ml", "report", "-q"]]
    try:
        for argv in steps:
            code, out, err = run_cli(argv, cwd=root)
            assert code == 0, (argv, out, err)
    finally:
        stop_all(root)
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "omg.local.yaml"]
    assert any(p.name == "mlflow.db" for p in files) and any("predictions" in str(p) for p in files)
    leaks = {f"{p.relative_to(root)}: {name}" for p in files for name, s in SECRETS.items()
             if s.encode() in p.read_bytes()}
    assert leaks == set()


SCRIPT = "<script>alert(1)</script>"


def _dom(page: str) -> tuple[str, list[str], str]:
    """(text inside <script> elements, on* handler attributes with 'alert', visible text)."""
    from html.parser import HTMLParser

    class Walk(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.in_script, self.scripts, self.handlers, self.text = False, [], [], []

        def handle_starttag(self, tag, attrs):
            self.in_script = tag == "script"
            self.handlers += [f"{k}={v}" for k, v in attrs
                              if k.startswith("on") and "alert" in (v or "")]

        def handle_endtag(self, tag):
            if tag == "script":
                self.in_script = False

        def handle_data(self, data):
            (self.scripts if self.in_script else self.text).append(data)

    w = Walk()
    w.feed(page)
    return "".join(w.scripts), w.handlers, "".join(w.text)


def _assert_inert(page: str, shown: bool = True) -> None:
    scripts, handlers, text = _dom(page)
    assert "alert(" not in scripts, "user data ran as a script"
    assert handlers == [], handlers
    if shown:  # the column name is on the page, as text
        assert "<script>alert(1)</script>" in text or "&lt;script&gt;alert(1)" in text


def test_user_data_is_escaped_in_generated_html(demo_project, run_cli, ipython):
    df = pd.DataFrame({"age": [25, 38, 47, 52, 29, 61] * 10,
                       SCRIPT: ["<b>x</b>", "<img src=x onerror=alert(2)>",
                                'y" onmouseover="alert(3)'] * 20,
                       "sex": ["Male", "Female"] * 30, "race": ["White", "Black", "Other"] * 20,
                       "income": ["<=50K", ">50K", "<=50K"] * 20})
    csv = demo_project / "xss.csv"
    df.to_csv(csv, index=False)
    # the data audit's HTML report (fg-data-profiling + the kit's checklist)
    code, _, err = run_cli(["data", "validate", "--data", str(csv), "--audit", "--report",
                            "reports/xss_audit.html", "-q"], cwd=demo_project)
    assert code == 0, err
    _assert_inert((demo_project / "reports" / "xss_audit.html").read_text())
    # the validation reports shown in a notebook (Report._repr_html_)
    os.chdir(demo_project)
    ipython.run_cell(f"%omgdata validate --data {csv} --infer --schema xss.yaml --out inferred -q")
    ipython.run_cell(f"%omgdata validate --data {csv} --schema xss.yaml --out checked -q")
    for name in ("inferred", "checked"):
        rep = ipython.user_ns[name]
        _assert_inert(rep._repr_html_(), shown=name == "inferred")  # "checked": no violation


@pytest.mark.parametrize("env", ["../../../x", "a/b", "", ".hidden", "x" * 65, "prod\n"])
def test_env_names_are_checked_wherever_they_become_a_path(tmp_path, env):
    """L1: `deploy stop --env ../../../x` reached a JSON file outside the project."""
    from omgmagics.deploy.process import stop_env

    outside = tmp_path / "x.json"
    outside.write_text("{}")
    project = type("P", (), {"root": tmp_path / "a" / "b" / "c"})()
    with pytest.raises(ConfigError, match=re.escape(
            f"--env must be a name of letters, digits, '-' or '_', got {env!r}.")):
        stop_env(project, env)
    assert outside.exists()


def test_the_project_gitignore_keeps_request_inputs_and_local_state_out():
    lines = (OMG / "templates" / "project" / "gitignore").read_text().splitlines()
    assert {"monitoring/predictions/", ".omg/", "omg.local.yaml", ".env"} <= set(lines)


def test_no_uri_secret_in_what_the_plan_and_the_ui_show_or_write(demo_project, run_cli):
    """M6: tracking.uri and tuning.storage passwords were written verbatim into docs/project_plan.md
    and printed by `omg ml ui`."""
    secret = "S3CRETpw"
    (demo_project / "omg.local.yaml").write_text(
        f"tracking:\n  uri: https://omg:{secret}@127.0.0.1:9/?token={secret}\n"
        f"tuning:\n  storage: postgresql://omg:{secret}@127.0.0.1:9/optuna\n")
    shown = []
    for argv in (["ml", "feasibility", "-q"], ["ml", "plan"], ["ml", "ui"]):
        code, out, err = run_cli(argv, cwd=demo_project)
        assert code == 0, (argv, out, err)
        shown.append(out + err)
    assert "https://omg:***@127.0.0.1:9/?token=***" in shown[2]
    assert "postgresql://omg:***@127.0.0.1:9/optuna" in (demo_project / "docs" /
                                                        "project_plan.md").read_text()
    files = [p for p in demo_project.rglob("*") if p.is_file() and p.name != "omg.local.yaml"]
    assert [str(p.relative_to(demo_project)) for p in files if secret.encode() in p.read_bytes()] == []
    assert all(secret not in text for text in shown)


@pytest.mark.parametrize("uri, shown", [
    ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
    ("https://mlflow.example/?api_key=abc&run=1", "https://mlflow.example/?api_key=***&run=1"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("https://user@host/", "https://user@host/"),
])
def test_redact_uri(uri, shown):
    from omgmagics.redact import redact_uri

    assert redact_uri(uri) == shown


@pytest.mark.parametrize("argv", [["train", "compare"], ["train", "evaluate"], ["optim", "quantize"]])
def test_a_verb_that_fails_for_want_of_runs_leaves_no_empty_store(demo_project, run_cli, argv):
    code, out, err = run_cli(argv, cwd=demo_project)
    assert code != 0 and "error:" in err
    assert not (demo_project / "mlflow.db").exists()


def test_the_server_itself_refuses_a_non_loopback_bind_without_a_token(proj):
    """The rule holds in the server process too, not only in `omg deploy serve` (the cluster
    manifests start the server directly)."""
    import json
    import subprocess
    import sys

    _, bundles = proj
    cfg = {"env": "exposed", "auth_token_env": None, "host": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "omgmagics.deploy.server", "--bundle",
                           str(bundles["xgboost"]), "--config-json", json.dumps(cfg),
                           "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == (
        "omg server: serving on 0.0.0.0 lets other machines call the model: set "
        "serving.auth_token_env to the name of an environment variable holding a bearer token, or "
        "bind 127.0.0.1.")


@pytest.mark.parametrize("argv", [["data", "collect", "--output", "../../x"],
                                  ["data", "validate", "--audit", "--report", "../audit.html"],
                                  ["data", "validate", "--infer", "--schema", "../schema.yaml"],
                                  ["train", "card", "--output", "docs/../../card.md"],
                                  ["optim", "quantize", "--output", "../q"]])
def test_a_relative_output_may_not_climb_out_of_the_project(demo_project, run_cli, argv):
    code, out, err = run_cli(argv, cwd=demo_project)
    flag, value = argv[-2:]
    full = (demo_project / value).resolve()
    assert code == 2
    assert err.strip().endswith(
        f"{flag} {value} resolves to {full}, outside the project {demo_project.resolve()}. Give a "
        "path inside the project, or an absolute path to write there on purpose.")
    assert not full.exists() and not any(demo_project.parent.parent.glob("x*"))
