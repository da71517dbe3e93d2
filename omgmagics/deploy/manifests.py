"""Cluster manifests for a bundle (core layer): KServe ``InferenceService`` or Deployment + Service.

Both run the kit's own server (``python -m omgmagics.deploy.server``) in a container, so a cluster
serves exactly what staging validated: the same signature checks, metrics, prediction log and
probes (``/health`` for liveness, ``/ready`` for readiness).

- ``kserve``: a ``serving.kserve.io/v1beta1`` InferenceService with a custom predictor container;
  the bundle is fetched by KServe's storage initializer from ``STORAGE_URI`` into ``/mnt/models``, and
  ``canaryTrafficPercent`` is the first canary step (KServe keeps the previous revision for the rest
  and rolls back by reapplying it). Canary traffic splitting needs KServe's serverless mode.
- ``k8s``: plain Kubernetes: a stable and a canary Deployment behind one Service; the canary's share
  follows the replica ratio (exact percentages need a service mesh). A Dockerfile bakes the bundle
  into the image.

Files go to ``deploy/TARGET/ENV/`` in the project.

Exposure and privileges. A container listens on 0.0.0.0, which other pods and machines reach, so a
container always needs a bearer token: the Deployment / InferenceService takes the variable named by
``serving.auth_token_env`` (``OMG_BEARER_TOKEN`` when that is null) from the Secret ``NAME-token``
(key ``token``, created by the operator with ``kubectl create secret``), never from the manifest.
Until the Secret exists the pods do not start (``CreateContainerConfigError``): the manifests fail
closed, and the server itself refuses a non-loopback bind without a token. Every container
runs as user 10001 (non-root, no privilege escalation, every capability dropped, RuntimeDefault
seccomp) on a read-only root filesystem; the server writes only to two ``emptyDir`` volumes: the
prediction log (``/var/log/omg``) and a scratch folder (``TMPDIR`` and ``HOME``). The k8s pods also
carry a pod-level ``securityContext``; the KServe predictor keeps everything on its container, since
Knative refuses a pod-level ``securityContext`` unless its ``kubernetes.podspec-securitycontext``
flag is on (and reserves ``/tmp`` as a mount path, hence ``/var/tmp`` there). The Dockerfile creates
the same user, gives it only the log folder and ends with ``USER 10001``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

PORT = 8080
# A container must listen beyond loopback (the Service reaches it): a bearer token is required.
HOST = "0.0.0.0"
UID = 10001  # the non-root user every container runs as (and the Dockerfile creates)
BEARER_KEY = "token"  # the key of the bearer token in the Secret NAME-token
DEFAULT_TOKEN_ENV = "OMG_BEARER_TOKEN"  # the containers' token variable when none is configured
LOG_MOUNT = "/var/log/omg"  # emptyDir: the prediction log (LOG_MOUNT/predictions)
# emptyDir: TMPDIR and HOME. Knative (KServe serverless) refuses /tmp as a mount path.
TMP_MOUNT = {"k8s": "/tmp", "kserve": "/var/tmp"}


def _dns(name: str) -> str:
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (out or "model")[:53].rstrip("-")


def _label(value: str) -> str:
    """A valid label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", out)


def _image(configured: str | None, name: str, version: str) -> str:
    """The serving image of bundle `version`: ``serving.kubernetes.image`` tagged with the version
    when it has no tag (an untagged image means ``:latest``, and each track needs its own bundle),
    ``{version}`` in it replaced; by default a placeholder registry."""
    if not configured:
        return f"registry.example.com/{name}:{version}"
    if "{version}" in configured:
        return configured.replace("{version}", version)
    last = configured.rsplit("/", 1)[-1]
    return configured if (":" in last or "@" in last) else f"{configured}:{version}"


def secret_name(name: str) -> str:
    """The Secret holding the bearer token of deployment `name` (key :data:`BEARER_KEY`)."""
    return f"{name}-token"


def token_env(settings: Any) -> str:
    """The bearer-token variable of the containers: ``serving.auth_token_env``, or
    :data:`DEFAULT_TOKEN_ENV` when it is null (the pods listen on 0.0.0.0: never without a token)."""
    return str(settings.auth_token_env or DEFAULT_TOKEN_ENV)


def _security_context() -> dict[str, Any]:
    """A container's: non-root, no privilege escalation, no capabilities, read-only root."""
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _pod_security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _volumes() -> list[dict[str, Any]]:
    """The pod's writable places (the root filesystem is read-only)."""
    return [{"name": "prediction-log", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def _container(name: str, image: str, cfg: dict[str, Any], k8s: dict[str, Any],
               token_var: str, bundle_dir: str, tmp: str) -> dict[str, Any]:
    env = [{"name": "OMG_SERVER_CONFIG", "value": json.dumps(cfg, separators=(",", ":"))},
           {"name": token_var, "valueFrom": {"secretKeyRef": {
               "name": secret_name(name), "key": BEARER_KEY}}},
           {"name": "TMPDIR", "value": tmp}, {"name": "HOME", "value": tmp}]
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10,
             "timeoutSeconds": 2, "failureThreshold": 3}
    return {
        "name": "kserve-container",
        "image": image,
        "command": ["python", "-m", "omgmagics.deploy.server"],
        "args": ["--bundle", bundle_dir, "--host", HOST, "--port", str(PORT),
                 "--config-json", "$(OMG_SERVER_CONFIG)"],
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        "livenessProbe": probe,
        "readinessProbe": {**probe, "httpGet": {"path": "/ready", "port": PORT},
                           "initialDelaySeconds": 5, "periodSeconds": 5},
        "resources": {"requests": {"cpu": str(k8s["cpu"]), "memory": str(k8s["memory"])},
                      "limits": {"cpu": str(k8s["cpu"]), "memory": str(k8s["memory"])}},
        "securityContext": _security_context(),
        "volumeMounts": [{"name": "prediction-log", "mountPath": LOG_MOUNT},
                         {"name": "tmp", "mountPath": tmp}],
    }


def build_manifests(project: Any, bundle: Path, target: str, env: str, first_share: float,
                    settings: Any, k8s: dict[str, Any], stable: Path | None = None) -> dict[str, str]:
    """The manifest files' contents by file name.

    `bundle` is the new one (KServe's latest revision, the k8s canary track); `stable` the one in
    production now (the k8s stable track; without it only the new bundle is deployed, as stable).
    """
    import yaml

    meta = json.loads((bundle / "metadata.json").read_text())
    # production keeps the model's own name; another environment in the same namespace gets its
    # own resources (``NAME-staging``), and every selector includes omg/env, so they never share pods
    app = _dns(meta["name"])
    name = app if env == "production" else _dns(f"{app}-{env}")
    version = str(meta["version"])
    token_var = token_env(settings)
    image = _image(k8s.get("image"), app, version)
    cfg = {"env": env, "log_folder": f"{LOG_MOUNT}/predictions", "log": settings.log,
           "max_batch": settings.max_batch, "max_body_bytes": settings.max_body_bytes,
           "auth_token_env": token_var}
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "omg",
              "omg/env": _label(env), "omg/model-version": _label(f"{app}-{version}")}
    files: dict[str, str] = {}
    head = (f"# Generated by `omg deploy cloud --target {target}` for bundle {meta['name']}/{version} "
            f"({meta['model']['type']}).\n"
            f"# The bearer token (${token_var}) comes from the Secret {secret_name(name)}; create it "
            "first, e.g.\n"
            f"#   kubectl -n {k8s['namespace']} create secret generic {secret_name(name)} "
            f"--from-literal={BEARER_KEY}=\"$(openssl rand -hex 32)\"\n")
    if target == "kserve":
        storage = k8s.get("storage_uri") or f"s3://CHANGE-ME/models/{meta['name']}/{version}"
        container = _container(name, image, cfg, k8s, token_var, "/mnt/models",
                               TMP_MOUNT[target])
        container["env"].append({"name": "STORAGE_URI", "value": storage})
        isvc = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "namespace": k8s["namespace"], "labels": labels,
                         "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
            "spec": {"predictor": {
                "canaryTrafficPercent": int(round(first_share)),
                "minReplicas": int(k8s["replicas"]), "maxReplicas": max(int(k8s["replicas"]) * 2, 2),
                # security context on the container only: Knative refuses a pod-level one unless
                # its kubernetes.podspec-securitycontext flag is enabled
                "containers": [container],
                "volumes": _volumes(),
            }},
        }
        files["inferenceservice.yaml"] = head + (
            "# Apply once per new bundle; KServe routes canaryTrafficPercent of the traffic to the new\n"
            "# revision. Step it up (25, 50, 100) while /metrics stays within the thresholds of\n"
            "# omg.yaml (serving.canary); remove the field (or set 100) to promote, reapply the\n"
            "# previous manifest to roll back.\n") + yaml.safe_dump(isvc, sort_keys=False)
    else:
        docs = []
        stable_replicas = int(k8s["replicas"])
        if first_share >= 100:  # blue-green: the new bundle takes all traffic, stable kept at 0
            stable_replicas, canary_replicas = 0, stable_replicas
        else:
            canary_replicas = max(1, round(stable_replicas * first_share / (100 - first_share)))
        tracks = [("stable", int(k8s["replicas"]), bundle)]
        if stable is not None and Path(stable).resolve() != Path(bundle).resolve():
            tracks = [("stable", stable_replicas, Path(stable)), ("canary", canary_replicas, bundle)]
        served = sum(r for _, r, _ in tracks)
        share = 100.0 * tracks[-1][1] / served if len(tracks) == 2 and served else 0.0
        for track, replicas, path in tracks:
            m = json.loads((path / "metadata.json").read_text())
            img = _image(k8s.get("image"), app, str(m["version"]))
            container = _container(name, img, cfg, k8s, token_var,
                                   f"/models/{m['name']}/{m['version']}", TMP_MOUNT[target])
            container["name"] = "server"
            docs.append({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"{name}-{track}", "namespace": k8s["namespace"],
                             "labels": {**labels, "omg/track": track,
                                        "omg/model-version": _label(f"{app}-{m['version']}")}},
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {"app.kubernetes.io/name": app,
                                                      "omg/env": labels["omg/env"],
                                                      "omg/track": track}},
                         "template": {"metadata": {"labels": {
                             **labels, "omg/track": track,
                             "omg/model-version": _label(f"{app}-{m['version']}")}},
                                      "spec": {"automountServiceAccountToken": False,
                                               "securityContext": _pod_security_context(),
                                               "containers": [container],
                                               "volumes": _volumes()}}},
            })
        docs.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": k8s["namespace"], "labels": labels},
            "spec": {"selector": {"app.kubernetes.io/name": app, "omg/env": labels["omg/env"]},
                     "ports": [{"name": "http", "port": int(k8s["service_port"]),
                                "targetPort": PORT, "protocol": "TCP"}]},
        })
        split = (f"canary {tracks[-1][1]} of {served} replicas = {share:.0f}% of the traffic; "
                 f"{first_share:g}% asked" if len(tracks) == 2 else
                 "one track: nothing in production yet, the new bundle is deployed as stable")
        files["k8s.yaml"] = head + (
            f"# The Service spreads traffic over both tracks by replica count ({split}).\n"
            "# Scale the canary up step by step, then make it stable. Exact shares need a mesh.\n"
            ) + yaml.safe_dump_all(docs, sort_keys=False)
        bundle_dir = f"/models/{meta['name']}/{version}"
        files["Dockerfile"] = (
            f"# The serving image of bundle {meta['name']}/{version}.\n"
            "FROM python:3.11-slim\n"
            f"# Build it from the bundle folder (docker build -f THIS_FILE models/{meta['name']}/"
            f"{version}); run it with\n# -e {token_var}=TOKEN: it listens on {HOST}:{PORT} and "
            "refuses to start without the token.\n"
            f"COPY . {bundle_dir}\n"
            f"RUN pip install --no-cache-dir -r {bundle_dir}/requirements.txt\n"
            "# A non-root user; it owns only the prediction log folder (the bundle stays root's,\n"
            "# read-only to the server).\n"
            f"RUN groupadd --gid {UID} omg \\\n"
            f" && useradd --uid {UID} --gid {UID} --no-create-home --home-dir /nonexistent "
            "--shell /usr/sbin/nologin omg \\\n"
            f" && chmod -R a+rX {bundle_dir} \\\n"
            f" && mkdir -p {cfg['log_folder']} && chown -R {UID}:{UID} {LOG_MOUNT}\n"
            "ENV HOME=/tmp TMPDIR=/tmp PYTHONDONTWRITEBYTECODE=1\n"
            f"EXPOSE {PORT}\n"
            f"USER {UID}:{UID}\n"
            f"CMD [\"python\", \"-m\", \"omgmagics.deploy.server\", \"--bundle\", "
            f"\"{bundle_dir}\", \"--host\", \"{HOST}\", \"--port\", \"{PORT}\", "
            f"\"--config-json\", {json.dumps(json.dumps(cfg, separators=(',', ':')))}]\n")
    return files


def write_manifests(project: Any, bundle: Path, target: str, env: str, first_share: float,
                    settings: Any, k8s: dict[str, Any], stable: Path | None = None
                    ) -> dict[str, str]:
    """Write the manifests (atomically, replacing the folder); returns {file name: path}."""
    from ..atomic import atomic_dir

    files = build_manifests(project, bundle, target, env, first_share, settings, k8s, stable)
    dest = Path(project.root) / "deploy" / target / env
    with atomic_dir(dest, overwrite=True) as tmp:
        for fname, text in files.items():
            (tmp / fname).write_text(text, encoding="utf-8")
    return {fname: str(dest / fname) for fname in files}
