"""Phase 1, discovery & planning (core layer).

- :mod:`.brief`: the brief of ``omg.yaml`` checked against the data; ``docs/problem_statement.md``.
- :mod:`.tables`: input checks shared by every step (not a table, one column, empty column, ...).
- :mod:`.checks`, :mod:`.checklist`: the data audit checklist, computed from the data with
  vectorized pandas/numpy.
- :mod:`.privacy`: personal data found by column name and by content patterns.
- :mod:`.audit`: the audit verb: checklist + fg-data-profiling HTML report + ``data_audit.json``.
- :mod:`.feasibility`: a quick, honest prototype and ``feasibility.json``.
- :mod:`.plan`: ``docs/project_plan.md`` and ``decisions/adr-000-project-scope.md``.

Functions take DataFrames, a :class:`~omgmagics.discovery.brief.Brief`, paths and plain values, and
return :class:`omgmagics.results.Report` objects. Nothing here imports IPython or prints; heavy
libraries (scikit-learn, data_profiling) are imported inside the functions that use them.
"""

from __future__ import annotations

AUDIT_JSON = "data_audit.json"
AUDIT_HTML = "data_audit.html"
FEASIBILITY_JSON = "feasibility.json"
PROBLEM_STATEMENT = "problem_statement.md"
PROJECT_PLAN = "project_plan.md"
SCOPE_ADR = "adr-000-project-scope.md"
