"""The lifecycle floor, above every phase: what runs phases and reads across them (the retrain job and
its queue runner, the pipeline status). The runner, run manifests, gate dispatch and the review index
sit on the same floor (``omgmagics/runner.py``, ``runs.py``, ``gates.py``, ``review.py``)."""
