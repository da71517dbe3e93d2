"""``omg`` in a terminal: help, exit codes, messages, --format json, --debug."""

from __future__ import annotations

import json
import subprocess
import sys


def test_top_level_help(run_cli):
    code, out, _ = run_cli(["--help"])
    assert code == 0
    assert "usage: omg GROUP VERB [options]" in out
    for group in ("ml", "data", "feature", "train", "optim", "deploy", "ops"):
        assert f"\n  {group} " in out


def test_group_help_lists_verbs(run_cli):
    code, out, _ = run_cli(["train", "--help"])
    assert code == 0
    assert out.startswith("omg train VERB [options]")
    for verb in ("baseline", "train", "tune", "evaluate", "compare"):
        assert f"\n  {verb} " in out


def test_verb_help_shows_options_and_examples(run_cli):
    code, out, _ = run_cli(["train", "tune", "--help"])
    assert code == 0
    assert "usage: omg train tune" in out
    from omgmagics.commands import get_command

    cmd = get_command("train", "tune")
    assert "--trials" in out
    trials_help = next(a.kwargs["help"] for a in cmd.args if "--trials" in a.flags)
    assert trials_help.split()[0] in out
    assert "examples:\n  omg train tune " in out


def test_typo_in_verb_exits_2_with_did_you_mean(run_cli):
    from omgmagics.commands import REGISTRY, load_all

    load_all()
    code, out, err = run_cli(["train", "tun"])
    assert code == 2
    assert err.strip() == (f"error: Unknown verb for omg train 'tun'. Available: "
                           f"{', '.join(sorted(REGISTRY['train']))}. Did you mean: tune?")


def test_typo_in_group_exits_2(run_cli):
    code, _, err = run_cli(["trian", "tune"])
    assert code == 2
    assert "Unknown command group 'trian'." in err and "Did you mean: train?" in err


def test_bad_flag_exits_2(run_cli):
    code, _, err = run_cli(["ml", "status", "--bogus"])
    assert code == 2
    assert err.strip() == ("error: omg ml status: unrecognized arguments: --bogus. "
                           "See `omg ml status --help`.")


def test_kit_error_exits_1_with_message_only(run_cli, tmp_path):
    code, out, err = run_cli(["ml", "status"], cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: No omg.yaml found in ")
    assert "Traceback" not in err


def test_debug_shows_traceback(run_cli, tmp_path):
    code, _, err = run_cli(["ml", "status", "--debug"], cwd=tmp_path)
    assert code == 1
    assert "Traceback (most recent call last)" in err


def test_format_json(run_cli, demo_project):
    code, out, _ = run_cli(["ml", "status", "--format", "json"], cwd=demo_project)
    assert code == 0
    data = json.loads(out)
    assert data["title"] == "Project demo: no lifecycle runs yet"


def test_console_script_entry_point_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "omgmagics.cli", "ml", "status"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(f"error: No omg.yaml found in {tmp_path} or any parent folder.")
    out = subprocess.run([sys.executable, "-m", "omgmagics.cli", "ml", "stat"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Did you mean: status?" in out.stderr


def test_a_misspelt_flag_gets_a_did_you_mean_and_a_closed_pipe_no_traceback(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    omg = str(Path(sys.executable).with_name("omg"))
    run = subprocess.run([omg, "feature", "select", "--nocheck"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: omg feature select: unrecognized arguments: --nocheck. Did "
                                  "you mean: --no-check? See `omg feature select --help`.")
    # a reader that went away before the help was written (`| head -1` on a long page) gets no
    # BrokenPipeError traceback
    proc = subprocess.Popen([omg, "feature", "select", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""
