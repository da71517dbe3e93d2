"""The MLflow pyfunc loader of a bundle (core layer): ``loader_module`` in the bundle's ``MLmodel``.

``mlflow.pyfunc.load_model(bundle)`` and ``mlflow models serve -m bundle`` call
:func:`_load_pyfunc` with the bundle's ``data/omg`` folder; the bundle is verified (sha256 manifest)
before anything in it is read, and predictions go through the same code as the kit's server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BundlePyfunc:
    """What MLflow calls ``predict`` on: a DataFrame of raw records in, predictions and scores out."""

    def __init__(self, bundle: Any):
        from .signature import RequestValidator

        self.bundle = bundle
        self.validator = RequestValidator(bundle.signature, max_batch=10**9)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        from .signature import InvalidRequest, jsonable_record

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        rows = [jsonable_record(r) for r in frame.to_dict("records")]
        try:
            records, _ = self.validator.records(rows)
        except InvalidRequest as exc:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import BAD_REQUEST

            raise MlflowException(exc.body()["message"], error_code=BAD_REQUEST) from None
        return pd.DataFrame(self.bundle.predict_records(records))

    def get_raw_model(self) -> Any:
        return self.bundle


def _load_pyfunc(data_path: str) -> BundlePyfunc:
    """MLflow's entry point: ``data_path`` is ``BUNDLE/data/omg``."""
    import sys

    from .bundle import ServingBundle

    # MLflow has put the bundle's code/ first on sys.path; importing the project module from there
    # must not write bytecode into the bundle, or it would no longer verify.
    sys.dont_write_bytecode = True
    root = Path(data_path).resolve().parents[1]
    return BundlePyfunc(ServingBundle.load(root, verify=True, isolate=False))
