"""Model families as objects (core layer).

Each kind of model is one :class:`Family` in :data:`FAMILIES`, the way papermill registers its
engines: XGBoost, LightGBM, scikit-learn, the torch MLP, and the ensemble of other families' models. A family owns how its models are fitted
and early-stopped, saved in their safe format and loaded back, predicted, explained, measured and
optimized, so the verbs never switch on a family's name. A project module may register its own
family with :func:`register_family` (and model types of that family with ``register_model_type``).
"""

from __future__ import annotations

from ...errors import DataError, unknown_choice
from .base import RESERVED, Family, Fitted, inner_estimator
from .ensemble import EnsembleFamily
from .lightgbm import LightGBMFamily
from .mlp import MLPFamily
from .sklearn import SKLEARN_TRUSTED_TYPES, SklearnFamily, not_loaded
from .xgboost import XGBoostFamily

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to the registry (keyed by its ``name``) and return it."""
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered family `name`.

    Raises
    ------
    DataError
        For a name no family has (a model file from a newer or foreign kit).
    """
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise DataError(unknown_choice("model family", name, FAMILIES) +
                        " The model was saved by another version of omg or by hand.") from None


for _family in (XGBoostFamily(), LightGBMFamily(), SklearnFamily(), MLPFamily(), EnsembleFamily()):
    register_family(_family)
del _family

__all__ = ["FAMILIES", "RESERVED", "SKLEARN_TRUSTED_TYPES", "Family", "Fitted", "get_family",
           "inner_estimator", "not_loaded", "register_family"]
