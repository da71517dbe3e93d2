"""The kit is a template kit for any table: no template or generic module names the demo's data.

What is specific to the Adult demo lives in ``omgmagics/datasets/`` (its data, its project code);
everything else — the phase notebooks under ``notebooks/``, the package's modules, templates, docs and
config files — must work for any table, so none of it may name a column or a label of the demo.

Ordinary English words that are also Adult columns (``age``, ``sex``, ``race``, ``income``,
``education``, ``occupation``, ``relationship``) are allowed: a generic kit uses them in prose and in its
list of sensitive-attribute names. The demo's own identifiers — the compound column names, ``fnlwgt``,
``workclass``, the label values ``>50K`` / ``<=50K`` and its hyphenated category values such as
``Married-civ-spouse`` — are not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omgmagics.datasets import ADULT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "omgmagics"
DEMO_HOME = PACKAGE / "datasets"
NOTEBOOKS = ROOT / "notebooks"

# Adult columns that are ordinary English and appear legitimately in generic prose and in the
# sensitive-name list of omgmagics/scaffold.py.
ENGLISH_WORDS = {"age", "sex", "race", "income", "education", "occupation", "relationship"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}


def _forbidden_columns() -> list[str]:
    assert ENGLISH_WORDS <= set(ADULT_COLUMNS), "ENGLISH_WORDS names a column the demo no longer has"
    return [c for c in ADULT_COLUMNS if c not in ENGLISH_WORDS]


def _column_pattern(columns: list[str]) -> re.Pattern:
    # The raw UCI files spell them with hyphens (capital-gain), the kit with underscores; both forms
    # are the demo's. Case-insensitive: CAPITAL_GAIN is the same name. A substring is enough
    # (capital_gains, df.workclass): none of these is part of an ordinary word.
    alts = [re.escape(c).replace("_", "[_-]") for c in columns]
    return re.compile("|".join(alts), re.IGNORECASE)


# ">50K", "<=50K", also HTML-escaped (a notebook output or a rendered template).
LABEL_PATTERN = re.compile(r"(?:>|&gt;|<=|&lt;=)\s*50K\b")


def _text_files() -> list[Path]:
    """Every text file of notebooks/ and of omgmagics/ outside omgmagics/datasets/."""
    files = []
    for top in (NOTEBOOKS, PACKAGE):
        for path in sorted(top.rglob("*")):
            if not path.is_file() or SKIP_DIRS & set(path.relative_to(ROOT).parts):
                continue
            if path.is_relative_to(DEMO_HOME):
                continue
            raw = path.read_bytes()
            if b"\0" in raw:
                continue  # binary (compiled files, images)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def _hits(pattern: re.Pattern, files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in pattern.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{no}: {m.group(0)!r} in {line.strip()[:160]}")
    return found


def _demo_category_values() -> list[str]:
    """The demo's hyphenated category values written like 'Married-civ-spouse' or 'Self-emp-inc'.

    Only a capitalised word, a hyphen and a lower-case word: place names ('United-States') and
    '7th-8th' are left out, they are not the demo's alone.
    """
    from omgmagics.datasets import load_demo

    df = load_demo("test")
    values = set()
    for col in df.columns:
        if df[col].dtype == object:
            values.update(v for v in df[col].dropna().unique()
                          if re.fullmatch(r"[A-Z][a-z]+-[a-z][a-z-]*", str(v)))
    return sorted(values)


def test_file_list_covers_the_templates():
    files = {p.relative_to(ROOT).as_posix() for p in _text_files()}
    nbs = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS.rglob("*.ipynb")
           if ".ipynb_checkpoints" not in p.parts}
    assert len(nbs) >= 5 and nbs <= files
    assert "omgmagics/scaffold.py" in files
    assert any(f.startswith("omgmagics/templates/") and not f.endswith(".py") for f in files)
    assert not any(f.startswith("omgmagics/datasets/") for f in files)


def test_patterns_find_what_they_must():
    pattern = _column_pattern(_forbidden_columns())
    for text in ("df['capital_gain']", "capital-loss", "HOURS_PER_WEEK*0.8", "x.workclass",
                 "fnlwgt", "native_country", "education_num", "marital_status"):
        assert pattern.search(text), text
    for text in ("age", "education level", "sex, race", "the relationship between", "income",
                 "hours per week", "a capital letter"):
        assert not pattern.search(text), text
    for text in ('"income == \'>50K\'"', "<=50K", "&gt;50K"):
        assert LABEL_PATTERN.search(text), text
    for text in ("50k rows", "a 50K table", "1.50K"):
        assert not LABEL_PATTERN.search(text), text


def test_no_template_names_a_demo_column():
    hits = _hits(_column_pattern(_forbidden_columns()), _text_files())
    assert not hits, ("The demo's column names appear outside omgmagics/datasets/ (move the code to "
                      "the demo project or make it generic):\n" + "\n".join(hits))


def test_no_template_names_a_demo_label():
    hits = _hits(LABEL_PATTERN, _text_files())
    assert not hits, "The demo's label values appear outside omgmagics/datasets/:\n" + "\n".join(hits)


def test_no_template_names_a_demo_category_value():
    values = _demo_category_values()
    if not values:
        pytest.fail("no hyphenated category values found in the demo data: the check lost its list")
    pattern = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, values)) + r")(?![\w-])")
    hits = _hits(pattern, _text_files())
    assert not hits, ("The demo's category values appear outside omgmagics/datasets/:\n"
                      + "\n".join(hits))
