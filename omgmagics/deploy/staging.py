"""Staging validation (core layer): the phase 4 gate's evidence.

Against a running server:

1. **replay**: every raw validation row (up to ``validation.rows``) is sent through ``POST /predict``,
   one record per request. A row the signature accepts must get 200 and the bundle's own prediction
   made offline in this process (same label, score within 1e-9) and the model's score on the stored
   feature-set row (within 1e-6): no train/serve skew. A row outside the signature (a category never
   seen in training) must get 422; such rows are counted and shown, not hidden;
2. **load**: ``validation.load_requests`` single-record requests at ``validation.load_rps`` (default:
   the brief's throughput) with p99 latency at most the brief's ``latency_p99_ms`` and no errors;
3. **endpoints**: ``/health`` and ``/ready`` answer 200, ``/version`` names the bundle's version and
   digest, ``/metrics`` counts the requests; with a token, a request without it gets 401.

The result is written to ``reports/staging_validation.json``, which the gate re-reads.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..errors import DataError

RESULT_FILE = "staging_validation.json"
SCORE_TOLERANCE = 1e-9
SKEW_TOLERANCE = 1e-6


def result_path(project: Any) -> Path:
    return Path(project.reports_dir) / RESULT_FILE


def replay_rows(project: Any, bundle: Any, limit: int) -> tuple[Any, Any]:
    """Raw validation rows for the bundle's inputs (and the feature set, for the skew check)."""
    import pandas as pd

    from ..features.store import load_feature_set

    fs = None
    ref = bundle.metadata.get("feature_set", {}).get("ref")
    if ref:
        try:
            fs = load_feature_set(project.features_dir, ref)
        except Exception:  # noqa: BLE001 - the skew check is skipped without it
            fs = None
    path = Path(project.processed_dir) / "val.parquet"
    if path.is_file():
        frame = pd.read_parquet(path)
        missing = [c for c in bundle.input_names if c not in frame.columns]
        if not missing:
            return frame.head(limit), fs
    if fs is not None and fs.val is not None and all(c in fs.val.columns for c in bundle.input_names):
        return fs.val.head(limit), fs  # a bundle without a pipeline takes feature columns
    raise DataError(f"No validation rows to replay: {path} is missing or lacks the bundle's input "
                    "columns. Run phase 2's `omg data split` (it writes data/processed/val.parquet).")


def _criterion(name: str, ok: bool, value: Any, threshold: Any = None, detail: str = "") -> dict:
    return {"name": name, "status": "pass" if ok else "fail", "value": value,
            "threshold": threshold, "detail": detail}


def split_valid(bundle: Any, rows: Any) -> tuple[list[dict], list[dict], list[str]]:
    """(all records, the ones the signature accepts, why the others are rejected)."""
    records, mask, reasons = check_rows(bundle, rows)
    return records, [r for r, ok in zip(records, mask, strict=True) if ok], reasons


def check_rows(bundle: Any, rows: Any) -> tuple[list[dict], list[bool], list[str]]:
    """(records, whether the signature accepts each, why the rejected ones are rejected)."""
    from .signature import InvalidRequest, RequestValidator, jsonable_record

    validator = RequestValidator(bundle.signature, max_batch=1)
    records = [jsonable_record(r) for r in rows[bundle.input_names].to_dict("records")]
    mask, reasons = [], []
    for rec in records:
        try:
            validator.records(rec)
            mask.append(True)
        except InvalidRequest as exc:
            mask.append(False)
            reasons.append(exc.errors[0]["msg"])
    return records, mask, reasons


def validate_staging(project: Any, bundle_path: Path, url: str, settings: Any,
                     token: str | None = None) -> dict[str, Any]:
    """Run the three checks against the server at `url`; write and return the result."""
    import numpy as np

    from ..atomic import write_json
    from . import loadgen
    from .bundle import ServingBundle
    from .process import _get
    from .signature import InvalidRequest, RequestValidator

    bundle = ServingBundle.load(bundle_path, verify=True)
    val = settings.validation
    rows, fs = replay_rows(project, bundle, int(val["rows"]))
    records, valid, rejected = split_valid(bundle, rows)
    if not valid:
        raise DataError(f"None of the {len(records)} validation rows passes the bundle's signature "
                        f"(e.g. {rejected[0] if rejected else '-'}). Was the bundle built from this "
                        "project's feature set?")
    bodies = [json.dumps(r).encode() for r in records]
    headers = {"Authorization": f"Bearer {token}"} if token else None
    res = loadgen.replay(url + "/predict", bodies, concurrency=int(val["concurrency"]),
                         headers=headers)
    validator = RequestValidator(bundle.signature, max_batch=1)
    expected, criteria = [], []
    for rec in records:
        try:
            validator.records(rec)
            expected.append(200)
        except InvalidRequest:
            expected.append(422)
    as_expected = sum(1 for s, e in zip(res.statuses, expected, strict=True) if s == e)
    criteria.append(_criterion(
        "replay answered as expected", as_expected == len(records), as_expected, len(records),
        f"{len(valid)} rows -> 200, {len(records) - len(valid)} outside the signature -> 422"))
    served = []
    for body, status, exp in zip(res.bodies, res.statuses, expected, strict=True):
        if exp != 200:
            continue
        try:
            item = json.loads(body) if status == 200 else {}
        except ValueError:
            item = {}
        served.append(item)
    offline = [bundle.predict_records([r])[0] for r in valid]
    same_label = sum(1 for a, b in zip(served, offline, strict=True)
                     if a.get("prediction") == b["prediction"])
    diffs = [abs(a["score"] - b["score"]) for a, b in zip(served, offline, strict=True)
             if isinstance(a.get("score"), (int, float)) and isinstance(b.get("score"), (int, float))]
    max_diff = max(diffs) if diffs else 0.0
    identical = same_label == len(valid) and max_diff <= SCORE_TOLERANCE
    criteria.append(_criterion("predictions identical to the offline bundle", identical,
                               f"{len(valid) - same_label} label mismatches, max |score diff| "
                               f"{max_diff:.3g}", f"0, <= {SCORE_TOLERANCE}"))
    valid_rows = rows.iloc[[i for i, e in enumerate(expected) if e == 200]]
    skew = _skew(bundle, valid_rows, fs, [s.get("score") for s in served])
    if skew is not None:
        criteria.append(_criterion("no train/serve skew (vs stored features)", skew["ok"],
                                   f"max |score diff| {skew['max_abs_diff']:.3g} on {skew['rows']} "
                                   "rows", f"<= {SKEW_TOLERANCE}"))
    rate = float(val.get("load_rps") or settings.throughput_rps)
    valid_bodies = [json.dumps(r).encode() for r in valid]
    load_res = loadgen.fixed_rate(url + "/predict", valid_bodies, rate=rate,
                                  n=int(val["load_requests"]), headers=headers, max_seconds=120)
    load = load_res.summary()
    criteria.append(_criterion("p99 latency under load", load["p99_ms"] is not None and
                               load["p99_ms"] <= settings.latency_p99_ms and load["non_200"] == 0
                               and load["transport_errors"] == 0,
                               round(load["p99_ms"] or -1, 2), settings.latency_p99_ms,
                               f"{load['requests']} requests at {rate:g}/s, {load['non_200']} not 200"))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    st_h, _ = _get(url + "/health")
    st_r, _ = _get(url + "/ready")
    st_v, body_v = _get(url + "/version", headers=auth)
    version = json.loads(body_v) if st_v == 200 else {}
    st_m, body_m = _get(url + "/metrics", headers=auth)
    endpoints_ok = st_h == 200 and st_r == 200 and version.get("model_version") == bundle.version \
        and version.get("digest") == bundle.digest and st_m == 200 and \
        b"omg_requests_total" in body_m
    criteria.append(_criterion("health, ready, version, metrics", endpoints_ok,
                               f"{st_h}/{st_r}/{st_v}/{st_m}", "200 each",
                               f"version {version.get('model_version')}"))
    if token:
        st_a, _ = _get(url + "/version")
        criteria.append(_criterion("auth required", st_a == 401, st_a, 401))
    lat = np.asarray([x for x in res.latencies_ms if x is not None])
    outside: dict[str, int] = {}
    for why in rejected:
        outside[why.split(" has ")[0].split(" must ")[0]] = outside.get(
            why.split(" has ")[0].split(" must ")[0], 0) + 1
    result = {
        "passed": all(c["status"] == "pass" for c in criteria),
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "env": settings.env, "url": url, "bundle": str(bundle_path), "digest": bundle.digest,
        "model_version": bundle.version, "criteria": criteria,
        "replay": {"rows": len(records), "valid": len(valid), "ok": as_expected,
                   "outside_signature": len(rejected), "outside_examples": rejected[:5],
                   "label_mismatches": len(valid) - same_label, "max_score_diff": max_diff,
                   "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                   "p99_ms": float(np.percentile(lat, 99)) if lat.size else None},
        "skew": skew, "load": {**load, "rate": rate},
        # per-request latencies (ms), for the latency distribution of the report
        "latencies_ms": {"replay": [round(float(x), 3) for x in lat],
                         "load": [round(float(x), 3) for x in load_res.latencies_ms if x is not None]},
        "thresholds": {"latency_p99_ms": settings.latency_p99_ms, "score_tolerance": SCORE_TOLERANCE,
                       "skew_tolerance": SKEW_TOLERANCE},
    }
    write_json(result_path(project), result)
    return result


def _skew(bundle: Any, rows: Any, fs: Any, served_score: list) -> dict | None:
    """Served scores vs the model on the stored feature-set rows (one row at a time, as served:
    a dynamically quantized model's output depends a little on the other rows of its batch)."""
    import numpy as np

    if fs is None or fs.val is None or not fs.id_column or fs.id_column not in rows.columns:
        return None
    stored = fs.val.drop_duplicates(fs.id_column).set_index(fs.id_column)
    names = bundle.model.feature_names
    if any(n not in stored.columns for n in names) or bundle.model.task != "regression" and \
            bundle.model.n_classes > 2:
        return None
    keep = rows[fs.id_column].isin(stored.index).to_numpy()
    if not keep.any():
        return None
    X = stored.loc[rows[fs.id_column][keep], names].to_numpy(dtype=np.float64)
    offline = np.asarray([float(np.ravel(bundle.model.predict_scores(X[i:i + 1]))[0])
                          for i in range(len(X))])
    served = np.asarray([np.nan if s is None else s for s, k in zip(served_score, keep, strict=True)
                         if k], dtype=np.float64)
    if served.shape != offline.shape or np.isnan(served).all():
        return {"ok": False, "rows": int(keep.sum()), "max_abs_diff": float("inf")}
    diff = float(np.nanmax(np.abs(served - offline)))
    return {"ok": diff <= SKEW_TOLERANCE and not np.isnan(served).any(), "rows": int(keep.sum()),
            "max_abs_diff": diff}


def read_result(project: Any) -> dict[str, Any] | None:
    path = result_path(project)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"passed": False, "damaged": True}
