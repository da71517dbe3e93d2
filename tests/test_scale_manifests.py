"""Cluster serving manifests (issue #9), validated structurally: ``--target kserve`` (an
InferenceService) and ``--target k8s`` (stable and canary Deployments behind one Service).

The manifests are built by :mod:`omgmagics.deploy.manifests` from a bundle's ``metadata.json`` and
the project's resolved serving settings (``serving.*`` and ``serving.kubernetes.*`` of omg.yaml), so
a bundle folder holding its metadata is all these tests need; `omg deploy cloud --target ...` end to
end on a packaged bundle is covered in tests/test_deploy_bundle.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from omgmagics.project import Project
from tests.helpers.modeling import make_project

PORT = 8080
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SERVING = """\
serving:
  auth_token_env: OMG_TOKEN
  canary: {steps: [10, 25, 50, 100]}
  kubernetes: {namespace: ml-prod, replicas: 2, cpu: "500m", memory: 768Mi%s}
"""


def _bundle(parent: Path, name: str, version: str) -> Path:
    path = parent / "models" / name / version
    path.mkdir(parents=True)
    (path / "metadata.json").write_text(json.dumps(
        {"name": name, "version": version, "model": {"type": "xgboost"}}))
    return path


def _build(tmp_path: Path, target: str, *, share: float | None = None, stable: str | None = None,
           version: str = "2", image: str | None = None, env: str = "production") -> dict:
    from omgmagics.deploy.manifests import write_manifests
    from omgmagics.deploy.settings import canary_settings, kubernetes_settings, resolve_settings

    extra = SERVING % (f", image: {json.dumps(image)}" if image else "")
    root = make_project(tmp_path / "demo", store=False, extra_yaml=extra)
    project = Project.at(root)
    new = _bundle(root, "churn-model", version)
    old = _bundle(root, "churn-model", stable) if stable else None
    first = share if share is not None else float(canary_settings(project)["steps"][0])
    files = write_manifests(project, new, target, env, first, resolve_settings(project, env),
                            kubernetes_settings(project), old)
    return {name: Path(path).read_text() for name, path in files.items()}


def _check_container(c: dict, bundle_dir: str, env_name: str = "production") -> None:
    assert c["ports"] == [{"containerPort": PORT, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": PORT}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": PORT}
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["periodSeconds"] > 0 and probe["timeoutSeconds"] > 0
    res = c["resources"]
    assert res["requests"] == {"cpu": "500m", "memory": "768Mi"}
    assert res["limits"] == {"cpu": "500m", "memory": "768Mi"}
    assert c["command"] == ["python", "-m", "omgmagics.deploy.server"]
    args = c["args"]
    assert args[args.index("--port") + 1] == str(PORT)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--bundle") + 1] == bundle_dir
    env = {e["name"]: e for e in c["env"]}
    assert args[args.index("--config-json") + 1] == "$(OMG_SERVER_CONFIG)"
    cfg = json.loads(env["OMG_SERVER_CONFIG"]["value"])
    assert cfg["env"] == env_name and cfg["auth_token_env"] == "OMG_TOKEN"
    # The prediction log goes to the mounted volume; the token comes from a Secret, never inline.
    mount = c["volumeMounts"][0]["mountPath"]
    assert cfg["log_folder"].startswith(mount + "/")
    assert "value" not in env["OMG_TOKEN"]
    # one secret per environment: a staging token never opens production
    secret = "churn-model-token" if env_name == "production" else f"churn-model-{env_name}-token"
    assert env["OMG_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "token"}
    assert ":" in c["image"].rsplit("/", 1)[-1] and not c["image"].endswith(":latest")


def _check_labels(labels: dict) -> None:
    for key, value in labels.items():
        assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)


def _check_pod_volumes(spec: dict, container: dict) -> None:
    assert {m["name"] for m in container["volumeMounts"]} <= {v["name"] for v in spec["volumes"]}


def test_kserve_inference_service(tmp_path):
    files = _build(tmp_path, "kserve")
    assert set(files) == {"inferenceservice.yaml"}
    docs = list(yaml.safe_load_all(files["inferenceservice.yaml"]))
    assert len(docs) == 1
    isvc = docs[0]
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    meta = isvc["metadata"]
    assert meta["name"] == "churn-model" and DNS_1123.match(meta["name"])
    assert meta["namespace"] == "ml-prod"
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    _check_labels(meta["labels"])
    assert meta["labels"]["omg/model-version"] == "churn-model-2"
    pred = isvc["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 10  # the first canary step of omg.yaml
    assert 1 <= pred["minReplicas"] == 2 <= pred["maxReplicas"]
    (c,) = pred["containers"]
    assert c["name"] == "kserve-container"  # the name KServe requires of a custom predictor
    _check_container(c, "/mnt/models")
    _check_pod_volumes(pred, c)
    assert c["image"] == "registry.example.com/churn-model:2"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["STORAGE_URI"] == "s3://CHANGE-ME/models/churn-model/2"


@pytest.mark.parametrize("share,percent", [(10, 10), (100, 100)])
def test_kserve_canary_percent_follows_the_first_share(tmp_path, share, percent):
    isvc = yaml.safe_load(_build(tmp_path, "kserve", share=share)["inferenceservice.yaml"])
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == percent


def _k8s(files: dict, service_name: str = "churn-model") -> tuple[list[dict], dict]:
    docs = list(yaml.safe_load_all(files["k8s.yaml"]))
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    for d in deployments:
        assert d["apiVersion"] == "apps/v1"
        assert DNS_1123.match(d["metadata"]["name"]) and len(d["metadata"]["name"]) <= 63
        assert d["metadata"]["namespace"] == "ml-prod"
        spec = d["spec"]
        template_labels = spec["template"]["metadata"]["labels"]
        # The selector picks exactly this Deployment's pods; the Service picks every track's.
        assert spec["selector"]["matchLabels"].items() <= template_labels.items()
        assert service["spec"]["selector"].items() <= template_labels.items()
        _check_labels(template_labels)
        _check_labels(d["metadata"]["labels"])
        (c,) = spec["template"]["spec"]["containers"]
        version = template_labels["omg/model-version"].rsplit("-", 1)[1]
        _check_container(c, f"/models/churn-model/{version}", template_labels["omg/env"])
        _check_pod_volumes(spec["template"]["spec"], c)
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments]
    assert len(set(selectors)) == len(selectors)  # no two Deployments fight over pods
    assert (service["apiVersion"], service["metadata"]["name"]) == ("v1", service_name)
    assert service["metadata"]["namespace"] == "ml-prod"
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == PORT and port["port"] == 80 and port["protocol"] == "TCP"
    return deployments, service


def test_k8s_first_deployment_is_one_stable_track(tmp_path):
    files = _build(tmp_path, "k8s")
    assert set(files) == {"k8s.yaml", "Dockerfile"}
    deployments, _ = _k8s(files)
    assert [(d["metadata"]["name"], d["spec"]["replicas"]) for d in deployments] == [
        ("churn-model-stable", 2)]
    assert "one track: nothing in production yet" in files["k8s.yaml"]
    docker = files["Dockerfile"]
    assert docker.startswith("# The serving image of bundle churn-model/2.\nFROM python:3.11-slim")
    assert "COPY . /models/churn-model/2\n" in docker and f"EXPOSE {PORT}\n" in docker
    cmd = json.loads(docker.split("CMD ", 1)[1])
    assert cmd[:3] == ["python", "-m", "omgmagics.deploy.server"]
    assert cmd[cmd.index("--bundle") + 1] == "/models/churn-model/2"
    assert cmd[cmd.index("--port") + 1] == str(PORT)


def test_k8s_canary_splits_replicas(tmp_path):
    files = _build(tmp_path, "k8s", stable="1")
    deployments, _ = _k8s(files)
    tracks = {d["metadata"]["labels"]["omg/track"]: d for d in deployments}
    assert [d["metadata"]["name"] for d in deployments] == ["churn-model-stable",
                                                            "churn-model-canary"]
    assert tracks["stable"]["spec"]["replicas"] == 2 and tracks["canary"]["spec"]["replicas"] == 1
    images = {t: d["spec"]["template"]["spec"]["containers"][0]["image"] for t, d in tracks.items()}
    assert images == {"stable": "registry.example.com/churn-model:1",
                      "canary": "registry.example.com/churn-model:2"}
    # The header states the share the replica split really gives, not only the one asked for.
    assert "canary 1 of 3 replicas = 33% of the traffic; 10% asked" in files["k8s.yaml"]
    files = _build(tmp_path / "half", "k8s", stable="1", share=50)
    deployments, _ = _k8s(files)
    assert [d["spec"]["replicas"] for d in deployments] == [2, 2]


def test_k8s_blue_green_moves_all_replicas(tmp_path):
    deployments, _ = _k8s(_build(tmp_path, "k8s", stable="1", share=100))
    assert [(d["metadata"]["labels"]["omg/track"], d["spec"]["replicas"]) for d in deployments] == [
        ("stable", 0), ("canary", 2)]


@pytest.mark.parametrize("image,expected", [
    ("ghcr.io/acme/churn", "ghcr.io/acme/churn:{v}"),
    ("localhost:5000/churn", "localhost:5000/churn:{v}"),
    ("ghcr.io/acme/churn:serving-{version}", "ghcr.io/acme/churn:serving-{v}"),
    ("ghcr.io/acme/churn:pinned", "ghcr.io/acme/churn:pinned"),
])
def test_configured_image_is_tagged_per_bundle(tmp_path, image, expected):
    files = _build(tmp_path, "k8s", stable="1", image=image)
    deployments, _ = _k8s(files)
    got = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments]
    assert got == [expected.format(v=1), expected.format(v=2)]
    isvc = yaml.safe_load(_build(tmp_path / "ks", "kserve", image=image)["inferenceservice.yaml"])
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == expected.format(v=2)


def test_labels_stay_valid_for_any_version(tmp_path):
    version = "2026.11.27+build_7-" + "x" * 60
    isvc = yaml.safe_load(_build(tmp_path, "kserve", version=version)["inferenceservice.yaml"])
    labels = isvc["metadata"]["labels"]
    _check_labels(labels)
    assert labels["omg/model-version"].startswith("churn-model-2026.11.27-build_7-x")


def _matches(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def test_staging_and_production_share_a_namespace_without_sharing_pods(tmp_path):
    prod = _k8s(_build(tmp_path / "p", "k8s", stable="1"))
    staging = _k8s(_build(tmp_path / "s", "k8s", stable="1", env="staging"),
                   service_name="churn-model-staging")
    names = {env: {(d["kind"], d["metadata"]["name"]) for d in [*deps, svc]}
             for env, (deps, svc) in (("production", prod), ("staging", staging))}
    assert names["staging"] == {("Deployment", "churn-model-staging-stable"),
                                ("Deployment", "churn-model-staging-canary"),
                                ("Service", "churn-model-staging")}
    assert not names["production"] & names["staging"]  # `kubectl apply` of one never replaces the other
    for (deps, svc), (other_deps, _) in ((prod, staging), (staging, prod)):
        pods = [d["spec"]["template"]["metadata"]["labels"] for d in other_deps]
        assert not any(_matches(svc["spec"]["selector"], labels) for labels in pods)
        for d in deps:
            assert not any(_matches(d["spec"]["selector"]["matchLabels"], labels) for labels in pods)
    # the same model and images in both: only the resources are per environment
    assert {d["metadata"]["labels"]["app.kubernetes.io/name"] for d in prod[0] + staging[0]} == {
        "churn-model"}
    assert [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in staging[0]] == [
        d["spec"]["template"]["spec"]["containers"][0]["image"] for d in prod[0]]
    isvc = yaml.safe_load(_build(tmp_path / "ks", "kserve", env="staging")["inferenceservice.yaml"])
    assert isvc["metadata"]["name"] == "churn-model-staging"
    assert isvc["metadata"]["labels"]["omg/env"] == "staging"
