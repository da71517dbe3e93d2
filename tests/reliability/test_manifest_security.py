"""Security of the cluster manifests (finding M5): `omg deploy cloud --target kserve|k8s`.

A container listens on 0.0.0.0, which other pods and machines reach, so:

- the containers always need a bearer token: the Deployment / InferenceService takes it from a
  Secret (``secretKeyRef``), into ``serving.auth_token_env`` or ``OMG_BEARER_TOKEN`` when that is
  null (the pods then do not start until the Secret exists: fail closed), and its value appears in
  no file;
- every container runs as a non-root user, without privilege escalation or capabilities, with the
  RuntimeDefault seccomp profile, on a read-only root filesystem, and the places the server writes
  (the prediction log, TMPDIR, HOME) are ``emptyDir`` volumes;
- the Dockerfile creates a non-root user, gives it only the log folder and ends with ``USER``.

The project is a copy of the phase 4 session project (tests/helpers/deploy.py) with two real
packaged bundles; the token is configured the documented way, in ``omg.local.yaml``. The structure
of the rest of the manifests is covered by tests/test_scale_manifests.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from omgmagics.deploy.packaging import package_model
from omgmagics.project import Project
from tests.helpers.deploy import copy_project, rel, shared

TOKEN_ENV = "OMG_MANIFEST_TOKEN"
TOKEN_VALUE = "planted-manifest-token-7f3a9c1e"  # exported while generating, searched for
UID = 10001
# Knative (KServe serverless) refuses these as mount paths.
KNATIVE_RESERVED = {"/", "/dev", "/dev/log", "/tmp", "/var", "/var/log"}
CONTAINER_SECURITY = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                      "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A project copy with two bundles: p4-model/1 (xgboost v1) and p4-model/2 (xgboost v2)."""
    data = shared(tmp_path_factory)
    root = copy_project(data["root"], tmp_path_factory.mktemp("manifest-security"))
    project = Project.at(root)
    for ref in ("xgb", "xgb2"):
        package_model(project, rel(data["refs"], root, ref))
    return root


def _project(root: Path, local: str | None) -> Project:
    """The project with `local` as its omg.local.yaml (None: no override); deploy/ emptied."""
    import shutil

    path = root / "omg.local.yaml"
    if local is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(local)
    shutil.rmtree(root / "deploy", ignore_errors=True)
    return Project.at(root)


def _bundle(root: Path, version: str) -> str:
    return str(root / "models" / "p4-model" / version)


def _generate(root: Path, target: str, *, stable: bool = False, env: str = "production") -> dict:
    """Run `deploy cloud --target TARGET` with the token configured; {file name: text}."""
    from omgmagics.deploy.rollout import cloud
    from omgmagics.deploy.state import record_production

    project = _project(root, f"serving:\n  auth_token_env: {TOKEN_ENV}\n")
    state = Path(project.monitoring_dir) / "deployments" / f"{env}.json"
    state.unlink(missing_ok=True)
    if stable:  # p4-model/1 in production: stable (it) and canary (p4-model/2) tracks
        record_production(project, env, Path(_bundle(root, "1")), "p4-model/1", "canary", "t",
                           "promoted")
    try:
        report = cloud(project, env=env, target=target, challenger=_bundle(root, "2"))
    finally:
        state.unlink(missing_ok=True)
    return {name: Path(path).read_text() for name, path in report.data["files"].items()}


def _pods(files: dict) -> list[tuple[dict, bool]]:
    """(pod spec, whether it is a KServe predictor) of every workload in the manifests."""
    if "inferenceservice.yaml" in files:
        (isvc,) = yaml.safe_load_all(files["inferenceservice.yaml"])
        return [(isvc["spec"]["predictor"], True)]
    docs = list(yaml.safe_load_all(files["k8s.yaml"]))
    return [(d["spec"]["template"]["spec"], False) for d in docs if d["kind"] == "Deployment"]


# --- no token configured: the containers still need one ------------------------------------------
@pytest.mark.parametrize("target", ["kserve", "k8s"])
@pytest.mark.parametrize("env", ["production", "staging"])
def test_without_a_configured_token_the_pods_still_require_one(root, target, env):
    """serving.auth_token_env null: the containers read OMG_BEARER_TOKEN from the Secret, so a pod
    never serves on 0.0.0.0 without a token (it does not start until the Secret exists)."""
    from omgmagics.deploy.rollout import cloud

    secret = "p4-model-token" if env == "production" else f"p4-model-{env}-token"
    project = _project(root, None)
    assert project.config.get_path("serving.auth_token_env") is None
    state = Path(project.monitoring_dir) / "deployments" / f"{env}.json"
    state.unlink(missing_ok=True)
    report = cloud(project, env=env, target=target, challenger=_bundle(root, "2"))
    files = {name: Path(path).read_text() for name, path in report.data["files"].items()}
    for pod, _ in _pods(files):
        (c,) = pod["containers"]
        env_vars = {e["name"]: e for e in c["env"]}
        assert env_vars["OMG_BEARER_TOKEN"] == {"name": "OMG_BEARER_TOKEN", "valueFrom": {
            "secretKeyRef": {"name": secret, "key": "token"}}}
        assert json.loads(env_vars["OMG_SERVER_CONFIG"]["value"])["auth_token_env"] == \
            "OMG_BEARER_TOKEN"
    if target == "k8s":
        assert "-e OMG_BEARER_TOKEN=TOKEN" in files["Dockerfile"]


# --- the token comes from a Secret ---------------------------------------------------------------
@pytest.mark.parametrize("target", ["kserve", "k8s"])
def test_the_token_comes_from_a_secret_and_is_never_written(root, target, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN_VALUE)
    files = _generate(root, target, stable=target == "k8s")
    for text in files.values():
        assert TOKEN_VALUE not in text
    pods = _pods(files)
    assert len(pods) == (1 if target == "kserve" else 2)
    for pod, _ in pods:
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env[TOKEN_ENV] == {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
            "name": "p4-model-token", "key": "token"}}}
        assert json.loads(env["OMG_SERVER_CONFIG"]["value"])["auth_token_env"] == TOKEN_ENV
        assert all(e["value"] != TOKEN_VALUE for e in c["env"] if "value" in e)
        args = c["args"]
        assert args[args.index("--host") + 1] == "0.0.0.0"
    # The header says how to create the Secret the manifests read.
    name = "inferenceservice.yaml" if target == "kserve" else "k8s.yaml"
    assert ("#   kubectl -n default create secret generic p4-model-token "
            "--from-literal=token=") in files[name]


def test_each_environment_reads_its_own_secret(root):
    files = _generate(root, "k8s", env="staging")
    ((pod, _),) = _pods(files)
    (c,) = pod["containers"]
    ref = {e["name"]: e for e in c["env"]}[TOKEN_ENV]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "p4-model-staging-token", "key": "token"}


# --- unprivileged containers on a read-only root -------------------------------------------------
@pytest.mark.parametrize("target", ["kserve", "k8s"])
def test_every_container_runs_unprivileged(root, target):
    files = _generate(root, target, stable=target == "k8s")
    for pod, kserve in _pods(files):
        for c in pod["containers"]:
            assert c["securityContext"] == CONTAINER_SECURITY
        if kserve:
            # Knative refuses a pod-level securityContext unless its podspec-securitycontext flag
            # is on: everything the pod-level one would say is on the container.
            assert "securityContext" not in pod
        else:
            sc = pod["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == UID
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False  # the server needs no API access


@pytest.mark.parametrize("target", ["kserve", "k8s"])
def test_the_server_writes_only_to_mounted_volumes(root, target):
    files = _generate(root, target, stable=target == "k8s")
    for pod, kserve in _pods(files):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (c,) = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        for path, volume in mounts.items():
            assert volumes[volume] == {"name": volume, "emptyDir": {}}, path
        assert not any(m.get("readOnly") for m in c["volumeMounts"])
        if kserve:
            assert not set(mounts) & KNATIVE_RESERVED
        env = {e["name"]: e.get("value") for e in c["env"]}
        cfg = json.loads(env["OMG_SERVER_CONFIG"])
        # what the server writes (omgmagics/deploy/server.py main, predlog.py): the prediction log
        # folder; Python's and the libraries' temporary and cache files go to TMPDIR / HOME
        for where in (cfg["log_folder"], env["TMPDIR"], env["HOME"]):
            assert any(where == m or where.startswith(m.rstrip("/") + "/") for m in mounts), where


# --- the Dockerfile ------------------------------------------------------------------------------
def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_dockerfile_runs_as_a_non_root_user(root, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN_VALUE)
    files = _generate(root, "k8s")
    docker = files["Dockerfile"]
    assert TOKEN_VALUE not in docker
    steps = _instructions(docker)
    kinds = [k for k, _ in steps]
    assert kinds[0] == "FROM" and kinds[-1] == "CMD"
    users = [i for i, k in enumerate(kinds) if k == "USER"]
    assert users, "the image must not run as root"
    last_user = users[-1]
    assert last_user > max(i for i, k in enumerate(kinds) if k in ("RUN", "COPY", "ADD"))
    uid, _, gid = steps[last_user][1].partition(":")
    assert uid.isdigit() and int(uid) == UID and gid in ("", str(UID))
    # the user is created with that uid, and owns only the prediction log folder
    runs = " && ".join(a for k, a in steps if k == "RUN")
    commands = [shlex.split(c) for c in runs.split("&&")]
    useradd = next(c for c in commands if c[0] == "useradd")
    assert useradd[useradd.index("--uid") + 1] == str(UID)
    chowned = [c[-1] for c in commands if c[0] == "chown"]
    assert chowned == ["/var/log/omg"]
    cmd = json.loads(steps[-1][1])
    cfg = json.loads(cmd[cmd.index("--config-json") + 1])
    assert cfg["log_folder"].startswith("/var/log/omg/") and cfg["auth_token_env"] == TOKEN_ENV
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    # the bundle itself stays root's (read-only to the server)
    assert not any(c[0] == "chown" and c[-1].startswith("/models") for c in commands)
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "TMPDIR=/tmp" in env and "HOME=/tmp" in env


# --- the container's command starts the real server ----------------------------------------------
def test_the_container_command_serves_with_the_token_and_writes_only_to_its_volumes(root, tmp_path):
    """The stable Deployment's container, run as written (command, args, config, env), with each
    mount path mapped to a folder of its own and the token the Secret would hold: the server starts
    on 0.0.0.0, answers only with the token, and writes only into the mounted folders."""
    import secrets
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from omgmagics.deploy.integrity import verify_bundle
    from tests.helpers.deploy import kill_tree

    files = _generate(root, "k8s")
    ((pod, _),) = _pods(files)
    (c,) = pod["containers"]
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in c["volumeMounts"]}
    for folder in mounts.values():
        folder.mkdir()

    def mapped(path: str) -> str:
        for mount, folder in mounts.items():
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return str(folder / Path(path).relative_to(mount))
        raise AssertionError(f"{path} is not on a mounted volume")

    token = secrets.token_hex(16)
    env = {**os.environ, TOKEN_ENV: token}
    values = {}
    for e in c["env"]:
        if "valueFrom" in e:
            assert e["valueFrom"]["secretKeyRef"]["name"] == "p4-model-token"
        elif e["name"] in ("TMPDIR", "HOME"):
            env[e["name"]] = mapped(e["value"])
        else:
            values[e["name"]] = e["value"]
    cfg = json.loads(values["OMG_SERVER_CONFIG"])
    cfg["log_folder"] = mapped(cfg["log_folder"])
    args = list(c["args"])
    bundle = Path(_bundle(root, args[args.index("--bundle") + 1].rsplit("/", 1)[1]))
    args[args.index("--bundle") + 1] = str(bundle)
    args[args.index("$(OMG_SERVER_CONFIG)")] = json.dumps(cfg)
    with socket.socket() as s:  # a free port instead of the pod's own 8080
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args[args.index("--port") + 1] = str(port)
    assert c["command"][0] == "python"
    before = verify_bundle(bundle)["digest"]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, *c["command"][1:], *args], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        record = json.loads((bundle / "signature.json").read_text())["sample"][0]
        assert httpx.post(f"{url}/predict", json=record, timeout=10).status_code == 401
        ok = httpx.post(f"{url}/predict", json=record, timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text
        proc.terminate()  # what the kubelet sends: the log is flushed
        proc.wait(timeout=30)
    finally:
        kill_tree(proc.pid)
    logged = list((Path(cfg["log_folder"])).glob("*.jsonl"))
    assert len(logged) == 1 and len(logged[0].read_text().splitlines()) == 1
    assert verify_bundle(bundle)["ok"] and verify_bundle(bundle)["digest"] == before
    assert token not in log.read_text() and token not in logged[0].read_text()
    # nothing else appeared in the working folder: the mounts, the server's own output
    assert {p.name for p in tmp_path.iterdir()} == {*(f.name for f in mounts.values()),
                                                   "server.log"}
