"""What a run reads back is verified, and a run writes only where it may (docs/trust.md):
the prediction cache (re-scored batches, HMAC), run files (sha256 and verdicts), --out
(manifest, --force, lock), and a closed stdout."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import (DIMENSIONS, LENIENT_GATE, ROOT, columns_config, reseal, run_cli,
                      tiny_model_dir)
from validator.cache import PredictionCache, row_keys
from validator.cache_check import catch_probability
from validator.cli import app
from validator.record.ownership import MANIFEST_NAME, lock_path
from validator.scorers import no_progress
from validator.scoring import score_cached
from test_cache import TEXTS, FakeScorer


# -- the prediction cache -----------------------------------------------------------------

class BatchDependentScorer(FakeScorer):
    """Like dynamic INT8: a row's prediction depends on the other rows of its batch."""

    def run_batch(self, batch):
        values = super().run_batch(batch)
        return values + 0.01 * batch["attention_mask"].sum(axis=1).max()


def edit_chunks(folder: Path, change) -> int:
    """Rewrite every chunk's values with ``change(keys, values)``, renamed to its new
    sha256 as an attacker with write access would; returns the chunks edited."""
    edited = 0
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        arrays["values"] = change(arrays["keys"], arrays["values"])
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        path.unlink()
        (folder / (hashlib.sha256(payload).hexdigest()[:32] + ".npz")).write_bytes(payload)
        edited += 1
    return edited


def test_a_faithful_cache_of_batch_dependent_predictions_agrees_exactly(tmp_path):
    cache = PredictionCache(tmp_path)
    fresh, _, none = score_cached(BatchDependentScorer(), TEXTS, no_progress, cache)
    again, from_cache, check = score_cached(BatchDependentScorer(), TEXTS, no_progress, cache)
    assert none is None and from_cache == len(TEXTS)
    np.testing.assert_array_equal(again, fresh)
    assert check["rows_checked"] >= 8 and check["rows_disagreeing"] == 0
    assert check["max_difference"] == 0.0 and not check["rescored"]
    # one text alone is scored in another batch: its prediction differs, which is why
    # a check must re-score whole batches
    alone = BatchDependentScorer().predict([TEXTS[0]])
    assert not np.allclose(alone, fresh[0])


def test_an_edited_chunk_is_detected_discarded_and_scored_again(tmp_path, capsys):
    cache = PredictionCache(tmp_path)
    expected, _, _ = score_cached(BatchDependentScorer(), TEXTS, no_progress, cache)
    folder = tmp_path / "predictions" / "fake-model-v1"
    assert edit_chunks(folder, lambda keys, values: np.full_like(values, 5.0)) > 0
    scorer = BatchDependentScorer()
    values, from_cache, check = score_cached(scorer, TEXTS, no_progress, cache)
    np.testing.assert_array_equal(values, expected)  # scored afresh, not the edit
    assert check["rescored"] and check["rows_disagreeing"] > 0 and from_cache == 0
    assert "disagree with the cache" in capsys.readouterr().err
    values, _, check = score_cached(BatchDependentScorer(), TEXTS, no_progress, cache)
    np.testing.assert_array_equal(values, expected)
    assert not check["rescored"]  # the edited chunks were deleted, the fresh ones kept


def test_with_a_key_unsigned_or_mis_signed_chunks_are_discarded(tmp_path, monkeypatch, capsys):
    cache = PredictionCache(tmp_path)
    expected, _, _ = score_cached(FakeScorer(), TEXTS, no_progress, cache)  # unsigned
    monkeypatch.setenv("SLICE_VALIDATOR_CACHE_KEY", "ci-secret")
    scorer = FakeScorer()
    values, from_cache, _ = score_cached(scorer, TEXTS, no_progress, PredictionCache(tmp_path))
    np.testing.assert_array_equal(values, expected)
    assert from_cache == 0 and scorer.batches == math.ceil(41 / 4)
    assert "unsigned or mis-signed" in capsys.readouterr().err
    signed = sorted((tmp_path / "predictions" / "fake-model-v1").glob("*.npz.sig"))
    assert signed  # written signed this time
    _, from_cache, check = score_cached(FakeScorer(), TEXTS, no_progress,
                                        PredictionCache(tmp_path))
    assert from_cache == len(TEXTS) and check["signed"] and check["chunks_discarded"] == 0
    monkeypatch.setenv("SLICE_VALIDATOR_CACHE_KEY", "another-secret")
    _, from_cache, _ = score_cached(FakeScorer(), TEXTS, no_progress, PredictionCache(tmp_path))
    assert from_cache == 0


def test_catch_probability_is_the_hypergeometric_bound():
    sizes = [4] * 100
    odds = catch_probability(sizes, 8)
    assert odds["0.1"] == round(1 - math.comb(90, 8) / math.comb(100, 8), 4)
    assert odds["1"] == 1.0 and odds["0.01"] == round(1 - math.comb(99, 8) / math.comb(100, 8), 4)
    assert catch_probability([4] * 5, 5)["0.01"] == 1.0  # every batch checked


def test_cache_variable_pointing_at_a_file_exits_2_naming_it(tmp_path, scored_rows):
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    config = columns_config(tmp_path, candidate_equal(scored_rows))
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet",
                     env={"SLICE_VALIDATOR_CACHE": str(blocker)})
    assert result.returncode == 2, result.stderr
    assert f"SLICE_VALIDATOR_CACHE={blocker}" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_cache_edited_to_another_scorers_values_cannot_pass_the_gate(tmp_path, scored_rows):
    """A real model candidate fails against the reference; its cached predictions are
    then edited to the reference's (the attack of issue 22). The next run detects it,
    scores afresh and still fails."""
    model = tiny_model_dir(tmp_path / "model", initializer_range=0.3)
    config = columns_config(tmp_path, scored_rows.head(400), candidates=[
        {"name": "cand", "backend": "transformers", "model": str(model)}])
    env = {"SLICE_VALIDATOR_CACHE": str(tmp_path / "cache")}
    first = run_cli("run", "--config", str(config), "--out", str(tmp_path / "one"), "--quiet",
                    env=env)
    assert first.returncode == 1, first.stderr
    table = pd.read_parquet(tmp_path / "one" / "predictions.parquet").drop_duplicates("text")
    reference = dict(zip(row_keys(table["text"].tolist()).tolist(),
                         table[[f"ref:{d}" for d in DIMENSIONS]].to_numpy()))
    folders = list((tmp_path / "cache" / "predictions").iterdir())
    assert len(folders) == 1  # the candidate's: the reference is read from the sample
    assert edit_chunks(folders[0], lambda keys, values: np.array(
        [reference[key] for key in keys.tolist()])) > 0
    second = run_cli("run", "--config", str(config), "--out", str(tmp_path / "two"), env=env)
    assert second.returncode == 1, second.stderr
    assert "disagree with the cache" in second.stderr
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    check = summary["scorers"][1]["cache_check"]
    assert check["rescored"] and check["rows_disagreeing"] > 0
    assert "cache: cand: " in second.stdout and "disagreed: discarded" in second.stdout
    once = pd.read_parquet(tmp_path / "one" / "predictions.parquet")
    twice = pd.read_parquet(tmp_path / "two" / "predictions.parquet")
    np.testing.assert_array_equal(twice[[f"cand:{d}" for d in DIMENSIONS]],
                                  once[[f"cand:{d}" for d in DIMENSIONS]])


# -- run files ----------------------------------------------------------------------------

def candidate_equal(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    return frame


def degraded(frame: pd.DataFrame) -> pd.DataFrame:
    frame = candidate_equal(frame)
    rng = np.random.default_rng(3)
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + rng.normal(0, 1.5, len(frame))
    return frame


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory, scored_rows):
    """A finished columns run whose candidate fails; tests copy it before changing it."""
    tmp = tmp_path_factory.mktemp("trust")
    config = columns_config(tmp, degraded(scored_rows), gate={"bootstrap_resamples": 200})
    result = cli("run", "--config", str(config), "--out", str(tmp / "run"), "--quiet")
    assert result.exit_code == 1, result.output
    return tmp / "run", config


def copied(failed_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(failed_run[0], target)
    return target


def test_summary_records_the_sha256_of_every_output(failed_run):
    run = failed_run[0]
    summary = json.loads((run / "summary.json").read_text())
    from validator.cache import file_sha256

    assert set(summary["outputs"]) == {"predictions.parquet", "report.html", "junit.xml",
                                       "summary.md"}
    assert all(file_sha256(run / name) == digest for name, digest in summary["outputs"].items())
    manifest = json.loads((run / MANIFEST_NAME).read_text())["files"]
    assert set(manifest) == {*summary["outputs"], "summary.json"}
    assert cli("report", str(run)).exit_code == 0  # a faithful run reads back


def test_report_refuses_a_summary_whose_verdicts_were_edited(failed_run, tmp_path):
    run = copied(failed_run, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    failing = [i for i, c in enumerate(summary["checks"]) if c["verdict"] == "fail"]
    for i in failing:
        summary["checks"][i]["verdict"] = "pass"
    summary["verdict"], summary["exit_code"] = "pass", 0
    summary["counts"]["pass"] += summary["counts"]["fail"]
    summary["counts"]["fail"] = 0
    (run / "summary.json").write_text(json.dumps(summary))
    result = cli("report", str(run))
    assert result.exit_code == 2 and "does not match the sha256" in result.output
    reseal(run)  # hashes recomputed too: the verdicts themselves are re-derived
    result = cli("report", str(run))
    assert result.exit_code == 2, result.output
    assert f"checks[{failing[0]}].verdict is 'pass' but the gate's rules give 'fail'" \
        in result.output
    summary["checks"][failing[0]]["verdict"] = "fail"  # only the run's verdict edited
    for i in failing:
        summary["checks"][i]["verdict"] = "fail"
    summary["counts"]["fail"], summary["counts"]["pass"] = (
        len(failing), summary["counts"]["pass"] - len(failing))
    (run / "summary.json").write_text(json.dumps(summary))
    result = cli("report", str(reseal(run)))
    assert result.exit_code == 2 and "verdict 'pass' / exit_code 0 but its checks give " \
        "'fail' / 1" in result.output
    summary["verdict"], summary["exit_code"] = "fail", 1  # a likely loss unmarked
    summary["checks"][0]["screened_loss"] = not summary["checks"][0]["screened_loss"]
    (run / "summary.json").write_text(json.dumps(summary))
    result = cli("report", str(reseal(run)))
    assert result.exit_code == 2 and "checks[0].screened_loss is" in result.output
    summary["checks"][0]["screened_loss"] = not summary["checks"][0]["screened_loss"]
    other = next(c["slice"] for c in summary["checks"] if c["slice"] != failing_slice(summary))
    summary["checks"][failing[0]]["same_rows_as"] = other  # counted once: softened
    (run / "summary.json").write_text(json.dumps(summary))
    result = cli("report", str(reseal(run)))
    assert result.exit_code == 2
    assert f"checks[{failing[0]}].same_rows_as is {other!r}" in result.output


def failing_slice(summary: dict) -> str:
    return next(c["slice"] for c in summary["checks"] if c["verdict"] == "fail")


def test_recommend_refuses_edited_predictions(failed_run, tmp_path):
    run = copied(failed_run, tmp_path)
    table = pd.read_parquet(run / "predictions.parquet")
    for d in DIMENSIONS:
        table[f"cand:{d}"] = table[f"ref:{d}"]
    table.to_parquet(run / "predictions.parquet", index=False)
    result = run_cli("recommend", str(run))
    assert result.returncode == 2
    assert f"{run / 'predictions.parquet'}: does not match the sha256 summary.json records" \
        in result.stderr
    for command in (["discover", str(run)],
                    ["report", str(failed_run[0]), "--baseline", str(run)]):
        result = cli(*command)
        assert result.exit_code == 2 and "predictions.parquet: does not match" in result.output


@pytest.mark.parametrize("command", [["recommend"], ["discover"]])
def test_after_commands_never_replace_a_users_file_or_the_runs_records(failed_run, tmp_path,
                                                                      command):
    """A hostile trial's lost files: --out over a file the tool did not write, or over
    the run's own summary.json, exits 2 and leaves it as it was."""
    run = copied(failed_run, tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text("my own notes\n")
    for target, kept in ((mine, "my own notes\n"),
                         (run / "summary.json", (run / "summary.json").read_text())):
        result = run_cli(*command, str(run), "--out", str(target))
        assert result.returncode == 2, result.stderr
        assert str(target) in result.stderr and "choose another --out" in result.stderr
        assert target.read_text() == kept


def test_a_rerendered_report_and_side_files_stay_verifiable(failed_run, tmp_path):
    run = copied(failed_run, tmp_path)
    assert cli("report", str(run)).exit_code == 0  # report.html rewritten, manifest too
    assert cli("recommend", str(run)).exit_code in (0, 1)  # writes routing.options.*
    assert cli("report", str(run)).exit_code == 0
    (run / "routing.options.md").write_text("edited")
    result = cli("report", str(run))
    assert result.exit_code == 2 and "routing.options.md: does not match" in result.output


def test_with_a_key_a_run_folder_must_be_signed_with_it(failed_run, tmp_path, monkeypatch):
    unsigned = copied(failed_run, tmp_path)  # written without a key
    monkeypatch.setenv("SLICE_VALIDATOR_CACHE_KEY", "ci-secret")
    result = cli("report", str(unsigned))
    assert result.exit_code == 2 and "not signed with SLICE_VALIDATOR_CACHE_KEY" in result.output
    signed = tmp_path / "signed"
    result = cli("run", "--config", str(failed_run[1]), "--out", str(signed), "--quiet")
    assert result.exit_code == 1, result.output
    assert (signed / f"{MANIFEST_NAME}.sig").is_file()
    assert cli("report", str(signed)).exit_code == 0  # re-rendered and signed again
    assert cli("report", str(signed)).exit_code == 0
    reseal(signed)  # hashes recomputed by someone without the key
    assert cli("report", str(signed)).exit_code == 2


# -- --out ----------------------------------------------------------------------------------

def test_out_over_a_folder_of_user_files_exits_2_and_keeps_them(tmp_path, scored_rows):
    config = columns_config(tmp_path, candidate_equal(scored_rows))
    mine = tmp_path / "mydata"
    mine.mkdir()
    scored_rows.head(20).to_parquet(mine / "predictions.parquet", index=False)
    before = (mine / "predictions.parquet").read_bytes()
    for extra in ([], ["--force"]):
        result = cli("run", "--config", str(config), "--out", str(mine), "--quiet", *extra)
        assert result.exit_code == 2, result.output
        assert "not a run folder of this tool" in result.output
        assert "predictions.parquet" in result.output
        assert (mine / "predictions.parquet").read_bytes() == before
    assert sorted(p.name for p in mine.iterdir()) == ["predictions.parquet"]


def test_force_replaces_only_a_previous_runs_own_files(failed_run, tmp_path, scored_rows):
    run = copied(failed_run, tmp_path)
    config = failed_run[1]
    (run / "notes.txt").write_text("mine")
    result = cli("run", "--config", str(config), "--out", str(run), "--quiet", "--force")
    assert result.exit_code == 2 and "notes.txt" in result.output
    assert (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()
    (run / "report.html").write_text("a user's edit")
    result = cli("run", "--config", str(config), "--out", str(run), "--quiet", "--force")
    assert result.exit_code == 2 and "report.html" in result.output
    (run / "report.html").unlink()
    same = columns_config(tmp_path, candidate_equal(scored_rows), gate=LENIENT_GATE)
    result = cli("run", "--config", str(same), "--out", str(run), "--quiet", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "summary.json").read_text())["verdict"] == "pass"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def test_a_second_concurrent_run_exits_2_naming_the_lock(tmp_path, scored_rows):
    """The first run's lock is held by a live process (here: a child holding it); the
    second run into the same folder exits 2 naming the lock file and that pid."""
    config = columns_config(tmp_path, candidate_equal(scored_rows), gate=LENIENT_GATE)
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from validator.record.ownership import folder_lock\n"
         f"with folder_lock(Path({str(out)!r})):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
        assert result.returncode == 2, result.stderr
        assert str(lock_path(out)) in result.stderr and f"pid {holder.pid}" in result.stderr
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without removing its lock file: a stale lock, taken over
    assert lock_path(out).read_text().strip() == str(holder.pid)
    result = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"stale lock of pid {holder.pid} (process ended); taken over" in result.stderr
    assert not lock_path(out).exists()


# -- a closed stdout ----------------------------------------------------------------------

def test_a_closed_stdout_exits_quietly_and_never_0_for_a_failed_gate(failed_run, tmp_path):
    config = failed_run[1]
    for args in (["slices", "check"],
                 ["run", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"]):
        process = subprocess.Popen([sys.executable, "-m", "validator", *args], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ})
        process.stdout.close()  # like `| head -0`
        stderr = process.stderr.read().decode()
        assert process.wait() == 1, stderr
        assert "internal error" not in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("planted", ["link", "folder", "user file"])
def test_a_foreign_thing_at_the_lock_path_is_refused_and_left_alone(tmp_path, planted):
    """The lock file (.NAME.lock beside --out) is never written through a link, over a
    folder, or over a file with other content than a pid; exit 2 naming it, untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    lock = tmp_path / ".run.lock"
    if planted == "link":
        lock.symlink_to(victim)
    elif planted == "folder":
        lock.mkdir()
    else:
        lock.write_text("my notes")
    result = run_cli("run", "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{lock}: the run's lock file" in result.stderr.strip().splitlines()[-1]
    assert victim.read_text() == "precious data" and not (tmp_path / "run").exists()
    assert lock.is_symlink() or lock.exists()


def test_the_current_folder_as_out_is_refused_plainly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "validator", "run", "--out", ".",
                             "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: .: is the current folder (or holds it), which "
                                     "the run would replace when done; give a new or empty "
                                     "folder, e.g. --out run")
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / f".{tmp_path.name}.lock").exists()


def test_report_refuses_a_copied_slice_whose_mark_was_removed(scored_rows, tmp_path):
    """A hostile trial cleared ``same_rows_as`` on a copied slice's checks and resealed:
    the copy counted again in the correction. The marks must be what the run's own slice
    columns give."""
    copy = {"slices": [{"name": "heads", "where": {"content_type": "headline"}},
                       {"name": "heads_again", "where": {"content_type": "headline"}}]}
    (tmp_path / "copies.yaml").write_text(yaml.safe_dump(copy))
    config = columns_config(tmp_path, degraded(scored_rows), gate={"bootstrap_resamples": 200},
                            slices=[str(tmp_path / "copies.yaml")])
    run = tmp_path / "run"
    assert cli("run", "--config", str(config), "--out", str(run), "--quiet").exit_code == 1
    summary = json.loads((run / "summary.json").read_text())
    marked = [i for i, c in enumerate(summary["checks"]) if c["same_rows_as"] == "heads"]
    assert marked and all(summary["checks"][i]["slice"] == "heads_again" for i in marked)
    for i in marked:
        summary["checks"][i]["same_rows_as"] = ""
    (run / "summary.json").write_text(json.dumps(summary))
    result = cli("report", str(reseal(run)))
    assert result.exit_code == 2
    assert f"checks[{marked[0]}].same_rows_as is '' but the run's predictions give " \
           f"'heads' for slice 'heads_again'" in result.output


def test_an_out_spelled_through_a_missing_folder_is_checked_where_it_lands(failed_run,
                                                                          tmp_path):
    """A hostile trial: ``--out new/../mine`` looked absent (``new`` did not exist), so
    the run created ``new`` and replaced the user's summary.md in ``mine``."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.md").write_text("my notes\n")
    result = run_cli("run", "--config", str(failed_run[1]), "--out", "new/../mine", "--quiet",
                     cwd=tmp_path)
    assert result.returncode == 2 and "not empty and not a run folder" in result.stderr
    assert (mine / "summary.md").read_text() == "my notes\n"
    assert not (tmp_path / "new").exists() and sorted(os.listdir(mine)) == ["summary.md"]
