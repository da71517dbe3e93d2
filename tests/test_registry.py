"""The one registry: every verb of the design's command table is there, documented, and parsed the same way
by both shells."""

from __future__ import annotations

import pytest

from omgmagics.commands import REGISTRY, Context, HelpRequested, execute, load_all
from omgmagics.errors import NotImplementedYetError, UsageError

DESIGN_VERBS = {
    "ml": {"init", "run", "status", "gate"},
    "data": {"collect", "validate", "label", "augment", "split"},
    "feature": {"extract", "select", "store"},
    "train": {"baseline", "train", "tune", "evaluate", "compare"},
    "optim": {"profile", "quantize", "prune"},
    "deploy": {"package", "serve", "cloud"},
    "ops": {"monitor", "pipeline", "drift", "retrain"},
}
# Verbs the kit adds beyond the design's table (each documented in its group's --help).
ADDED_VERBS = {
    "ml": {"brief", "feasibility", "plan", "report", "ui"},
    "train": {"card", "ensemble"},
    "deploy": {"stop"},
    "ops": {"review", "simulate"},
}
# Minimal arguments for verbs with required positionals.
REQUIRED = {("ml", "init"): ["x"], ("ml", "gate"): ["list"]}

ALL = [(g, v) for g in load_all() for v in REGISTRY[g]]


def test_every_design_verb_is_registered():
    load_all()
    assert set(REGISTRY) == set(DESIGN_VERBS)
    for group, verbs in DESIGN_VERBS.items():
        # every design verb is there, and a verb nobody declared here is a test failure
        assert set(REGISTRY[group]) == verbs | ADDED_VERBS.get(group, set()), group


@pytest.mark.parametrize(("group", "verb"), ALL)
def test_every_verb_has_help_and_every_option_is_documented(group, verb):
    cmd = REGISTRY[group][verb]
    assert cmd.help and len(cmd.help) > 15
    parser = cmd.parser()
    for action in parser._actions:
        assert action.help, f"{group} {verb}: option {action.option_strings or action.dest} has no help"
    with pytest.raises(HelpRequested) as h:
        cmd.parse(["--help"])
    assert f"omg {group} {verb}" in h.value.text
    assert cmd.help.split(",")[0] in h.value.text.replace("\n", " ")


@pytest.mark.parametrize(("group", "verb"), ALL)
def test_both_shells_parse_the_same_words_identically(group, verb):
    cmd = REGISTRY[group][verb]
    argv = REQUIRED.get((group, verb), []) + ["--format", "json", "-q"]
    assert vars(cmd.parse(argv, "magic")) == vars(cmd.parse(argv, "cli"))


def test_planned_verbs_say_so_in_both_shells(monkeypatch):
    """A verb registered with `planned` (options final, implementation later) raises a clear error."""
    from omgmagics.commands import arg, planned

    monkeypatch.setitem(REGISTRY, "optim", dict(REGISTRY["optim"]))
    planned("optim", "distill", arg("--teacher", help="teacher model"), help="distill a model into a "
            "smaller one", issue="issue #99 (example)")
    messages = {}
    for shell in ("magic", "cli"):
        with pytest.raises(NotImplementedYetError) as err:
            execute("optim", ["distill", "--teacher", "m"], Context(shell=shell))
        messages[shell] = str(err.value)
    assert messages["magic"] == ("`%omgoptim distill` is not implemented yet: it lands with issue #99 "
                                 "(example). See `%omgoptim distill --help` for the options it will take.")
    assert messages["cli"] == messages["magic"].replace("%omgoptim ", "omg optim ")


def test_unknown_verb_suggests_the_near_miss():
    verbs = ", ".join(sorted(REGISTRY["train"]))
    with pytest.raises(UsageError) as err:
        execute("train", ["tun"], Context())
    assert str(err.value) == f"Unknown verb for omg train 'tun'. Available: {verbs}. Did you mean: tune?"


def test_bad_flag_is_a_usage_error_not_an_exit():
    with pytest.raises(UsageError) as err:
        execute("train", ["tune", "--trials", "many"], Context(shell="magic"))
    assert str(err.value) == ("%omgtrain tune: argument --trials: invalid int value: 'many'. "
                              "See `%omgtrain tune --help`.")
