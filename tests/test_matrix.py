"""The data-set matrix: every table of ``tools/make_matrix.py`` through the lifecycle, as a user would.

For each table: ``omg ml init NAME --data tests/data/matrix/NAME.csv --target TARGET`` in a temporary
folder, then ``omg ml run --no-gates`` in the project — all five phases for one table of each problem
type (``FULL``), phases 1-3 for the others — with small work (``SMALL``: few trials, folds, days).
They are real subprocesses of the installed ``omg``, two at a time (the suite runs on 2 cores): a
module fixture launches every selected run on a thread pool, one test per table waits for its run
and checks it. The last test writes ``test-artifacts/matrix.json`` (rows, columns, task, seconds per
phase, the primary metric beside the best baseline, each gate's one-line verdict) and prints the table.

Per table: exit code 0 and no traceback; every requested phase completed (``passed`` or
``gate-failed``: ``--no-gates`` records a gate, it does not stop) with its gate's verdict in the run
manifest; the reports in ``reports/``; and the plain view — every gate judged again from the files
on disk, as a gated ``omg ml run`` does after a phase — states each failed criterion in one line.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "matrix"
ARTIFACTS = ROOT / "test-artifacts"
OMG = Path(sys.executable).with_name("omg")
PHASE_FOLDERS = {1: "01_discovery", 2: "02_data", 3: "03_model", 4: "04_deploy", 5: "05_ops"}
GATE_NAMES = {1: "Feasibility approved", 2: "Data ready", 3: "Model meets criteria",
              4: "Staging validated", 5: "Production stable"}
# One table of each problem type through all five phases; the others through phases 1-3.
FULL = {"sensor_faults": "binary", "shop_orders": "multiclass", "house_prices": "regression"}
# Small work. Only the parameters a requested phase's notebook declares are passed (`omg ml run`
# refuses any other); the rest keep the defaults `omg ml init` derived from the table.
SMALL = {"n_trials": 4, "cv_folds": 3, "n_bootstrap": 200, "canary_window": 40, "sim_days": 6,
         "per_day": 80, "shift_from": 4}
WORKERS = 2
RUN_TIMEOUT_S = 1500  # one table on a loaded machine; a hung run is killed, not waited for
PLAIN_GATES = """
import json, sys
from omgmagics.gates import check_gate
from omgmagics.project import Project
project = Project.at(sys.argv[1])
out = {}
for phase in map(int, sys.argv[2:]):
    g = check_gate(project, phase)
    out[phase] = {"status": g.status, "summary": g.summary(),
                  "failures": [{"name": c.name, "value": repr(c.value)} for c in g.failures]}
print(json.dumps(out))
"""


def _tables() -> dict[str, str]:
    """``TABLES`` of tools/make_matrix.py (name -> target), read without importing scikit-learn."""
    tree = ast.parse((ROOT / "tools" / "make_matrix.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TABLES" for t in node.targets):
            return {ast.literal_eval(k): ast.literal_eval(v.elts[1])
                    for k, v in zip(node.value.keys, node.value.values, strict=True)}
    raise AssertionError("tools/make_matrix.py has no TABLES")


TABLES = _tables()


# `make test` and `make matrix`: FULL through phases 1-5, the others 1-3 (about 10 minutes of the
# suite on 2 cores). OMG_MATRIX=quick, for a quick local look: every table through phases 1-2.
SCOPE = os.environ.get("OMG_MATRIX", "full")


def _phases(name: str) -> list[int]:
    if SCOPE == "quick":
        return [1, 2]
    return [1, 2, 3, 4, 5] if name in FULL else [1, 2, 3]


def _declared(project: Path, phases: list[int]) -> set[str]:
    """The names assigned in the `parameters` cell of each requested phase notebook."""
    names: set[str] = set()
    for phase in phases:
        for nb_path in (project / "notebooks").glob(f"{PHASE_FOLDERS[phase]}/*.ipynb"):
            nb = json.loads(nb_path.read_text(encoding="utf-8"))
            for cell in nb["cells"]:
                if "parameters" in cell.get("metadata", {}).get("tags", []):
                    src = "".join(cell["source"])
                    for node in ast.parse(src).body:
                        if isinstance(node, ast.Assign | ast.AnnAssign):
                            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{OMG.parent}{os.pathsep}{env.get('PATH', '')}"
    # Two runs share two cores: one thread each for the numeric libraries, or they oversubscribe.
    env.update(MPLBACKEND="Agg", PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _call(args: list[str], cwd: Path, log: Path, timeout: float) -> tuple[int, str, float]:
    """Run `args`, output to `log`; the whole process group is killed on timeout (kernels too)."""
    t0 = time.time()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(a) for a in args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                env=_env(), start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = -9
    out = log.read_text(encoding="utf-8", errors="replace")
    if code == -9:
        out += f"\n[matrix] killed after {timeout:.0f} s\n"
    return code, out, round(time.time() - t0, 1)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _shape(csv: Path) -> tuple[int, int]:
    import csv as csvlib

    with open(csv, newline="", encoding="utf-8") as fh:
        reader = csvlib.reader(fh)
        columns = len(next(reader))
        rows = sum(1 for _ in reader)
    return rows, columns


def _last_error(out: str, manifest: dict | None, project: Path) -> str:
    """The line a user would act on: the failed phase's error, else the last 'error:' line, else
    the last line of a failed phase's kernel log."""
    if manifest:
        for state in manifest.get("phases", {}).values():
            if state.get("status") == "failed":
                err = state.get("error") or {}
                return err.get("text") or f"{err.get('exception')}: {err.get('message')}"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error") or "Error:" in ln]
    if errors:
        return errors[-1]
    return lines[-1] if lines else ""


def _metric(project: Path) -> dict:
    """The champion's test metric with its CI, beside the best baseline (reports/evaluation.json,
    reports/comparison.json)."""
    ev = _read_json(project / "reports" / "evaluation.json") or {}
    comp = _read_json(project / "reports" / "comparison.json") or {}
    primary = ev.get("primary_metric") or comp.get("primary_metric")
    entry = (ev.get("metrics") or {}).get(primary) or {}
    vs = ev.get("vs_baseline") or {}
    out = {"primary_metric": primary, "value": entry.get("value"), "ci_low": entry.get("ci_low"),
           "ci_high": entry.get("ci_high"), "task": ev.get("task"),
           "model": (ev.get("model") or {}).get("run_name") or (comp.get("best") or {}).get("run"),
           "best_baseline": vs.get("baseline"), "baseline_value": vs.get("b"),
           "p_value": vs.get("p_value"), "significant": vs.get("significant"),
           "baseline_skipped": vs.get("skipped")}
    return out


def _task(project: Path, target: str) -> str:
    text = (project / "omg.yaml").read_text(encoding="utf-8") if (project / "omg.yaml").is_file() else ""
    m = re.search(r"^\s*type:\s*(\w+)", text, re.M)
    if m and m.group(1) == "regression":
        return "regression"
    import pandas as pd

    n = pd.read_csv(DATA / f"{project.name}.csv", usecols=[target])[target].nunique()
    return "binary" if n == 2 else f"multiclass ({n})"


def run_table(name: str, parent: Path) -> dict:
    """Init a project on table `name` and run its phases; a record of what happened (no asserts)."""
    target, phases = TABLES[name], _phases(name)
    csv = DATA / f"{name}.csv"
    rows, columns = _shape(csv)
    rec: dict = {"table": name, "rows": rows, "columns": columns, "target": target,
                 "phases": phases, "project": str(parent / name)}
    code, out, secs = _call([OMG, "ml", "init", name, "--data", csv, "--target", target,
                             "--dir", parent], parent, parent / f"{name}-init.log", 300)
    rec.update(init_code=code, init_output=out[-4000:], init_s=secs)
    project = parent / name
    if code != 0:
        rec.update(run_code=None, output="", error=_last_error(out, None, project))
        return rec
    declared = _declared(project, phases)
    params = {k: v for k, v in SMALL.items() if k in declared}
    args = [OMG, "ml", "run", "--no-gates", "--phases", f"{phases[0]}-{phases[-1]}"]
    for k, v in params.items():
        args += ["-p", f"{k}={v}"]
    rec["params"] = params
    code, out, secs = _call(args, project, parent / f"{name}-run.log", RUN_TIMEOUT_S)
    rec.update(run_code=code, output=out, run_s=secs)
    manifests = [m for m in (_read_json(p) for p in sorted(project.glob("runs/*/manifest.json")))
                 if m and m.get("kind", "lifecycle") == "lifecycle"]
    manifest = manifests[-1] if manifests else None
    rec["manifest"] = manifest
    rec["task"] = _task(project, target)
    rec["seconds"] = {p: (manifest or {}).get("phases", {}).get(str(p), {}).get("duration_s")
                      for p in phases}
    rec["status"] = {p: (manifest or {}).get("phases", {}).get(str(p), {}).get("status", "not run")
                     for p in phases}
    rec["gates"] = {p: (manifest or {}).get("phases", {}).get(str(p), {}).get("gate_summary")
                    for p in phases}
    rec["metric"] = _metric(project) if 3 in phases else {}
    rec["error"] = None if code == 0 else _last_error(out, manifest, project)
    # The plain view: each completed phase's gate judged again from the files on disk.
    done = [p for p in phases if rec["status"][p] in ("passed", "gate-failed")]
    rec["plain_gates"] = None
    if done:
        gcode, gout, _ = _call([sys.executable, "-c", PLAIN_GATES, project, *done], project,
                               parent / f"{name}-gates.log", 300)
        try:
            rec["plain_gates"] = {int(k): v for k, v in json.loads(gout.strip().splitlines()[-1]).items()}
        except (ValueError, IndexError):
            rec["plain_gates_error"] = gout[-2000:]
    return rec


@pytest.fixture(scope="module")
def matrix(request, tmp_path_factory):
    """Launch every selected table's run, two at a time; table name -> future of its record."""
    chosen = [item.callspec.params["name"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec")
              and "name" in item.callspec.params]
    chosen = [n for n in TABLES if n in chosen] or list(TABLES)
    # Longest first (the five-phase runs, then the biggest files) so the pool ends close together.
    chosen.sort(key=lambda n: (n not in FULL, -(DATA / f"{n}.csv").stat().st_size))
    parent = tmp_path_factory.mktemp("matrix")
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="matrix")
    futures = {n: pool.submit(run_table, n, parent) for n in chosen}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _one_line_problems(phase: int, summary: str | None, failures: list[dict] | None = None) -> list[str]:
    """What is wrong with a gate's one-line verdict, if anything."""
    if not summary:
        return [f"phase {phase}: no gate verdict"]
    problems = []
    if "\n" in summary.strip():
        problems.append(f"phase {phase}: the gate verdict spans lines: {summary!r}")
    if not summary.startswith(GATE_NAMES[phase]):
        problems.append(f"phase {phase}: the verdict does not name the gate: {summary!r}")
    if re.search(r"\bnp\.\w+\(|array\(|<\w[\w.]* object at|Traceback", summary):
        problems.append(f"phase {phase}: a Python repr in the verdict: {summary!r}")
    if re.search(r"\b(nan|inf|-inf|None)\b", summary):
        problems.append(f"phase {phase}: a non-value in the verdict: {summary!r}")
    for f in failures or []:
        if f["name"] not in summary:
            problems.append(f"phase {phase}: failed criterion {f['name']!r} not in {summary!r}")
    return problems


def _task_problems(ev: dict, project: Path) -> list[str]:
    """The evaluation carries what its task needs: SHAP per class for a multi-class model; fairness
    on every sensitive feature of the brief, with the task's differences where groups allow."""
    import yaml

    problems = []
    labels = (ev.get("confusion_matrix") or {}).get("labels") or []
    kind = "regression" if ev.get("task") == "regression" else \
        "multiclass" if len(labels) > 2 else "binary"
    if kind == "multiclass" and "shap" in ev and sorted(ev["shap"].get("per_class", {})) != sorted(labels):
        problems.append(f"SHAP per class: {sorted(ev['shap'].get('per_class', {}))}, classes {labels}")
    brief = yaml.safe_load((project / "omg.yaml").read_text(encoding="utf-8"))["brief"]
    sensitive = brief.get("sensitive_features") or []
    if not sensitive:
        return problems
    features = (ev.get("fairness") or {}).get("features") or {}
    if sorted(features) != sorted(sensitive):
        return problems + [f"fairness on {sorted(features)}, the brief names {sorted(sensitive)}"]
    needs = {"binary": "demographic_parity_difference", "multiclass": "per_class",
             "regression": "mean_prediction_difference"}[kind]
    for col, entry in features.items():
        if needs not in entry and "not_computed" not in entry:
            problems.append(f"fairness on {col}: neither {needs} nor a reason it was not computed")
    if project.name in FULL and not any(needs in e for e in features.values()):
        problems.append(f"fairness: no {kind} difference computed on any of {sorted(features)}")
    return problems


@pytest.mark.parametrize("name", list(TABLES))
def test_table(matrix, name):
    rec = matrix[name].result()
    where = f"{name} (project {rec['project']})"
    assert rec["init_code"] == 0, f"{where}: init failed: {rec['init_output'][-2000:]}"
    out = rec["output"]
    assert rec["run_code"] == 0, f"{where}: `omg ml run` exited {rec['run_code']}: {rec['error']}"
    assert "Traceback" not in out, f"{where}: a traceback in the output:\n{out[-3000:]}"
    manifest = rec["manifest"]
    assert manifest, f"{where}: no lifecycle manifest in runs/"
    assert manifest["phases_requested"] == rec["phases"]
    problems = []
    for p in rec["phases"]:
        state = manifest["phases"].get(str(p), {})
        if state.get("status") not in ("passed", "gate-failed"):
            problems.append(f"phase {p}: {state.get('status', 'not run')}: {state.get('error')}")
            continue
        gate = state.get("gate") or {}
        if gate.get("status") not in ("passed", "failed") or not gate.get("criteria"):
            problems.append(f"phase {p}: no gate verdict recorded: {gate}")
        problems += _one_line_problems(p, state.get("gate_summary"), [
            {"name": c["name"]} for c in gate.get("criteria", []) if c.get("status") == "fail"])
    assert not problems, f"{where}:\n" + "\n".join(problems)
    project = Path(rec["project"])
    reports = project / "reports"
    missing = [f"phase{p}_{PHASE_FOLDERS[p].split('_', 1)[1]}.html" for p in rec["phases"]
               if not (reports / f"phase{p}_{PHASE_FOLDERS[p].split('_', 1)[1]}.html").is_file()]
    missing += [f for f in ("index.html", "data_audit.json", "feasibility.json")
                if not (reports / f).is_file()]
    if 3 in rec["phases"]:
        missing += [f for f in ("evaluation.json", "comparison.json") if not (reports / f).is_file()]
    assert not missing, f"{where}: reports missing in reports/: {missing}"
    metric = rec["metric"]
    if 3 in rec["phases"]:
        assert metric["primary_metric"] and isinstance(metric["value"], int | float) \
            and math.isfinite(metric["value"]), f"{where}: no finite test metric: {metric}"
    if 3 in rec["phases"]:
        problems = _task_problems(json.loads((reports / "evaluation.json").read_text()), project)
        assert not problems, f"{where}:\n" + "\n".join(problems)
    # The plain (gated) view: a gated run judges the same files and stops on a one-line verdict.
    plain = rec["plain_gates"]
    assert plain, f"{where}: the gates could not be judged again: {rec.get('plain_gates_error')}"
    problems = []
    for p, g in plain.items():
        assert g["status"] in ("passed", "failed"), f"{where}: phase {p} gate {g}"
        if g["status"] == "failed":
            problems += _one_line_problems(p, g["summary"], g["failures"])
            if not g["summary"].startswith(f"{GATE_NAMES[p]}: failed on "):
                problems.append(f"phase {p}: a failed gate not stated as failed: {g['summary']!r}")
    assert not problems, f"{where}:\n" + "\n".join(problems)


def _fmt(v, digits=3) -> str:
    if isinstance(v, float) and abs(v) >= 1e4:
        return f"{v:.4g}"
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def test_matrix_table(matrix, capsys):
    """Not a check: the matrix for the closing note, in test-artifacts/matrix.json and printed."""
    records = []
    for name, fut in matrix.items():
        try:
            rec = fut.result()
        except Exception as exc:  # noqa: BLE001 - a harness error is reported in the table
            rec = {"table": name, "error": f"harness: {type(exc).__name__}: {exc}"}
        records.append({k: v for k, v in rec.items() if k not in ("output", "manifest",
                                                                  "init_output")})
    ARTIFACTS.mkdir(exist_ok=True)
    payload = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workers": WORKERS,
               "params": SMALL, "tables": records}
    (ARTIFACTS / "matrix.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    head = (f"{'table':<14}{'rows':>6}{'cols':>5}  {'task':<15}{'p1':>6}{'p2':>6}{'p3':>6}{'p4':>6}"
            f"{'p5':>6}  {'metric':<18}{'champion':>10}{'baseline':>10}  gates failed / error")
    lines = [head, "-" * len(head)]
    for r in records:
        secs = r.get("seconds") or {}
        m = r.get("metric") or {}
        failed = [f"{p}" for p, s in (r.get("status") or {}).items() if s != "passed"]
        lines.append(
            f"{r['table']:<14}{r.get('rows', 0):>6}{r.get('columns', 0):>5}  {r.get('task') or '-':<15}"
            + "".join(f"{_fmt(secs.get(p), 0):>6}" for p in (1, 2, 3, 4, 5))
            + f"  {m.get('primary_metric') or '-':<18}{_fmt(m.get('value')):>10}"
            + f"{_fmt(m.get('baseline_value')):>10}  "
            + (f"error: {r['error'][:200]}" if r.get("error") else
               ("not passed: " + ",".join(failed) if failed else "")))
    with capsys.disabled():
        print("\n\ndata-set matrix (seconds per phase; test metric of the champion vs the best baseline)")
        print("\n".join(lines))
        print(f"written: {ARTIFACTS / 'matrix.json'}")
