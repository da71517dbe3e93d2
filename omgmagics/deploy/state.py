"""Deployment state (floor of the deploy package): what each env serves, the deployment history, the
rollout router's state file. Serving, the rollout, the runbook and operations read it here.

- ``monitoring/deployments/ENV.json``: the bundle an env serves, with the digest it was verified
  with when it was rolled out (:func:`production_bundle` refuses a bundle that no longer has it);
- ``monitoring/deployments/history.jsonl``: every rollout step, promotion and rollback;
- ``.omg/rollouts/ENV.json``: a running rollout router and its admin token (mode 0600).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError, UsageError


def deployments_dir(project: Any) -> Path:
    return Path(project.monitoring_dir) / "deployments"


def history_path(project: Any) -> Path:
    return deployments_dir(project) / "history.jsonl"


def current_production(project: Any, env: str = "production") -> dict[str, Any] | None:
    path = deployments_dir(project) / f"{env}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def production_bundle(project: Any, env: str = "production") -> Path | None:
    """The bundle recorded in `env`, checked against the digest recorded with it (None if none).

    Raises
    ------
    DataError
        When the bundle's files differ from what was rolled out (edited, re-packaged, replaced).
    """
    from .integrity import verify_bundle

    current = current_production(project, env)
    if not current or not Path(current.get("bundle", "")).is_dir():
        return None
    bundle = Path(current["bundle"])
    pinned = current.get("digest")
    check = verify_bundle(bundle)
    if not check["ok"] or (pinned and check["digest"] != pinned):
        raise DataError(f"The bundle recorded in {env} ({bundle.name}) is not the one rolled out: "
                        + ("its files changed since it was packaged" if not check["ok"] else
                           f"its digest is {check['digest'][:16]}, {pinned[:16]} was recorded")
                        + ". Roll out a verified bundle again (`omg deploy cloud`) or pass --bundle.")
    return bundle


def router_state_path(project: Any, env: str) -> Path:
    """``.omg/rollouts/ENV.json``: the running rollout router of `env` and its admin token."""
    from .settings import check_env_name

    return Path(project.root) / ".omg" / "rollouts" / f"{check_env_name(env)}.json"


def _write_private_json(path: Path, obj: dict[str, Any]) -> Path:
    """Write `obj` atomically to `path`, readable and writable by its owner only (0600)."""
    from ..atomic import atomic_path

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        os.chmod(tmp, 0o600)  # before the secret is written
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path


def admin_token(project: Any, env: str = "production") -> str:
    """The admin token of `env`'s rollout router (``Authorization: Bearer`` for ``/router/status``
    and ``/router/rollback``).

    Raises
    ------
    UsageError
        When no rollout router is recorded for `env`.
    DataError
        When its state file holds no token.
    """
    path = router_state_path(project, env)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"No rollout router is recorded for env '{env}' ({path} does not exist). "
                         f"Start one with `omg deploy cloud --env {env} --keep-running`.") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read the rollout state file {path} ({exc}). Stop the rollout "
                        f"(`omg deploy stop --env {env}`) and start it again.") from None
    token = state.get("admin_token") if isinstance(state, dict) else None
    if not isinstance(token, str) or not token:
        raise DataError(f"The rollout state file {path} holds no admin_token. Stop the rollout "
                        f"(`omg deploy stop --env {env}`) and start it again.")
    return token


def forget_router(project: Any, env: str) -> None:
    """Remove `env`'s rollout state file (its router is stopped)."""
    router_state_path(project, env).unlink(missing_ok=True)


def read_history(project: Any) -> list[dict[str, Any]]:
    """Every deployment event (damaged lines skipped)."""
    from ..io import journal

    return journal.read(history_path(project))


def record_production(project: Any, env: str, bundle: Path, version: str, strategy: str,
                      rollout_id: str, outcome: str) -> None:
    """Record `bundle` (and the digest it verified with) as what `env` now serves."""
    from ..atomic import write_json
    from .integrity import require_verified

    write_json(deployments_dir(project) / f"{env}.json",
               {"env": env, "bundle": str(bundle), "digest": require_verified(bundle)["digest"],
                "model_version": version, "since": clock.stamp(ms=True),
                "strategy": strategy, "rollout_id": rollout_id, "last_rollout": outcome})
