"""Operations (core layer, phase 5): monitoring, drift detection, the retrain queue, retraining,
pipeline state, the iteration review and the phase 5 gate.

- :mod:`.drift`: per-feature PSI / KS / chi-square / Jensen-Shannon / normalized Wasserstein, streaming
  over partitioned parquet with bounded memory.
- :mod:`.predlog`: the prediction log and the feedback (ground truth) written by serving (phase 4).
- :mod:`.monitor`: volume, latency, errors, scores, missingness and the live metric per time window,
  alerts, a dashboard.
- :mod:`.queue` and :mod:`.retrain`: a durable priority queue of retrain jobs and the job itself.
- :mod:`.pipeline`, :mod:`.review`, :mod:`.simulate`, :mod:`.gate`.

Importing this package is free: every module imports numpy, pandas, pyarrow or scipy inside functions or
only when it is itself imported by a verb.
"""

from __future__ import annotations
