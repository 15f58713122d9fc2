"""Which model output feeds each rubric dimension, and on what scale.

By default a dimension reads the output its model's ``id2label`` names after it. A
scorer's ``outputs`` maps a dimension to another label or to an output index (models
often say ``LABEL_0`` or ``V``/``A``/``D``), and ``output_scale: [low, high]`` maps the
model's output range linearly onto the rubric scale (sigmoid scores in [0, 1] onto
[1, 5], say). Recipes inherit their reference's map. The map is part of the scorer's
fingerprint, since it determines the predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from validator.errors import ConfigError, ModelError


@dataclass(frozen=True)
class OutputMap:
    index: tuple[int, ...]  # model output column of each dimension, in the rubric's order
    scale: tuple[tuple[float, float], tuple[float, float]] | None = None  # from -> onto

    def apply(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs (rows, outputs) -> predictions (rows, dimensions)."""
        values = outputs[:, list(self.index)]
        if self.scale is None:
            return values
        (low, high), (onto_low, onto_high) = self.scale
        return onto_low + (values.astype(np.float64) - low) * ((onto_high - onto_low)
                                                               / (high - low))

    @property
    def key(self) -> str:
        """The map as text, for fingerprints."""
        return json.dumps({"index": self.index, "scale": self.scale})


def _suggestion(unmatched: list[str], unused: list[str]) -> str:
    pairs = ", ".join(f"{d}: {label}" for d, label in zip(unmatched, unused))
    return f"{{{pairs}}}"


def _target_index(target: str | int, names: dict[str, int], width: int, path: Path,
                  where: str) -> int:
    if isinstance(target, int):
        if target >= width:
            raise ConfigError(f"{where}: output index {target} is out of range: {path} has "
                              f"{width} outputs (0-{width - 1})")
        return target
    if target not in names:
        raise ConfigError(f"{where}: {path} has no output labelled {target!r} "
                          f"(labels: {', '.join(names)})")
    return names[target]


def resolve_outputs(path: Path, id2label: dict, dimensions: list[str], scorer_config,
                    rubric_scale: tuple[int, int]) -> OutputMap:
    """The OutputMap of a model with ``id2label`` under the scorer's ``outputs`` and
    ``output_scale``; errors name the model and the config key."""
    names = {str(label): int(index) for index, label in id2label.items()}
    mapping, key = scorer_config.outputs or {}, scorer_config.key
    for dimension in mapping:
        if dimension not in dimensions:
            raise ConfigError(f"{key}.outputs.{dimension}: unknown dimension "
                              f"(valid: {', '.join(dimensions)})")
    if not mapping and len(names) != len(dimensions):
        raise ModelError(f"{path}: the model has {len(names)} outputs but the rubric has "
                         f"{len(dimensions)} dimensions ({', '.join(dimensions)})")
    mapped = {d: _target_index(target, names, len(names), path, f"{key}.outputs.{d}")
              for d, target in mapping.items()}
    unmatched = [d for d in dimensions if d not in mapped and d not in names]
    if unmatched:
        used = set(mapped.values()) | {names[d] for d in dimensions
                                       if d in names and d not in mapped}
        unused = [label for label, i in names.items() if i not in used]
        raise ModelError(f"{path}: config.json id2label does not name dimension "
                         f"{unmatched[0]!r} (labels: {', '.join(names)}); map dimensions to "
                         f"outputs with {key}.outputs, e.g. outputs: "
                         f"{_suggestion(unmatched, unused)}")
    index = [mapped[d] if d in mapped else names[d] for d in dimensions]
    for i, d in enumerate(dimensions):
        first = index.index(index[i])
        if first != i:
            raise ConfigError(f"{key}.outputs: dimensions {dimensions[first]!r} and {d!r} "
                              f"both read output {index[i]} of {path}")
    scale = None
    if scorer_config.output_scale is not None:
        scale = (tuple(map(float, scorer_config.output_scale)),
                 tuple(map(float, rubric_scale)))
    return OutputMap(tuple(index), scale)
