"""The phase 4 gate's criteria ("staging validated"), re-read from files (core layer).

The gate does not trust the notebook: it re-reads ``reports/staging_validation.json`` and re-hashes
the validated bundle, so a bundle changed after validation, or a validation of another bundle than
the one recorded, fails the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def staging_criteria(project: Any) -> list[Any]:
    from ..criteria import Criterion
    from .integrity import verify_bundle
    from .staging import read_result, result_path

    result = read_result(project)
    if result is None:
        return [Criterion("staging validation run", "fail", None, None,
                          f"{result_path(project)} is missing: run `omg deploy serve --env staging "
                          "--validate`")]
    if result.get("damaged"):
        return [Criterion("staging validation run", "fail", None, None,
                          f"{result_path(project)} cannot be read: run the validation again")]
    out = []
    for c in result.get("criteria", []):
        out.append(Criterion(c["name"], "pass" if c.get("status") == "pass" else "fail",
                             c.get("value"), c.get("threshold") if c.get("status") != "pass" else None,
                             c.get("detail", "")))
    bundle = Path(result.get("bundle", ""))
    try:
        check = verify_bundle(bundle)
        same = check["ok"] and check["digest"] == result.get("digest")
        detail = "" if same else (
            "the bundle's files changed since validation" if not check["ok"]
            else "the bundle was re-packaged since validation")
    except Exception as exc:  # noqa: BLE001 - a missing bundle is a failed criterion
        same, detail = False, str(exc)
    out.append(Criterion("validated bundle unchanged", "pass" if same else "fail",
                         result.get("model_version"), None, detail))
    outside = (result.get("replay") or {}).get("outside_signature") or 0
    if outside:
        out.append(Criterion("validation rows outside the signature", "warn", outside, None,
                             "rejected with 422 by design (categories unseen in training)"))
    return out
