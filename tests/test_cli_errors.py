"""Bad input exits 2 with one line naming the file and the key or column."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, LENIENT_GATE, ROOT, columns_config, run_cli


@pytest.fixture()
def good(tmp_path, scored_rows):
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    return columns_config(tmp_path, frame, gate=LENIENT_GATE)


def rewrite(path, change):
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))
    return path


def bad_slice(tmp_path, good, body: str):
    slice_file = tmp_path / "bad_slices.yaml"
    slice_file.write_text(body)
    return rewrite(good, lambda c: c.update(slices=[str(slice_file)])), str(slice_file)


def assert_exit_2(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_slice_with_unknown_column(tmp_path, good):
    config, name = bad_slice(tmp_path, good, "slices:\n  - name: x\n    where: {colour: red}\n")
    assert_exit_2(run_cli("run", "--config", str(config), "--quiet"),
                  name, "slices[0].where.colour", "unknown column 'colour'")


def test_slice_with_bad_operator(tmp_path, good):
    config, name = bad_slice(tmp_path, good,
                             "slices:\n  - name: x\n    where: {word_count: {atmost: 3}}\n")
    assert_exit_2(run_cli("run", "--config", str(config), "--quiet"),
                  name, "slices[0].where.word_count.atmost", "unknown operator 'atmost'")


def test_slice_with_bad_regex(tmp_path, good):
    config, name = bad_slice(tmp_path, good,
                             "slices:\n  - name: x\n    where: {text: {matches: '(free'}}\n")
    assert_exit_2(run_cli("run", "--config", str(config), "--quiet"),
                  name, "slices[0].where.text.matches", "invalid regex")


def test_config_with_unknown_key(tmp_path, good):
    rewrite(good, lambda c: c["gate"].update(max_dorp=2))
    assert_exit_2(run_cli("run", "--config", str(good), "--quiet"),
                  str(good), "gate.max_dorp", "unknown key")


def test_sample_missing_a_rating_column(tmp_path, scored_rows):
    frame = scored_rows.drop(columns=["compliance_r2"])
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    config = columns_config(tmp_path, frame)
    assert_exit_2(run_cli("run", "--config", str(config), "--quiet"),
                  "sample.parquet", "missing column 'compliance_r2'")


def test_rating_outside_the_scale(tmp_path, scored_rows):
    frame = scored_rows.copy()
    frame.loc[3, "tone_r1"] = 7
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    assert_exit_2(run_cli("run", "--config", str(columns_config(tmp_path, frame)), "--quiet"),
                  "column 'tone_r1'", "expect_column_values_to_be_between",
                  "max_value=5", str(frame.loc[3, "id"]))


def test_unknown_recipe_lists_valid_names(tmp_path, good):
    rewrite(good, lambda c: c.update(candidates=[{"name": "q", "from": "reference",
                                                  "recipe": "int4-magic"}]))
    assert_exit_2(run_cli("run", "--config", str(good), "--quiet"),
                  "candidates[0].recipe", "unknown recipe 'int4-magic'", "torch-int8-dynamic")


def test_missing_model_directory(tmp_path, good):
    rewrite(good, lambda c: c.update(reference={"name": "ref", "backend": "transformers",
                                                "model": "no/such/model"}))
    assert_exit_2(run_cli("run", "--config", str(good), "--quiet"),
                  "no/such/model", "model directory not found")


def test_nan_predictions_are_an_error(tmp_path, scored_rows):
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    frame.loc[5, "clarity_cand"] = float("nan")
    assert_exit_2(run_cli("run", "--config", str(columns_config(tmp_path, frame)), "--quiet"),
                  "scorer 'cand'", "NaN", str(frame.loc[5, "id"]))


def test_slices_check_prints_counts_and_rejects_bad_files(tmp_path):
    result = run_cli("slices", "check")
    assert result.returncode == 0, result.stderr
    counts = pd.read_csv(ROOT / "fixtures" / "sample.csv").content_type.value_counts()
    assert "headlines" in result.stdout and str(counts["headline"]) in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("slices:\n  - name: x\n    where: {content_type: {in: headline}}\n")
    assert_exit_2(run_cli("slices", "check", str(bad)), str(bad), "'in' takes a non-empty list")


def test_existing_run_directory_is_not_overwritten_without_force(tmp_path, good):
    out = tmp_path / "run"
    first = run_cli("run", "--config", str(good), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr
    before = (out / "summary.json").read_bytes()
    assert_exit_2(run_cli("run", "--config", str(good), "--out", str(out), "--quiet"),
                  str(out), "already holds a run", "--force")
    assert (out / "summary.json").read_bytes() == before
    again = run_cli("run", "--config", str(good), "--out", str(out), "--quiet", "--force")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("target", ["empty", "missing"])
def test_an_out_that_is_a_symbolic_link_is_refused_naming_it(tmp_path, good, target):
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / target)
    assert_exit_2(run_cli("run", "--config", str(good), "--out", str(link), "--quiet"),
                  f"{link}: is a symbolic link (to {tmp_path / target})",
                  "give the folder itself as --out")
    assert link.is_symlink() and not (tmp_path / "missing").exists()
    assert list((tmp_path / "empty").iterdir()) == []
