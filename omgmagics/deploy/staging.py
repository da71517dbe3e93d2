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

import json
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError
from .bundle import SKEW_TOLERANCE, class_names
from .signature import check_rows

RESULT_FILE = "staging_validation.json"
SCORE_TOLERANCE = 1e-9
MIN_P99_SAMPLES = 100  # below, a 99th percentile is just the slowest request


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
    requested = int(val["rows"])
    rows, fs = replay_rows(project, bundle, requested)
    notes = []
    if len(rows) < requested:
        notes.append(f"validation.rows is {requested} but the validation split has {len(rows)} "
                     f"rows: all {len(rows)} were replayed.")
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
    kind = output_kind(bundle.model)
    names = class_names(bundle.model.classes)
    if kind == "value":  # regression: the prediction is the number, compared with a tolerance
        v_srv, v_off = values(served, kind, names), values(offline, kind, names)
        mismatches = int(np.sum(~_close(v_srv, v_off, SCORE_TOLERANCE)))
        max_diff = max_diff_of(v_srv, v_off)
    else:
        mismatches = sum(1 for a, b in zip(served, offline, strict=True)
                         if a.get("prediction") != b["prediction"])
        max_diff = max_diff_of(values(served, kind, names), values(offline, kind, names))
    what = VALUE_NAMES[kind]
    miss = "predictions differ" if kind == "value" else "label mismatches"
    identical = mismatches == 0 and max_diff <= SCORE_TOLERANCE
    criteria.append(_criterion("predictions identical to the offline bundle", identical,
                               f"{mismatches} {miss}, max |{what} diff| {max_diff:.3g}",
                               f"0, <= {SCORE_TOLERANCE}",
                               "" if kind != "value" else "relative to the value above 1"))
    valid_rows = rows.iloc[[i for i, e in enumerate(expected) if e == 200]]
    skew = _skew(bundle, valid_rows, fs, served)
    if skew is not None:
        text = (f"{skew['mismatches']} label mismatches" if skew["compared"] == "label" else
                f"max |{skew['compared']} diff| {skew['max_abs_diff']:.3g}")
        criteria.append(_criterion("no train/serve skew (vs stored features)", skew["ok"],
                                   f"{text} on {skew['rows']} rows",
                                   "0" if skew["compared"] == "label" else f"<= {SKEW_TOLERANCE}",
                                   skew.get("detail", "")))
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
    if lat.size < MIN_P99_SAMPLES:
        notes.append(f"The replay's {lat.size} requests are too few for a p99 estimate (fewer than "
                     f"{MIN_P99_SAMPLES}): its p99 is not reported; the load test's is the criterion.")
    if load["requests"] < MIN_P99_SAMPLES:
        notes.append(f"The load test's {load['requests']} requests are too few for a p99 estimate "
                     f"(fewer than {MIN_P99_SAMPLES}): its p99 is the slowest request. Raise "
                     f"validation.load_requests to {MIN_P99_SAMPLES} or more.")
    outside: dict[str, int] = {}
    for why in rejected:
        outside[why.split(" has ")[0].split(" must ")[0]] = outside.get(
            why.split(" has ")[0].split(" must ")[0], 0) + 1
    result = {
        "passed": all(c["status"] == "pass" for c in criteria),
        "time": clock.stamp(),
        "env": settings.env, "url": url, "bundle": str(bundle_path), "digest": bundle.digest,
        "model_version": bundle.version, "criteria": criteria,
        "replay": {"rows": len(records), "valid": len(valid), "ok": as_expected,
                   "outside_signature": len(rejected), "outside_examples": rejected[:5],
                   "label_mismatches": mismatches, "max_score_diff": max_diff, "compared": kind,
                   "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                   "requested": requested,
                   "p99_ms": float(np.percentile(lat, 99)) if lat.size >= MIN_P99_SAMPLES
                   else None},
        "notes": notes,
        "skew": skew, "load": {**load, "rate": rate},
        # per-request latencies (ms), for the latency distribution of the report
        "latencies_ms": {"replay": [round(float(x), 3) for x in lat],
                         "load": [round(float(x), 3) for x in load_res.latencies_ms if x is not None]},
        "thresholds": {"latency_p99_ms": settings.latency_p99_ms, "score_tolerance": SCORE_TOLERANCE,
                       "skew_tolerance": SKEW_TOLERANCE},
    }
    write_json(result_path(project), result)
    return result


OUTPUT_KINDS = ("value", "score", "probabilities")
VALUE_NAMES = {"value": "prediction", "score": "score", "probabilities": "probability"}


def output_kind(model: Any) -> str:
    """What a response is compared on: the value (regression), P(positive) (binary) or the
    per-class probabilities (multi-class)."""
    if model.task == "regression":
        return "value"
    return "probabilities" if model.n_classes > 2 else "score"


def values(items: list[dict], kind: str, names: list[str]) -> Any:
    """The compared numbers of response items: (n,) for a value or score, (n, k) for probabilities;
    NaN where an item lacks them (null, a failed request, a handler without probabilities)."""
    import numpy as np

    def num(v: Any) -> float:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan

    if kind == "probabilities":
        out = np.full((len(items), len(names)), np.nan)
        for i, item in enumerate(items):
            probs = item.get("probabilities")
            if isinstance(probs, dict):
                out[i] = [num(probs.get(n)) for n in names]
        return out
    key = "prediction" if kind == "value" else "score"
    return np.asarray([num(item.get(key)) for item in items], dtype=np.float64)


def _scaled(a: Any, b: Any) -> Any:
    """|a - b| relative to |b| above 1 (a regression value in the target's units); 0 where both
    are NaN (both not finite), inf where only one is."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = np.isnan(a) & np.isnan(b)
    d = np.abs(a - b) / np.maximum(1.0, np.abs(np.where(np.isnan(b), 0.0, b)))
    d = np.where(both, 0.0, np.where(np.isnan(d), np.inf, d))
    return d.max(axis=1) if d.ndim == 2 else d


def _close(a: Any, b: Any, tol: float) -> Any:
    return _scaled(a, b) <= tol


def max_diff_of(a: Any, b: Any) -> float:
    d = _scaled(a, b)
    return float(d.max()) if d.size else 0.0


def _skew(bundle: Any, rows: Any, fs: Any, served: list[dict]) -> dict | None:
    """Served outputs vs the model on the stored feature-set rows (one row at a time, as served:
    a dynamically quantized model's output depends a little on the other rows of its batch).

    Compared per task: the predicted value (regression, relative to its magnitude above 1),
    P(positive class) (binary), every class's probability (multi-class; the labels when the
    handler returns no probabilities).
    """
    import numpy as np

    if fs is None or fs.val is None or not fs.id_column or fs.id_column not in rows.columns:
        return None
    stored = fs.val.drop_duplicates(fs.id_column).set_index(fs.id_column)
    names = bundle.model.feature_names
    if any(n not in stored.columns for n in names):
        return None
    keep = rows[fs.id_column].isin(stored.index).to_numpy()
    if not keep.any():
        return None
    X = stored.loc[rows[fs.id_column][keep], names].to_numpy(dtype=np.float64)
    kind = output_kind(bundle.model)
    offline = np.asarray([np.asarray(bundle.model.predict_scores(X[i:i + 1]), dtype=np.float64)[0]
                          for i in range(len(X))])
    items = [s for s, k in zip(served, keep, strict=True) if k]
    classes = class_names(bundle.model.classes)
    got = values(items, kind, classes)
    out = {"rows": int(keep.sum()), "compared": VALUE_NAMES[kind], "kind": kind}
    if kind == "probabilities" and np.isnan(got).all(axis=1).all():
        # A handler that returns labels only: compare the labels (argmax of the stored-row scores).
        want = [classes[int(i)] for i in offline.argmax(axis=1)]
        wrong = sum(1 for item, w in zip(items, want, strict=True)
                    if str(item.get("prediction")) != w)
        return {**out, "compared": "label", "ok": wrong == 0, "mismatches": wrong,
                "max_abs_diff": 0.0 if wrong == 0 else float("inf"),
                "detail": "the handler returns no probabilities: labels compared"}
    diff = max_diff_of(got, offline)
    return {**out, "ok": diff <= SKEW_TOLERANCE, "max_abs_diff": diff,
            "detail": "relative to the value above 1" if kind == "value" else ""}


def read_result(project: Any) -> dict[str, Any] | None:
    path = result_path(project)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"passed": False, "damaged": True}
