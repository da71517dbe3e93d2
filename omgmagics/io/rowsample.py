"""A seeded uniform row sample of a table read in batches (core layer)."""

from __future__ import annotations

from typing import Any

import numpy as np


class RowSample:
    """A seeded uniform sample of at most `size` rows of a table read in batches, in table order.

    Each row draws a key from one random stream (``numpy.random.default_rng(seed)``, consumed in row
    order) and the rows with the `size` smallest keys are kept (bottom-k sampling), so the sample is
    the same for any batch size; a table of at most `size` rows is kept whole. Memory: at most about
    twice `size` rows at any time.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.rng = np.random.default_rng(seed)
        self.parts: list[tuple[np.ndarray, np.ndarray, Any]] = []
        self.kept = 0
        self.seen = 0
        self.limit = np.inf

    def add(self, df: Any) -> None:
        n = len(df)
        keys = self.rng.random(n)
        pos = np.arange(self.seen, self.seen + n, dtype=np.int64)
        self.seen += n
        take = keys < self.limit
        if not take.all():
            keys, pos, df = keys[take], pos[take], df[take]
        if len(keys):
            self.parts.append((keys, pos, df))
            self.kept += len(keys)
        if self.kept > 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        import pandas as pd

        keys = np.concatenate([k for k, _, _ in self.parts])
        pos = np.concatenate([p for _, p, _ in self.parts])
        frame = pd.concat([f for _, _, f in self.parts], ignore_index=True)
        if len(keys) > self.size:
            keep = np.lexsort((pos, keys))[:self.size]
            keep.sort()  # keys are drawn in row order: sorted indices keep table order
            self.limit = float(keys[keep].max())
            keys, pos, frame = keys[keep], pos[keep], frame.iloc[keep]
        self.parts = [(keys, pos, frame.reset_index(drop=True))]
        self.kept = len(keys)

    def frame(self, dtypes: dict[str, Any] | None = None) -> Any:
        """The sample as a DataFrame indexed by row position in the table; `dtypes` (the table's)
        restores categories that batches with different categories lost when put together."""
        import pandas as pd

        if not self.parts:
            return None
        self._compact()
        _, pos, frame = self.parts[0]
        frame = frame.set_axis(pd_index(pos), axis=0)
        for col, dtype in (dtypes or {}).items():
            if isinstance(dtype, pd.CategoricalDtype) and col in frame.columns \
                    and not isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype("category")
        return frame


def pd_index(pos: np.ndarray) -> Any:
    import pandas as pd

    if len(pos) and pos[0] == 0 and pos[-1] == len(pos) - 1:
        return pd.RangeIndex(len(pos))
    return pd.Index(pos)
