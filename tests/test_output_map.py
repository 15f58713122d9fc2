"""A team's own model without editing it: ``outputs`` (dimension -> id2label name or
output index) and ``output_scale`` (the model's range onto the rubric scale)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, SAMPLE, run_cli, tiny_model_dir
from validator.errors import ConfigError, ModelError
from validator.scorers.output_map import OutputMap, resolve_outputs
from validator.scorers.transformers_backend import load_transformers_scorer

DIMS = ["clarity", "tone", "compliance"]
LABELS = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def resolve(id2label, outputs=None, output_scale=None, dimensions=DIMS):
    config = SimpleNamespace(key="candidates[0]", outputs=outputs, output_scale=output_scale)
    return resolve_outputs(Path("m"), id2label, dimensions, config, (1, 5))


def test_by_name_by_label_and_by_index():
    assert resolve({0: "tone", 1: "compliance", 2: "clarity"}).index == (2, 0, 1)
    assert resolve(LABELS, {"clarity": "LABEL_2", "tone": 0, "compliance": "LABEL_1"}
                   ).index == (2, 0, 1)
    # unmapped dimensions keep matching by name; extra model outputs may go unused
    assert resolve({0: "V", 1: "tone", 2: "compliance", 3: "A"}, {"clarity": "A"}
                   ).index == (3, 1, 2)


@pytest.mark.parametrize("outputs, message", [
    ({"valence": 0, "clarity": 0, "tone": 1, "compliance": 2},
     "candidates[0].outputs.valence: unknown dimension (valid: clarity, tone, compliance)"),
    ({"clarity": 3, "tone": 0, "compliance": 1},
     "candidates[0].outputs.clarity: output index 3 is out of range: m has 3 outputs (0-2)"),
    ({"clarity": 0, "tone": "LABEL_0", "compliance": 1},
     "candidates[0].outputs: dimensions 'clarity' and 'tone' both read output 0 of m"),
    ({"clarity": "LABEL_9", "tone": 0, "compliance": 1},
     "candidates[0].outputs.clarity: m has no output labelled 'LABEL_9'"),
])
def test_bad_mappings_name_the_key(outputs, message):
    with pytest.raises(ConfigError) as error:
        resolve(LABELS, outputs)
    assert message in str(error.value)


def test_unmatched_labels_suggest_the_mapping_with_the_model_labels():
    with pytest.raises(ModelError) as error:
        resolve(LABELS, {"tone": "LABEL_1"})
    assert str(error.value).endswith(
        "id2label does not name dimension 'clarity' (labels: LABEL_0, LABEL_1, LABEL_2); map "
        "dimensions to outputs with candidates[0].outputs, e.g. outputs: "
        "{clarity: LABEL_0, compliance: LABEL_2}")


def test_output_scale_maps_the_model_range_onto_the_rubric():
    mapping = resolve(LABELS, {"clarity": 2, "tone": 1, "compliance": 0}, (0.0, 1.0))
    raw = np.array([[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(mapping.apply(raw), [[5.0, 3.0, 1.0], [1.0, 5.0, 2.0]])
    assert mapping.key != OutputMap(mapping.index).key  # the map is in the fingerprint


def scaled_copy(source: Path, target: Path) -> Path:
    """The model at ``source`` with its outputs moved from [1, 5] into [0, 1]: (x - 1) / 4."""
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(source)
    with torch.no_grad():
        model.classifier.weight /= 4
        model.classifier.bias.sub_(1).div_(4)
    model.save_pretrained(target)
    for path in source.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special")):
            (target / path.name).write_bytes(path.read_bytes())
    return target


def test_gate_a_model_with_generic_labels_and_one_scored_in_0_1(tmp_path):
    reference = tiny_model_dir(tmp_path / "reference")
    tiny_model_dir(tmp_path / "generic",  # same weights, outputs LABEL_0..LABEL_6
                   labels=tuple(f"LABEL_{i}" for i in range(len(DIMENSIONS))))
    unit = scaled_copy(reference, tmp_path / "unit")
    outputs = {d: f"LABEL_{i}" for i, d in enumerate(DIMENSIONS)}
    outputs.update(clarity="LABEL_1", persuasiveness=0, brand_voice=2)  # a swap, by index too
    frame = pd.read_csv(SAMPLE)
    frame[frame.split == "validation"].head(300).to_csv(tmp_path / "sample.csv", index=False)
    config = {
        "sample": {"path": "sample.csv"},
        "rubric": {"scale": [1, 5], "dimensions": {d: [f"{d}_r1", f"{d}_r2"]
                                                   for d in DIMENSIONS}},
        "slices": [str(ROOT / "slices" / "content_types.yaml")],
        "reference": {"name": "ref", "backend": "transformers", "model": "reference"},
        "candidates": [
            {"name": "generic", "backend": "transformers", "model": "generic",
             "outputs": outputs},
            {"name": "unit", "backend": "transformers", "model": "unit",
             "output_scale": [0, 1]}],
        "gate": {"min_rows": 10, "on_inconclusive": "warn"}}
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("run", "--config", str(tmp_path / "gate.yaml"), "--out",
                     str(tmp_path / "out"), "--quiet")
    assert result.returncode in (0, 1), result.stderr
    table = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    swapped = {"clarity": "persuasiveness", "persuasiveness": "clarity"}
    for d in DIMENSIONS:
        np.testing.assert_allclose(table[f"generic:{d}"], table[f"ref:{swapped.get(d, d)}"],
                                   atol=1e-6)
        np.testing.assert_allclose(table[f"unit:{d}"], table[f"ref:{d}"], atol=1e-5)
    summary = yaml.safe_load((tmp_path / "out" / "summary.json").read_text())
    unit_checks = [c for c in summary["checks"] if c["candidate"] == "unit"]
    assert unit_checks and all(c["degradation"] == 0 for c in unit_checks)
    # without output_scale the same model's scores lie in [0, 1]
    plain = SimpleNamespace(name="unit", model=str(unit), batch_size=8, max_length=64,
                            key="candidates[1]", device="cpu", runtime=None, outputs=None,
                            output_scale=None)
    raw = load_transformers_scorer(plain, DIMENSIONS, (1, 5)).predict(
        table.text.head(50).tolist())
    assert ((raw > 0) & (raw < 1)).all()
