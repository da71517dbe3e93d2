"""End to end on tiny demo data, with the real clients: the five phase notebooks through the lifecycle
runner (papermill), the review bundle in headless Chromium, and a phase notebook run in a real JupyterLab.

One lifecycle run (module fixture) feeds every test here. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from omgmagics.project import PHASES, Project
from omgmagics.runner import run_lifecycle

from .conftest import TINY_FRAC, set_yaml_value

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian's chromium is installed by `make test` (system-deps)")


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    from omgmagics.scaffold import init_project

    parent = tmp_path_factory.mktemp("e2e")
    init_project("tiny", parent=parent)
    root = parent / "tiny"
    set_yaml_value(root / "omg.yaml", "sample_frac", str(TINY_FRAC))
    project = Project.at(root)
    # Gates are recorded, not enforced: on a 2 % sample the model-quality gates (phase 3's AUC
    # threshold, phase 5's live metric) judge noise. Each gate is tested with its own phase.
    report = run_lifecycle(project, phases=[1, 2, 3, 4, 5], params={"n_trials": 2},
                           enforce_gates=False)
    return project, report.value


def test_every_phase_notebook_runs_green(lifecycle):
    project, manifest = lifecycle
    crashed = {p: s.get("error") for p, s in manifest["phases"].items() if s["status"] == "failed"}
    assert crashed == {}
    assert set(manifest["phases"]) == {"1", "2", "3", "4", "5"}
    # The data gates do not depend on model quality: they must pass even on tiny data.
    for phase in ("1", "2"):
        assert manifest["phases"][phase]["status"] == "passed", manifest["phases"][phase]["gate_summary"]
    for state in manifest["phases"].values():
        assert state["gate"]["status"] in ("passed", "failed") and state["gate"]["criteria"]
    for phase, folder in PHASES.items():
        html = project.reports_dir / f"phase{phase}_{folder.split('_', 1)[1]}.html"
        assert html.is_file() and html.stat().st_size > 1000
    saved = json.loads((project.runs_dir / manifest["run_id"] / "manifest.json").read_text())
    assert [saved["phases"][str(p)]["status"] for p in PHASES] == [
        manifest["phases"][str(p)]["status"] for p in PHASES]
    # nbdev export ran in the project: its module carries the notebooks' export cells.
    assert "def capital_net" in (project.root / "projectlib" / "features.py").read_text()


def test_the_closed_loop_retrains_through_the_runner(lifecycle):
    """Phase 5's drift alerts trigger a retrain that re-runs phases 2 and 3 through the runner on
    the reference rows plus the labeled traffic, and ends in a decision that answers the alerts."""
    from omgmagics.ops.retrain import history
    from omgmagics.ops.simulate import loop_summary

    project, manifest = lifecycle
    decisions = [r for r in history(project) if r.get("event") == "decision"]
    assert decisions, "phase 5 ran no retrain"
    d = decisions[-1]
    assert d["decision"] in ("promote", "keep"), d["reason"]
    assert d["data"]["new labeled rows"] > 0
    assert re.fullmatch(r"job-1-\d{8}-\d{6}", Path(d["data"]["file"]).stem)
    assert "columns the new rows lack (left missing)" not in d["data"]
    run = json.loads((project.runs_dir / d["run_id"] / "manifest.json").read_text())
    assert run["kind"] == "retrain" and run["phases_requested"] == [2, 3]
    assert run["parameters"]["data_source"] == d["data"]["file"]
    assert run["parameters"]["n_trials"] == 2  # inherited from the lifecycle run
    assert run["phases"]["2"]["status"] == "passed", run["phases"]["2"].get("gate_summary")
    assert run["phases"]["3"]["status"] in ("passed", "gate-failed")
    assert (project.runs_dir / d["run_id"] / "reports" / "phase3_model.html").is_file()
    lineage = json.loads((project.raw_dir / "lineage.json").read_text())
    current = Path(d["data"]["file"]).stem
    assert lineage["sources"][current]["rows"] == d["data"]["total rows"]  # collected, recorded
    promoted = (d.get("rollout") or {}).get("status") == "promoted"
    # the current raw table is the champion's: the retrain's data only if its model won
    assert lineage["current"] == (current if promoted else "adult")
    gate5 = {c["name"]: c for c in manifest["phases"]["5"]["gate"]["criteria"]}
    assert gate5["drift alerts answered"]["status"] == "pass", gate5["drift alerts answered"]
    loop = loop_summary(project)
    assert isinstance(loop["shift to detection h (simulated)"], float)
    assert loop["shift to detection h (simulated)"] <= 24
    assert loop["retrain wall s"] > 0


@needs_chromium
def test_review_bundle_in_a_real_browser(lifecycle):
    from playwright.sync_api import sync_playwright

    project, _ = lifecycle
    index = project.reports_dir / "index.html"
    assert index.is_file()
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
        page.goto(index.as_uri())
        page.screenshot(path=str(ARTIFACTS / "review-index.png"), full_page=True)
        links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        assert len(links) >= 5
        for url in links:
            if not url.startswith("file://"):
                continue
            page.goto(url)
            broken = page.eval_on_selector_all(
                "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60))")
            if broken:
                problems.append(f"broken image(s) on {url}: {broken}")
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", url.rsplit("/", 1)[-1])
            page.screenshot(path=str(ARTIFACTS / f"review-{name}.png"), full_page=False)
        browser.close()
    assert problems == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(lifecycle):
    project, _ = lifecycle
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(project.root / ".jupyter-test"),
           "JUPYTER_RUNTIME_DIR": str(project.root / ".jupyter-test" / "runtime")}
    # Keep every cell in the DOM (JupyterLab 4 virtualizes long notebooks by default).
    settings = project.root / ".jupyter-test" / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project.root}",
         "--ServerApp.open_browser=False", "--allow-root", "--LabApp.news_url=",
         "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={project.root / '.jupyter-test' / 'lab-settings'}", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.DEVNULL, stderr=open(project.root / "jupyterlab.log", "wb"), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError((project.root / "jupyterlab.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield base, token, project
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


KERNEL_READY = """() => { const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    const ctx = w && w.sessionContext;
    const k = ctx && ctx.isReady && ctx.session && ctx.session.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""


RUN_STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"""


def _lab_trouble(page, project, what: str) -> str:
    """What a person would look at when a JupyterLab run stalls: open dialogs, a screenshot, the log."""
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-timeout.png"), full_page=True)
    dialogs = page.locator(".jp-Dialog").all_inner_texts()
    log = (project.root / "jupyterlab.log").read_text(errors="replace")[-1500:]
    return f"{what}; open dialogs: {dialogs}; screenshot in test-artifacts/; server log tail:\n{log}"


@needs_chromium
def test_phase_notebook_runs_in_real_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token, project = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    nb = "notebooks/01_discovery/01_discovery.ipynb"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{nb}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        n_code = page.locator(".jp-CodeCell").count()
        # The execution indicator reads "idle" before any kernel exists (its initial state), so a
        # click on "Run All" could land while the session was still starting its kernel: the run was
        # lost or a kernel dialog opened. Wait for what "Run All" needs: this notebook's session ready,
        # with a connected, idle kernel.
        try:
            page.wait_for_function(KERNEL_READY, timeout=120_000)
        except Exception as exc:
            raise AssertionError(_lab_trouble(page, project, "the notebook's kernel never became ready")) from exc
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator("li.lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(RUN_STARTED, timeout=30_000)
        except Exception as exc:
            raise AssertionError(_lab_trouble(page, project, "Run All Cells did not start the run")) from exc
        # Done when every code cell has a number in its prompt and the kernel is idle again.
        try:
            page.wait_for_function(
                """n => { const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                           .map(e => e.textContent.trim());
                          return ps.length > 0 && ps.every(t => !t.includes('*'))
                                 && /\\[\\d+\\]/.test(ps[ps.length - 1]); }""",
                arg=n_code, timeout=400_000)
        except Exception as exc:
            raise AssertionError(_lab_trouble(page, project, "the notebook did not finish")) from exc
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-01_discovery.png"), full_page=True)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        error_texts = [t for t in errors.all_inner_texts() if "Error" in t or "Traceback" in t]
        tables = page.locator(".jp-RenderedHTMLCommon table").count()
        widgets = page.locator(".widget-progress, .jp-OutputArea-output .progress").count()
        browser.close()
    assert error_texts == []
    assert tables >= 1, "the magics' rich HTML output did not render"
    assert widgets >= 1, "no progress widget rendered"


def _get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_mlflow_ui_serves_our_runs_over_rest(lifecycle, run_cli):
    """`omg ml ui` starts MLflow's server on the project's store; its REST API shows our records."""
    project, _ = lifecycle
    port, dash = _free_port(), _free_port()
    code, out, err = run_cli(["ml", "ui", "--port", port, "--dashboard-port", dash], cwd=project.root)
    assert code == 0, err
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        assert f"http://127.0.0.1:{port}" in out
        name = project.config.get_path("tracking.experiment")
        exp = _get_json(f"{base}/experiments/get-by-name?experiment_name={name}")["experiment"]
        runs = _get_json(f"{base}/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                  "max_results": 100}).get("runs", [])
        assert runs, "no runs in the project's experiment"
        assert any(r["data"].get("metrics") for r in runs)
        model = project.config.get_path("tracking.registered_model")
        registered = _get_json(f"{base}/registered-models/get?name={model}")["registered_model"]
        assert "champion" in {a["alias"] for a in registered.get("aliases", [])}
        if (project.root / "optuna.db").is_file():
            assert f"http://127.0.0.1:{dash}" in out
            urllib.request.urlopen(f"http://127.0.0.1:{dash}/", timeout=10)
    finally:
        code, out, _ = run_cli(["ml", "ui", "--stop"], cwd=project.root)
    assert code == 0 and out.startswith("Stopped: mlflow")
