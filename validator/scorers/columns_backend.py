"""The ``columns`` backend: predictions already in the sample (bring your own scores).

Not a model: nothing is predicted, the gate rows' prediction columns are read.
``columns`` is a template such as ``"{dimension}_fp32"`` or a mapping
dimension -> column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from validator.errors import ConfigError, SampleError
from validator.data.sample import Sample


class ColumnPredictions:
    """Ready predictions: one sample column per rubric dimension."""

    backend = "columns"

    def __init__(self, scorer_config, dimensions: list[str], scale: tuple[int, int]):
        """``scale``: the rubric's, on which the columns already are (read as given)."""
        self.name, self.key = scorer_config.name, scorer_config.key
        self.dimensions = list(dimensions)
        self.columns = self._columns(scorer_config.columns, dimensions)

    def _columns(self, spec, dimensions: list[str]) -> list[str]:
        if isinstance(spec, str):
            if "{dimension}" not in spec:
                raise ConfigError(f"{self.key}.columns: the template {spec!r} must contain "
                                  f"'{{dimension}}'")
            return [spec.replace("{dimension}", d) for d in dimensions]
        missing = [d for d in dimensions if d not in spec]
        if missing:
            raise ConfigError(f"{self.key}.columns: no column given for dimension {missing[0]!r}")
        return [spec[d] for d in dimensions]

    def read(self, sample: Sample) -> np.ndarray:
        """The gate rows' predictions, shape (rows, dimensions), as floats."""
        for column in self.columns:
            if column not in sample.frame.columns:
                raise SampleError(f"{sample.path}: missing column {column!r} "
                                  f"(predictions of scorer {self.name!r})")
            values = pd.to_numeric(sample.frame[column], errors="coerce")
            bad = values.isna() & sample.frame[column].notna()
            if bad.any():
                raise SampleError(f"{sample.path}: column {column!r} holds non-numeric value "
                                  f"{sample.frame[column][bad].iloc[0]!r} for id "
                                  f"{bad.idxmax()!r}")
        values = sample.frame[self.columns].apply(pd.to_numeric, errors="coerce")
        return values.to_numpy(dtype=np.float64)
