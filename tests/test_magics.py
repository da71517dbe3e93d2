"""The magics in a real IPython shell: registration, help, {var} expansion, --out, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from omgmagics.commands import Context
from omgmagics.errors import DataError, UsageError


def shown(cap) -> str:
    """Everything the user saw: printed text and displayed objects (their plain-text form)."""
    return cap.stdout + "".join(o.data.get("text/plain", "") for o in cap.outputs)


MAGICS = ["omgml", "omgdata", "omgfeature", "omgtrain", "omgoptim", "omgdeploy", "omgops"]


def test_load_ext_registers_the_seven_magics(ipython):
    line = ipython.magics_manager.magics["line"]
    assert all(m in line for m in MAGICS)


def test_question_mark_lists_the_verbs(ipython):
    doc = ipython.magics_manager.magics["line"]["omgtrain"].__doc__
    assert doc.startswith("%omgtrain VERB [options]")
    for verb in ("baseline", "train", "tune", "evaluate", "compare"):
        assert f"\n  {verb} " in doc
    info = ipython.object_inspect("%omgtrain")  # what `%omgtrain?` shows
    assert info["found"] and info["docstring"] == doc


def test_verb_help_is_displayed_not_an_error(ipython):
    with capture_output() as cap:
        ipython.run_line_magic("omgtrain", "tune --help")
    assert "usage: %omgtrain tune" in shown(cap)
    assert "--trials TRIALS" in shown(cap)


def test_error_shows_one_message_not_a_traceback(ipython):
    with capture_output() as cap:
        ipython.run_cell("%omgtrain tun")
    assert "UsageError" in cap.stdout
    from omgmagics.commands import REGISTRY

    assert (f"Unknown verb for %omgtrain 'tun'. Available: {', '.join(sorted(REGISTRY['train']))}. "
            "Did you mean: tune?") in cap.stdout
    assert "Traceback" not in cap.stdout and "File " not in cap.stdout


def test_errors_are_real_exceptions_for_code(ipython):
    with pytest.raises(UsageError):
        ipython.run_line_magic("omgtrain", "tun")


def test_variables_expand_into_magic_lines(ipython, demo_project):
    os.chdir(demo_project)
    ipython.user_ns["n_runs"] = 0
    with capture_output() as cap:
        ipython.run_cell("%omgml status --runs {n_runs}")
    assert "--runs must be at least 1, got 0." in cap.stdout


def test_out_binds_the_result(ipython, demo_project):
    os.chdir(demo_project)
    with capture_output() as cap:
        ipython.run_line_magic("omgml", "status --out st")
    assert "no lifecycle runs yet" in shown(cap)
    assert ipython.user_ns["st"].title == "Project demo: no lifecycle runs yet"


def test_dataframes_in_the_namespace_are_inputs(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    ctx = Context(shell="magic", namespace={"train_df": df, "n": 3})
    assert ctx.table("train_df") is df
    with pytest.raises(DataError, match="The notebook variable 'n' is a int, not a pandas DataFrame."):
        ctx.table("n")
    with pytest.raises(DataError, match=r"'nope' is neither a file nor a DataFrame in the notebook\. "
                                        r"DataFrames here: train_df\."):
        ctx.table("nope")


def test_tab_completion_of_verbs_and_options(ipython):
    from omgmagics.completion import complete

    assert complete("%omgtrain tu") == ["tune"]
    from omgmagics.commands import REGISTRY

    assert complete("%omgtrain ") == sorted(REGISTRY["train"])
    assert "--trials" in complete("%omgtrain tune --tr")
    _, matches = ipython.complete("tu", "%omgtrain tu", 12)
    assert "tune" in matches


def test_load_ext_stays_light():
    """Heavy libraries are imported lazily: loading the extension imports none of them."""
    code = ("import sys; from IPython.core.interactiveshell import InteractiveShell; "
            "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'omgmagics'); "
            "heavy = [m for m in ('pandas', 'numpy', 'sklearn', 'torch', 'mlflow', 'xgboost', "
            "'papermill', 'data_profiling', 'optuna', 'shap') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
