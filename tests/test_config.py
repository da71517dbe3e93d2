"""omg.yaml: found by walking up, validated key by key, overridden by omg.local.yaml."""

from __future__ import annotations

import re

import pytest

from omgmagics.config import load_config
from omgmagics.errors import ConfigError, ProjectError
from omgmagics.project import Project


def test_found_by_walking_up(demo_project):
    sub = demo_project / "notebooks" / "01_discovery"
    assert Project.find(sub).root == demo_project


def test_no_project_is_a_clear_error(tmp_path):
    with pytest.raises(ProjectError, match=re.escape(
            f"No omg.yaml found in {tmp_path} or any parent folder. Create a project with "
            "`omg ml init NAME` (or `%omgml init NAME`) and run commands inside it.")):
        Project.find(tmp_path)


def test_unknown_key_gets_did_you_mean(demo_project):
    cfg = demo_project / "omg.yaml"
    cfg.write_text(cfg.read_text().replace("  objective:", "  objectve:"))
    with pytest.raises(ConfigError, match=re.escape(
            "omg.yaml: unknown key 'brief.objectve'. Did you mean: objective? Valid keys under brief: "
            "business_problem, checkpoints, constraints, objective, sensitive_features, stakeholders, "
            "time_column, timeline.")):
        load_config(cfg)


def test_wrong_type_is_named(demo_project):
    cfg = demo_project / "omg.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 42", "seed: forty-two"))
    with pytest.raises(ConfigError, match=re.escape("omg.yaml: 'seed' must be int, got 'forty-two'.")):
        load_config(cfg)


def test_yaml_syntax_error_names_the_line(tmp_path):
    cfg = tmp_path / "omg.yaml"
    cfg.write_text("project:\n  name: x\nbrief: [unclosed\n")
    with pytest.raises(ConfigError, match=r"The omg\.yaml .* is not valid YAML at line 4, column 1"):
        load_config(cfg)


def test_local_override_is_merged_and_validated(demo_project):
    (demo_project / "omg.local.yaml").write_text("tracking:\n  uri: http://127.0.0.1:5000\n")
    cfg = load_config(demo_project / "omg.yaml")
    assert cfg.get_path("tracking.uri") == "http://127.0.0.1:5000"
    assert cfg.get_path("tracking.experiment") == "demo"
    (demo_project / "omg.local.yaml").write_text("trackin:\n  uri: x\n")
    with pytest.raises(ConfigError, match=r"omg\.local\.yaml: unknown key 'trackin'\. Did you mean: tracking\?"):
        load_config(demo_project / "omg.yaml")


def test_local_override_is_git_ignored(demo_project):
    assert "omg.local.yaml" in (demo_project / ".gitignore").read_text().splitlines()
