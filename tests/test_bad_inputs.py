"""Every bad input in docs/bad-inputs.md's table exits 2 with the message it quotes.

The table (between the ``bad-inputs`` markers in docs/bad-inputs.md) is the source of truth:
each row's case id names a builder below, and its message column must appear in the
one-line error. A row without a builder, or a builder without a row, fails the test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, SAMPLE, run_cli, tiny_model_dir

TABLE = ROOT / "docs" / "bad-inputs.md"
SMALL_INPUT_SECONDS = 300  # a small bad input fails in seconds; this bounds a hang


def documented_cases() -> dict[str, str]:
    text = TABLE.read_text(encoding="utf-8")
    table = text.split("<!-- bad-inputs:start -->")[1].split("<!-- bad-inputs:end -->")[0]
    cases = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit():
            cases[cells[1]] = cells[3].strip("`").replace("\\|", "|")
    return cases


class Setup:
    """A working columns-backend gate in a temporary folder, to be broken one way."""

    def __init__(self, folder: Path):
        self.folder = folder
        frame = pd.read_csv(SAMPLE)
        frame = frame[frame.split == "validation"].head(300).reset_index(drop=True)
        for d in DIMENSIONS:
            frame[f"{d}_ref"] = frame[[f"{d}_r1", f"{d}_r2"]].mean(axis=1)
            frame[f"{d}_cand"] = frame[f"{d}_ref"]
        self.frame = frame
        self.config = {
            "sample": {"path": "sample.csv"},
            "rubric": {"scale": [1, 5],
                       "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
            "slices": [str(ROOT / "slices")],
            "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
            "candidates": [{"name": "cand", "backend": "columns",
                            "columns": "{dimension}_cand"}],
            "gate": {"min_rows": 10, "on_inconclusive": "warn", "max_drop": 5.0}}

    def write(self, frame: pd.DataFrame | None = None, name: str = "sample.csv") -> Path:
        path = self.folder / name
        (self.frame if frame is None else frame).to_csv(path, index=False)
        return path

    def run(self, **changes) -> list[str]:
        config = {**self.config, **changes}
        path = self.folder / "gate.yaml"
        path.write_text(yaml.safe_dump(config))
        if not (self.folder / "sample.csv").exists():
            self.write()
        return ["run", "--config", str(path), "--out", str(self.folder / "out"), "--quiet"]

    def routed(self, route: list, **changes) -> list[str]:
        return self.run(candidates=[*self.config["candidates"],
                                    {"name": "routed", "route": route}], **changes)

    def slice_file(self, body: str) -> list[str]:
        path = self.folder / "extra.yaml"
        path.write_text(body)
        return self.run(slices=[str(ROOT / "slices"), str(path)])

    def changed(self, **columns) -> pd.DataFrame:
        frame = self.frame.copy()
        for column, (row, value) in columns.items():
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = value
        return frame

    def transformers_reference(self, model_dir: Path, **settings) -> list[str]:
        return self.run(reference={"name": "ref", "backend": "transformers",
                                   "model": str(model_dir), **settings})

    def generic_labels_reference(self, **settings) -> list[str]:
        """A model whose outputs say LABEL_0..LABEL_6, as the reference."""
        labels = tuple(f"LABEL_{i}" for i in range(len(DIMENSIONS)))
        return self.transformers_reference(tiny_model_dir(self.folder / "m", labels=labels),
                                           **settings)


def sample_case(mutate):
    def build(s: Setup):
        s.write(mutate(s))
        return s.run()
    return build


def corrupt_model(s: Setup) -> list[str]:
    model = tiny_model_dir(s.folder / "model")
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    return s.transformers_reference(model)


def pickled_model(s: Setup) -> list[str]:
    model = tiny_model_dir(s.folder / "model")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    return s.transformers_reference(model)


def alias_bomb(indent: str) -> str:
    """A "billion laughs": nine anchors, each aliasing the previous nine times (10^9
    nodes once expanded, under 1 KB written)."""
    lines = [f"{indent}a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{indent}{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


DEEP_WHERE = "{not: " * 60 + "{split: validation}" + "}" * 60


def raw_config(s: Setup, text: str) -> list[str]:
    """The working config with ``text`` written after it, as YAML text (not dumped)."""
    args = s.run()
    (s.folder / "gate.yaml").write_text(yaml.safe_dump(s.config) + text)
    return args


def sample_where(s: Setup, where: str) -> list[str]:
    """The working config whose sample block is written by hand with ``where``."""
    args = s.run()
    config = {k: v for k, v in s.config.items() if k != "sample"}
    (s.folder / "gate.yaml").write_text(yaml.safe_dump(config) + "sample:\n"
                                        "  path: sample.csv\n  where:" + where)
    return args


def edited_model(s: Setup, edit) -> list[str]:
    """The tiny model as the reference, its config.json changed by ``edit``."""
    model = tiny_model_dir(s.folder / "model")
    config = json.loads((model / "config.json").read_text())
    edit(config)
    (model / "config.json").write_text(json.dumps(config))
    return s.transformers_reference(model)


def fixed_width_csv(s: Setup) -> list[str]:
    """2 MB of 108-byte rows, then a Latin-1 byte at offset 8 + 20000 * 108 + 10."""
    rows = "".join(f"{i:06d},{'a' * 100}\n" for i in range(20000))
    data = ("id,text\n" + rows).encode() + "999999,caf\xe9\n".encode("latin-1")
    return s.run(sample={"path": str(write_bytes(s, "wide.csv", data))})


def text_and_number_ids(s: Setup) -> list[str]:
    frame = s.frame.copy()
    frame["id"] = frame["id"].astype(object)
    frame.loc[0, "id"], frame.loc[1, "id"] = 1, "1"
    frame.to_json(s.folder / "sample.jsonl", orient="records", lines=True)
    return s.run(sample={"path": "sample.jsonl"})


def regex_expectation(pattern: str):
    return lambda s: s.slice_file("expectations:\n  - type: expect_column_values_to_match_regex\n"
                                  f"    kwargs: {{column: text, regex: '{pattern}'}}\n")


def without_labels(config: dict) -> None:
    config.pop("id2label"), config.pop("label2id")
    config["num_labels"] = 1e12


def label_beyond_outputs(config: dict) -> None:
    config["id2label"]["9"] = config["id2label"].pop("6")


def two_labels(config: dict) -> None:
    config.pop("label2id")
    config["id2label"] = {"0": "clarity", "1": "tone"}


def existing_run(s: Setup) -> list[str]:
    args = s.run()
    (s.folder / "out").mkdir()
    (s.folder / "out" / "summary.json").write_text("{}")
    return args


BUILDERS = {
    # config
    "config-unknown-key": lambda s: s.run(gate={"max_dorp": 2}),
    "config-wrong-type": lambda s: s.run(gate={"max_drop": "lots"}),
    "config-not-yaml": lambda s: ["run", "--config", str(write(s, "bad.yaml", "sample: [")),
                                  "--quiet"],
    "config-not-a-mapping": lambda s: ["run", "--config", str(write(s, "list.yaml", "- a\n")),
                                       "--quiet"],
    "config-missing": lambda s: ["run", "--config", str(s.folder / "nope.yaml"), "--quiet"],
    "config-unknown-metric": lambda s: s.run(gate={"metric": "accuracy"}),
    "config-unknown-backend": lambda s: s.run(reference={"name": "ref", "backend": "tensorflow",
                                                         "model": "x"}),
    "config-unknown-recipe": lambda s: s.run(candidates=[{"name": "q", "from": "reference",
                                                          "recipe": "int4-magic"}]),
    "config-duplicate-scorer": lambda s: s.run(candidates=[{"name": "ref", "backend": "columns",
                                                            "columns": "{dimension}_cand"}]),
    "config-override-unknown-slice": lambda s: s.run(gate={"overrides": [
        {"slice": "headlinez", "max_drop": 2}]}),
    "config-template-without-dimension": lambda s: s.run(candidates=[
        {"name": "cand", "backend": "columns", "columns": "clarity_cand"}]),
    "config-runtime-not-torch": lambda s: s.run(candidates=[
        {"name": "cand", "backend": "onnxruntime", "model": "m.onnx", "runtime": "torchscript"}]),
    "config-runtime-onnx-recipe": lambda s: s.run(candidates=[
        {"name": "q", "from": "reference", "recipe": "onnx-int8-dynamic", "runtime": "eager"}]),
    "config-outputs-on-recipe": lambda s: s.run(candidates=[
        {"name": "q", "from": "reference", "recipe": "torch-bf16", "outputs": {"tone": 0}}]),
    "config-output-scale-not-increasing": lambda s: s.run(reference={
        "name": "ref", "backend": "transformers", "model": "m", "output_scale": [1, 0]}),
    "config-max-drop-nan": lambda s: s.run(gate={"max_drop": float("nan")}),
    "config-max-drop-negative": lambda s: s.run(gate={"max_drop": -1}),
    "config-max-drop-infinite": lambda s: s.run(gate={"max_drop": float("inf")}),
    "config-override-max-drop-nan": lambda s: s.run(gate={"overrides": [
        {"slice": "headlines", "max_drop": 2}, {"dimension": "tone", "max_drop": float("nan")}]}),
    # sample
    "sample-missing": lambda s: s.run(sample={"path": "missing.csv"}),
    "sample-unsupported-format": lambda s: s.run(sample={"path": str(write(s, "s.xlsx", "x"))}),
    "sample-not-utf8": lambda s: s.run(sample={"path": str(write_bytes(
        s, "latin.csv", "id,text\n1,caf\xe9\n".encode("latin-1")))}),
    "sample-no-rows": lambda s: s.run(sample={"path": str(s.write(s.frame.head(0),
                                                                  "empty.csv"))}),
    "sample-missing-rating-column": sample_case(
        lambda s: s.frame.drop(columns=["compliance_r2"])),
    "sample-missing-text-column": sample_case(lambda s: s.frame.drop(columns=["text"])),
    "sample-duplicate-id": sample_case(lambda s: s.changed(id=(5, s.frame.id[4]))),
    "sample-blank-text": sample_case(lambda s: s.changed(text=(7, "   "))),
    "sample-rating-off-scale": sample_case(lambda s: s.changed(tone_r1=(3, 7))),
    "sample-rating-not-numeric": sample_case(lambda s: s.changed(clarity_r2=(2, "high"))),
    "sample-where-selects-nothing": lambda s: s.run(sample={"path": "sample.csv",
                                                            "where": {"split": "test"}}),
    "sample-value-not-allowed": lambda s: s.run(sample={
        "path": "sample.csv", "allowed_values": {"channel": ["search", "email"]}}),
    "sample-prediction-column-missing": sample_case(
        lambda s: s.frame.drop(columns=["grammar_cand"])),
    "sample-nan-prediction": sample_case(lambda s: s.changed(tone_cand=(9, float("nan")))),
    # slices and expectations
    "slice-unknown-column": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {colour: red}\n"),
    "slice-unknown-operator": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {word_count: {atmost: 3}}\n"),
    "slice-bad-regex": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {text: {matches: '(free'}}\n"),
    "slice-regex-not-re2": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {text: {matches: '(a)\\1'}}\n"),
    "slice-wrong-value-type": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {word_count: five}\n"),
    "slice-duplicate-name": lambda s: s.slice_file(
        "slices:\n  - name: headlines\n    where: {content_type: headline}\n"),
    "slice-reserved-name": lambda s: s.slice_file(
        "slices:\n  - name: all\n    where: {content_type: headline}\n"),
    "slice-unknown-key": lambda s: s.slice_file(
        "slices:\n  - name: x\n    when: {content_type: headline}\n"),
    "slice-file-missing": lambda s: s.run(slices=[str(s.folder / "nope.yaml")]),
    "expectation-unknown-type": lambda s: s.slice_file(
        "expectations:\n  - type: expect_the_unexpected\n    kwargs: {column: text}\n"),
    "expectation-bad-arguments": lambda s: s.slice_file(
        "expectations:\n  - type: expect_column_values_to_be_in_set\n"
        "    kwargs: {column: channel, value_sett: [web]}\n"),
    "expectation-failing-error": lambda s: s.slice_file(
        "expectations:\n  - type: expect_column_values_to_be_in_set\n"
        "    kwargs: {column: brand, value_set: [Lumen Bank]}\n"),
    # models
    "model-missing": lambda s: s.transformers_reference(s.folder / "no-model"),
    "model-pickled-weights": pickled_model,
    "model-corrupt-weights": corrupt_model,
    "model-wrong-output-count": lambda s: s.transformers_reference(
        tiny_model_dir(s.folder / "m", labels=("clarity", "tone"))),
    "model-tokenizer-mismatch": lambda s: s.transformers_reference(
        tiny_model_dir(s.folder / "m", vocab_size=1000)),
    "model-labels-not-dimensions": lambda s: s.generic_labels_reference(),
    "outputs-unknown-dimension": lambda s: s.generic_labels_reference(
        outputs={"valence": "LABEL_0"}),
    "outputs-index-out-of-range": lambda s: s.generic_labels_reference(outputs={"clarity": 9}),
    "outputs-duplicate-target": lambda s: s.generic_labels_reference(
        outputs={**{d: f"LABEL_{i}" for i, d in enumerate(DIMENSIONS)}, "tone": 0}),
    # the run
    "out-already-holds-a-run": existing_run,
    # routed candidates
    "route-unknown-scorer": lambda s: s.routed([{"slice": "headlines", "to": "fp16"},
                                                {"default": "cand"}]),
    "route-no-default": lambda s: s.routed([{"slice": "headlines", "to": "ref"}]),
    "route-cycle": lambda s: s.routed([{"slice": "headlines", "to": "routed"},
                                       {"default": "cand"}]),
    "route-rating-column": lambda s: s.routed(
        [{"slice": "well_rated", "to": "ref"}, {"default": "cand"}],
        slices=[str(ROOT / "slices"), str(write(
            s, "rated.yaml", "slices:\n  - name: well_rated\n"
                             "    where: {compliance_r1: {min: 4}}\n"))]),
    "route-not-serving-column": lambda s: s.routed(
        [{"slice": "high_stakes", "to": "ref"}, {"default": "cand"}],
        sample={"path": "sample.csv", "serving_columns": ["channel"]}),
    # mixed precision (exclude)
    "recipe-exclude-unknown-layer": lambda s: s.run(
        reference={"name": "ref", "backend": "transformers",
                   "model": str(tiny_model_dir(s.folder / "m"))},
        candidates=[{"name": "q", "from": "reference", "recipe": "torch-int8-dynamic",
                     "exclude": ["bert.encoder.layer.*.output.dense", "no_such_layer"]}]),
    "config-exclude-wrong-recipe": lambda s: s.run(candidates=[
        {"name": "q", "from": "reference", "recipe": "torch-bf16", "exclude": ["bert.*"]}]),
    "config-exclude-not-a-recipe": lambda s: s.run(candidates=[
        {"name": "cand", "backend": "columns", "columns": "{dimension}_cand",
         "exclude": ["bert.*"]}]),
    "diagnose-unknown-candidate": lambda s: ["diagnose", str(finished_run(s)),
                                             "--candidate", "int4"],
    "repair-not-a-run-dir": lambda s: ["repair", str(s.folder), "--candidate", "cand"],
    # discovery
    "config-discovery-bad-option": lambda s: s.run(discovery={"max_conditions": 5}),
    "discover-not-a-run-dir": lambda s: ["discover", str(s.folder)],
    "discover-unknown-candidate": lambda s: ["discover", str(finished_run(s)),
                                             "--candidate", "int4"],
    "discover-bad-option": lambda s: ["discover", str(finished_run(s)), "--max-conditions", "4"],
    # report comparison
    "baseline-not-a-run-dir": lambda s: [*s.run(), "--baseline", str(s.folder)],
    # execution
    "execution-ray-not-installed": lambda s: (s.run(execution={"engine": "ray"}), without_ray(s)),
    "execution-address-unreachable": lambda s: s.run(execution={"engine": "ray",
                                                                "address": "ray://127.0.0.1:9"}),
    "execution-address-malformed": lambda s: s.run(execution={"engine": "ray",
                                                              "address": "head-node"}),
    # bounded inputs and errors that name their culprit (issue 22)
    "config-duplicate-key": lambda s: raw_config(s, "gate: {max_drop: 2}\n"),
    "config-alias-bomb": lambda s: sample_where(s, "\n" + alias_bomb("    ")),
    "config-recursive-alias": lambda s: sample_where(s, " &w {not: *w}\n"),
    "config-too-deep": lambda s: sample_where(s, f" {DEEP_WHERE}\n"),
    "config-not-a-regular-file": lambda s: ["run", "--config", "/dev/zero", "--quiet"],
    "config-seed-negative": lambda s: s.run(seed=-1),
    "config-max-drop-wide": lambda s: s.run(gate={"metric": "spearman", "max_drop": 1}),
    "config-bootstrap-resamples-huge": lambda s: s.run(gate={"bootstrap_resamples": 10**7}),
    "config-rater-is-prediction": lambda s: s.run(rubric={**s.config["rubric"], "dimensions": {
        **s.config["rubric"]["dimensions"], "clarity": ["clarity_r1", "clarity_cand"]}}),
    "route-on-id-column": lambda s: s.routed(
        [{"slice": "by_id", "to": "ref"}, {"default": "cand"}],
        slices=[str(ROOT / "slices"), str(write(
            s, "by_id.yaml", "slices:\n  - name: by_id\n    where: {id: {in: ['1']}}\n"))]),
    "config-scale-too-wide": lambda s: s.run(rubric={**s.config["rubric"],
                                                     "scale": [1, 100000]}),
    "config-reserved-scorer-name": lambda s: s.run(candidates=[
        {"name": "human", "backend": "columns", "columns": "{dimension}_cand"}]),
    "config-reserved-scorer-underscore": lambda s: s.run(candidates=[
        {"name": "_majority", "backend": "columns", "columns": "{dimension}_cand"}]),
    "config-template-unknown-placeholder": lambda s: s.run(candidates=[
        {"name": "cand", "backend": "columns", "columns": "{dimension}_{foo}"}]),
    "route-to-null": lambda s: s.routed([{"slice": "headlines", "to": None},
                                         {"default": "cand"}]),
    "slice-alias-bomb": lambda s: s.slice_file("slices:\n  - name: x\n    where:\n"
                                               + alias_bomb("      ")),
    "slice-too-deep": lambda s: s.slice_file(f"slices:\n  - name: x\n"
                                             f"    where: {DEEP_WHERE}\n"),
    "slice-duplicate-key": lambda s: s.slice_file(
        "slices:\n  - name: x\n    where: {split: validation}\n    where: {split: test}\n"),
    "expectation-regex-not-re2": regex_expectation("(a)\\1"),
    "expectation-regex-backtracking": regex_expectation("^(\\w+\\s?)*X$"),
    "sample-not-utf8-deep": fixed_width_csv,
    "sample-id-text-collision": text_and_number_ids,
    "model-num-labels-huge": lambda s: edited_model(s, without_labels),
    "model-id2label-beyond-outputs": lambda s: edited_model(s, label_beyond_outputs),
    "model-labels-weights-mismatch": lambda s: edited_model(s, two_labels),
}


def without_ray(s: Setup) -> dict:
    """The environment of a Python where ``import ray`` fails, as without the extra."""
    shim = s.folder / "no-ray" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\", "
                                      "name='ray')\n")
    return {"PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}


def finished_run(s: Setup) -> Path:
    """A run directory as `validator run` leaves it (read back, verified, by RunDir)."""
    args = s.run()
    result = run_cli(*args[:-2], str(s.folder / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    return s.folder / "run"


def write(s: Setup, name: str, text: str) -> Path:
    (s.folder / name).write_text(text)
    return s.folder / name


def write_bytes(s: Setup, name: str, data: bytes) -> Path:
    (s.folder / name).write_bytes(data)
    return s.folder / name


CASES = documented_cases()


def test_the_table_and_the_builders_name_the_same_cases():
    assert len(CASES) >= 25
    assert set(CASES) == set(BUILDERS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_the_documented_message(case, tmp_path):
    built = BUILDERS[case](Setup(tmp_path))  # the arguments, or (arguments, environment)
    args, env = built if isinstance(built, tuple) else (built, None)
    result = run_cli(*args, env=env, timeout=SMALL_INPUT_SECONDS)
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert CASES[case] in lines[0], (CASES[case], lines[0])
    assert not (tmp_path / "out" / "report.html").exists()
