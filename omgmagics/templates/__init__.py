"""Project templates (core layer): what ``omg ml init`` copies into a new project.

``project/`` holds the five phase notebooks (``project/notebooks`` links to the repository's
``notebooks/``, the nbdev source), the exported project module ``projectlib/``, nbdev config and the
ADR template. ``omg.yaml`` is written by :mod:`omgmagics.scaffold` from the data.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_TEMPLATE = Path(__file__).resolve().parent / "project"


def notebooks_dir() -> Path:
    """The folder of phase notebook templates (``notebooks/0N_x/0N_x.ipynb``)."""
    return (PROJECT_TEMPLATE / "notebooks").resolve()
