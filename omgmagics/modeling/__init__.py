"""Model development (core layer, phase 3): tracking, model factories, baselines, training, tuning,
evaluation, comparison, the model card and the phase 3 gate.

Every module imports its heavy libraries (scikit-learn, xgboost, torch, mlflow, optuna, shap, fairlearn)
inside functions, so importing this package is free.
"""

from __future__ import annotations


def load_model(project, ref):
    """Load a model saved by the kit: a bundle folder, ``models:/NAME@alias``, ``runs:/ID/model``.

    See :func:`omgmagics.modeling.models.load_model`.
    """
    from .models import load_model as _load

    return _load(project, ref)
