"""The ``columns`` backend: predictions already in the sample (bring your own scores).

``columns`` is a template such as ``"{dimension}_fp32"`` or a mapping
dimension -> column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from validator.errors import ConfigError, SampleError
from validator.sample import Sample
from validator.scorers import ProgressFactory, Scorer, no_progress


class ColumnsScorer(Scorer):
    backend = "columns"

    def __init__(self, scorer_config, dimensions: list[str]):
        super().__init__(scorer_config.name, dimensions)
        self.key = scorer_config.key
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

    def score(self, sample: Sample, progress: ProgressFactory = no_progress,
              tokens=None) -> np.ndarray:
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
        with progress(f"reading {self.name}", len(sample.frame)) as advance:
            values = sample.frame[self.columns].apply(pd.to_numeric, errors="coerce")
            advance(len(values))
        return values.to_numpy(dtype=np.float64)
