"""Bounded inputs (issue 22): YAML that would expand or nest without end, model
config.json sizes, backtracking expectation regexes, how the sample's ids and texts are
read, the calibration-overlap warning and markdown from the data in summary.md.

The end-to-end form of each bad input (exit 2, one line) is a row of
docs/bad-inputs.md, run by test_bad_inputs.py; here the pieces, and the time limits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DIMENSIONS, ROOT, SAMPLE, run_cli, tiny_model_dir
from validator.bounded_yaml import MAX_DEPTH, load_yaml_file, load_yaml_text
from validator.errors import ConfigError, ModelError, SampleError, SliceError


def timed_in_child(code: str, limit_s: float = 60) -> float:
    """Seconds ``code`` (which sets ``elapsed``) took in a fresh interpreter; a hang is
    killed at ``limit_s`` and fails the test instead of stalling the suite."""
    script = textwrap.dedent(code) + "\nprint(elapsed)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT / "tests", timeout=limit_s)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])


BOMB = "".join(
    [f"a: &a [{', '.join(['lol'] * 9)}]\n"]
    + [f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
       for previous, name in zip("abcdefgh", "bcdefghi")])


def test_a_billion_laughs_is_refused_in_well_under_a_second():
    elapsed = timed_in_child(f"""
        import time
        from validator.bounded_yaml import load_yaml_text
        from validator.errors import ConfigError
        start = time.perf_counter()
        try:
            load_yaml_text({BOMB!r}, "bomb.yaml", ConfigError)
        except ConfigError as exc:
            assert "aliases expand to more than 100,000 nodes" in str(exc), exc
        else:
            raise AssertionError("the bomb loaded")
        elapsed = time.perf_counter() - start
        """)
    assert elapsed < 1.0


@pytest.mark.parametrize("text, message", [
    ("a: &a [*a]\n", "line 1: an alias refers to the node that contains it"),
    ("w: &w {not: *w}\n", "line 1: an alias refers to the node that contains it"),
    ("gate: {max_drop: 1}\nseed: 1\ngate: {max_drop: 2}\n",
     "line 3: key 'gate' is written twice (first on line 1)"),
    ("a: {b: 1, c: 2, b: 3}\n", "line 1: key 'b' is written twice"),
    ("w: " + "{not: " * (MAX_DEPTH + 5) + "{a: 1}" + "}" * (MAX_DEPTH + 5) + "\n",
     f"nesting deeper than {MAX_DEPTH} levels"),
    ("[" * 100_000 + "]" * 100_000, f"nesting deeper than {MAX_DEPTH} levels"),
    # each anchor one level deeper than the last: shallow as written, deep once expanded
    ("a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 80)),
     f"nesting deeper than {MAX_DEPTH} levels (aliases expanded)"),
])
def test_yaml_beyond_the_bounds_is_refused_with_the_line(text, message):
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "gate.yaml", ConfigError)
    assert info.value.args[0].startswith("gate.yaml: ") and message in info.value.args[0]


def test_yaml_within_the_bounds_loads_as_safe_load_would():
    shared = "d: &d {batch_size: 8, device: cpu}\nc: {<<: *d, device: cuda}\n"
    assert load_yaml_text(shared, "x", ConfigError) == {
        "d": {"batch_size": 8, "device": "cpu"}, "c": {"batch_size": 8, "device": "cuda"}}
    assert load_yaml_text("{1: a, '1': b}", "x", ConfigError) == {1: "a", "1": "b"}
    assert load_yaml_text("", "x", ConfigError) is None


def test_a_file_that_is_not_regular_or_too_large_is_refused(tmp_path):
    with pytest.raises(SliceError, match="^/dev/zero: cannot read the slice file: not a "
                                         "regular file$"):
        load_yaml_file(Path("/dev/zero"), SliceError, "slice file")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (4 * 1024 * 1024) + b"\n")
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        load_yaml_file(big, ConfigError, "config file")


def test_the_config_refuses_a_duplicate_gate_key_instead_of_keeping_the_last(tmp_path):
    from validator.config import load_config

    path = tmp_path / "gate.yaml"
    path.write_text((ROOT / "validator" / "assets" / "default.yaml").read_text()
                    + "gate: {max_drop: 50}\n")
    with pytest.raises(ConfigError, match="key 'gate' is written twice"):
        load_config(path)


# -- a model's config.json -------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model") / "m")


def inspect(model_dir: Path, tmp_path: Path, edit) -> None:
    import shutil

    from validator.scorers.transformers_backend import inspect_model_dir

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))

    class Scorer:
        outputs, output_scale, key = None, None, "reference"

    inspect_model_dir(copy, DIMENSIONS, Scorer, (1, 5))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(num_labels=10**12), "num_labels: must be a whole number from 1 to 1,024"),
    (lambda c: c.update(vocab_size=1e9), "vocab_size: must be a whole number"),
    (lambda c: c.update(hidden_size=True), "hidden_size: must be a whole number"),
    (lambda c: c.update(num_labels=3), "num_labels is 3 but id2label names 7 labels"),
    (lambda c: c["id2label"].update({"x": "tone"}), "id2label: key 'x' is not an output"),
    (lambda c: c.update(id2label={str(i): "d" for i in range(1025)}),
     "id2label: must map output indexes to names (1 to 1024 entries)"),
    # each in range, together 17 GB for an embedding table the weights do not have
    (lambda c: c.update(vocab_size=4_000_000, hidden_size=1_024),
     "vocab_size is 4,000,000 but the weights' bert.embeddings.word_embeddings.weight has "
     "30,522"),
    (lambda c: c.update(hidden_size=65_536),
     "hidden_size is 65,536 but the weights' bert.embeddings.word_embeddings.weight"),
    # each in range, together tens of GB of layers the weights do not hold
    (lambda c: c.update(num_hidden_layers=512), "num_hidden_layers is 512 but the weights "
                                                "hold 2 layers"),
    (lambda c: c.update(intermediate_size=262_144),
     "intermediate_size is 262,144 but the weights' "
     "bert.encoder.layer.0.intermediate.dense.weight has 64"),
    (lambda c: c.update(hidden_dim="big", intermediate_size=None) or c.pop("intermediate_size"),
     "hidden_dim: must be a whole number, got 'big'"),  # DistilBERT's name for it
])
def test_model_config_sizes_are_checked_before_anything_is_built(model_dir, tmp_path, edit,
                                                                 message):
    with pytest.raises(ModelError, match="config.json: " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        inspect(model_dir, tmp_path, edit)


def test_a_deeply_nested_config_json_is_a_model_error(tmp_path):
    from validator.scorers.model_config import read_model_config

    path = tmp_path / "config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match="cannot load the model config"):
        read_model_config(path)


# -- expectation regexes on RE2 ---------------------------------------------------------

def test_a_backtracking_expectation_regex_runs_in_linear_time():
    """``^(\\w+\\s?)*X$`` backtracks exponentially on Python's re (hours on 30 words)."""
    elapsed = timed_in_child(r"""
        import time
        import pandas as pd
        from validator.data.expectations import parse_expectations, run_suite
        texts = [" ".join(["word"] * 30 + [str(i)]) for i in range(2000)]
        frame = pd.DataFrame({"id": range(2000), "text": texts})
        declared = parse_expectations([{"type": "expect_column_values_to_match_regex",
                                        "kwargs": {"column": "text",
                                                   "regex": r"^(\w+\s?)*X$"}}], "x.yaml")
        start = time.perf_counter()
        [result] = run_suite(frame, declared, "id")
        assert result["status"] == "fail" and result["unexpected_count"] == 2000, result
        elapsed = time.perf_counter() - start
        """)
    assert elapsed < 30


REGEX_CASES = [
    ("expect_column_values_to_match_regex", {"regex": "^a"}),
    ("expect_column_values_to_match_regex", {"regex": "b+", "mostly": 0.4}),
    ("expect_column_values_to_not_match_regex", {"regex": r"\d"}),
    ("expect_column_values_to_match_regex_list", {"regex_list": ["a", "c"]}),
    ("expect_column_values_to_match_regex_list", {"regex_list": ["a", "b"], "match_on": "all"}),
    ("expect_column_values_to_not_match_regex_list", {"regex_list": ["z", "1"]}),
]


@pytest.mark.parametrize("kind, kwargs", REGEX_CASES)
def test_re2_regex_expectations_agree_with_great_expectations(kind, kwargs):
    """The same verdict and count as great-expectations' own (Python re) evaluation."""
    import great_expectations as gx

    from validator.data.expectations import Expectation, _instantiate, run_suite

    frame = pd.DataFrame({"id": range(8), "text": ["abc", "bbb", "a1", None, "cab", "zz",
                                                   "ab", "1b"]})
    expectation = Expectation(kind, {"column": "text", **kwargs}, "warning", "x.yaml")
    [ours] = run_suite(frame, [expectation], "id")
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a") \
        .add_batch_definition_whole_dataframe("b").get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name="s")
    suite.add_expectation(_instantiate(expectation))
    theirs = batch.validate(suite).results[0]
    assert (ours["status"] == "pass") == theirs.success
    assert ours["unexpected_count"] == theirs.result["unexpected_count"]


def test_an_expectation_regex_re2_cannot_run_is_refused_when_the_file_is_read():
    from validator.data.expectations import parse_expectations

    with pytest.raises(SliceError, match=r"x.yaml: expectations\[0\].kwargs.regex_list\[1\]: "
                                         r"regex '\(\?=a\)' is not supported by RE2"):
        parse_expectations([{"type": "expect_column_values_to_not_match_regex_list",
                             "kwargs": {"column": "text", "regex_list": ["a", "(?=a)"]}}],
                           "x.yaml")


# -- how the sample is read -------------------------------------------------------------

def test_texts_that_look_missing_are_texts_and_ratings_keep_missing_words(tmp_path):
    from validator.data.sample import read_table

    path = tmp_path / "s.csv"
    path.write_text("id,text,tone_r1\n007,None,N/A\n2,N/A,3\n3,,NA\n4,null,4\n")
    frame = read_table(path, ("id", "text"))
    assert frame["text"].tolist()[:2] == ["None", "N/A"] and frame["text"].isna().tolist() \
        == [False, False, True, False]
    assert frame["id"].tolist() == ["007", "2", "3", "4"]
    assert frame["tone_r1"].isna().tolist() == [True, False, True, False]


def test_a_gate_with_none_and_na_texts_runs(tmp_path):
    """On main these texts were read as missing and refused by the not-null check."""
    from conftest import columns_config

    frame = pd.read_csv(SAMPLE)
    frame = frame[frame.split == "validation"].head(200).reset_index(drop=True)
    for d in DIMENSIONS:
        frame[f"{d}_ref"] = frame[f"{d}_cand"] = frame[[f"{d}_r1", f"{d}_r2"]].mean(axis=1)
    frame.loc[0, "text"], frame.loc[1, "text"] = "None", "N/A"
    sample = tmp_path / "sample.csv"
    frame.to_csv(sample, index=False)
    config = columns_config(tmp_path, frame, sample={"path": str(sample)},
                            gate={"min_rows": 10, "on_inconclusive": "warn", "max_drop": 5.0})
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert {"None", "N/A"} <= set(table["text"])


@pytest.mark.parametrize("ids, rows", [
    ([1, " 1", 2], (1, 2)),
    (["a", "b", "a "], (1, 3)),
    ([3.0, "x", "3.0"], (1, 3)),
])
def test_ids_are_compared_as_text_and_collisions_name_both_rows(ids, rows):
    from validator.data.sample import normalised_ids

    with pytest.raises(SampleError, match=rf"s.csv: data rows {rows[0]} and {rows[1]} have "
                                          rf"the same id"):
        normalised_ids(pd.Series(ids, name="id", dtype=object), Path("s.csv"))
    normalised = normalised_ids(pd.Series([1, "2", " x ", None, "  "], name="id",
                                          dtype=object), Path("s.csv"))
    assert normalised[:3].tolist() == ["1", "2", "x"] and normalised[3:].isna().all()


def test_invalid_utf8_is_located_in_the_file_not_in_pandas_buffer(tmp_path):
    from validator.data.sample import invalid_utf8

    body = "id,text\n" + "".join(f"{i},caf\u00e9 {i}\n" for i in range(300_000))
    path = tmp_path / "s.csv"
    path.write_bytes(body.encode() + b"x,\xff\n")
    assert invalid_utf8(path) == (f"invalid start byte at byte {len(body.encode()) + 2}, "
                                  f"line {300_002}")


# -- calibration rows that are gate rows ------------------------------------------------

def calibrated_config(tmp_path: Path, model: Path, where: dict | None) -> Path:
    import yaml

    config = {"sample": {"path": str(SAMPLE), **({"where": where} if where else {})},
              "rubric": {"scale": [1, 5],
                         "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
              "slices": [str(ROOT / "slices" / "content_types.yaml")],
              "reference": {"name": "fp32", "backend": "transformers", "model": str(model)},
              "candidates": [{"name": "q", "from": "reference",
                              "recipe": "onnx-int8-static"}]}
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_calibration_rows_that_are_gate_rows_are_warned_in_the_plan(tmp_path, model_dir):
    from validator.config import load_config
    from validator.plan import make_plan

    overlapping = make_plan(load_config(calibrated_config(tmp_path, model_dir, None)))
    [warning] = overlapping.warnings
    assert warning.startswith(f"{tmp_path / 'gate.yaml'}: candidates[0].calibration.where: "
                              f"2000 of the 2000 rows it selects are also gate rows; q is "
                              f"judged on rows it was calibrated on")
    disjoint = make_plan(load_config(calibrated_config(tmp_path, model_dir,
                                                       {"split": "validation"})))
    assert disjoint.warnings == ()


# -- what the outputs show --------------------------------------------------------------

MARKED = "**tone** [x](e.x) <b>_y_ `z`|"


@pytest.fixture(scope="module")
def marked_run(tmp_path_factory) -> Path:
    """A columns gate whose dimension name is markdown and whose candidate fails on it."""
    from conftest import columns_config

    folder = tmp_path_factory.mktemp("marked")
    frame = pd.read_csv(SAMPLE)
    frame = frame[frame.split == "validation"].head(400).reset_index(drop=True)
    frame["ref"] = frame[["tone_r1", "tone_r2"]].mean(axis=1).round()
    frame["cand"] = np.clip(frame["ref"] + 2, 1, 5)
    config = columns_config(folder, frame, rubric={"scale": [1, 5],
                                                   "dimensions": {MARKED: ["tone_r1", "tone_r2"]}},
                            reference={"name": "ref", "backend": "columns",
                                       "columns": {MARKED: "ref"}},
                            candidates=[{"name": "cand", "backend": "columns",
                                         "columns": {MARKED: "cand"}}],
                            gate={"min_rows": 10, "policy": "point"})
    result = run_cli("run", "--config", str(config), "--out", str(folder / "run"), "--quiet")
    assert result.returncode == 1, result.stderr
    return folder / "run"


def test_summary_md_escapes_markdown_from_the_data(marked_run):
    markdown = (marked_run / "summary.md").read_text()
    escaped = r"\*\*tone\*\* \[x\](e.x) \<b\>_y\_ \`z\`\|"  # "_y" cannot open
    assert escaped in markdown and MARKED not in markdown


def test_warnings_reach_summary_md_and_the_report(marked_run):
    from validator.outputs.html import render_html
    from validator.outputs.markdown import render_markdown
    from validator.record.schema import read_record

    record = read_record(marked_run / "summary.json")
    assert record.warnings == []  # the key is written, empty when nothing is doubtful
    warned = record.model_copy(update={"warnings": ["calibration <overlap> *here*"]})
    assert r"> **Warning:** calibration \<overlap\> \*here\*" in render_markdown(warned)
    table = pd.read_parquet(marked_run / "predictions.parquet")
    assert f"Warning: {escape('calibration <overlap> *here*')}" in render_html(warned, table)
