"""The typed run record: summary.json is written from it byte for byte, read back into
it, and ``validator report`` refuses a file that does not fit it (exit 2, the field)."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from conftest import DIMENSIONS, columns_config, run_cli
from validator.errors import ValidatorError
from validator.outputs import rerender_report
from validator.judge.gate import Check
from validator.record.schema import (CheckRecord, RunRecord, ScorerRecord, build_record,
                                     read_record)
from validator.scoring import ScorerInfo


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, scored_rows) -> Path:
    folder = tmp_path_factory.mktemp("record")
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + (frame.content_type == "headline") * 0.6
    point = {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50,  # every drop fails
             "policy": "point", "correction": "none"}
    result = run_cli("run", "--config", str(columns_config(folder, frame, gate=point)), "--out",
                     str(folder / "run"), "--quiet")
    assert result.returncode == 1, result.stderr
    return folder / "run"


def edited(run_dir: Path, tmp_path: Path, edit) -> Path:
    """A copy of the run whose summary.json text went through ``edit``."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    summary = copy / "summary.json"
    summary.write_text(edit(summary.read_text(encoding="utf-8")), encoding="utf-8")
    return copy


def test_summary_json_is_the_record_byte_for_byte(run_dir):
    text = (run_dir / "summary.json").read_text(encoding="utf-8")
    record = read_record(run_dir / "summary.json")
    assert isinstance(record, RunRecord) and record.to_json() == text
    assert record.counts.fail == sum(c.verdict == "fail" for c in record.checks) > 0
    assert set(json.loads(text)) == set(RunRecord.model_fields)  # every key is declared


def test_a_key_the_record_does_not_declare_is_refused_on_write(run_dir):
    data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    data["checks"][0]["rows_wanted"] = 120  # a new key is declared on judge.gate.Check first
    with pytest.raises(ValidatorError, match=re.escape("checks[0].rows_wanted: unknown key")):
        build_record(data)


def test_checks_and_scorers_are_written_as_the_run_computed_them(run_dir):
    """One declaration: the records of summary.json's checks and scorers are derived from
    the in-run dataclasses, field for field; an undefined value (NaN) is written as null."""
    record = read_record(run_dir / "summary.json")
    assert list(CheckRecord.model_fields) == [f.name for f in fields(Check)]
    assert list(ScorerRecord.model_fields) == [f.name for f in fields(ScorerInfo)]
    check = Check(**record.checks[0].model_dump())
    undefined = replace(check, ci_low=math.nan)
    assert CheckRecord.model_validate(undefined.as_dict()).ci_low is None
    assert CheckRecord.model_validate(check.as_dict()) == record.checks[0]
    assert ScorerRecord.model_validate(asdict(ScorerInfo(**record.scorers[1].model_dump()))) \
        == record.scorers[1]
    with pytest.raises(TypeError):
        ScorerInfo("fp32", "reference", "transformers")  # keyword construction only


def _set_check_verdict(text: str) -> str:
    data = json.loads(text)
    data["checks"][3]["verdict"] = "passed"
    return json.dumps(data)


def _drop_sample_rows(text: str) -> str:
    data = json.loads(text)
    del data["sample"]["rows"]
    return json.dumps(data)


def _add_scorer_key(text: str) -> str:
    data = json.loads(text)
    data["scorers"][1]["colour"] = "red"
    return json.dumps(data)


def test_report_command_exits_2_naming_the_field(run_dir, tmp_path):
    copy = edited(run_dir, tmp_path, _set_check_verdict)
    result = run_cli("report", str(copy))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {copy / 'summary.json'}: checks[3].verdict: Input should be "
                     f"'pass', 'fail' or 'inconclusive'"], result.stderr
    assert (copy / "report.html").read_bytes() == (run_dir / "report.html").read_bytes()


@pytest.mark.parametrize("edit, message", [
    (_drop_sample_rows, "summary.json: sample.rows: required key is missing"),
    (_add_scorer_key, "summary.json: scorers[1].colour: unknown key"),
    (lambda text: text[:len(text) // 2], "summary.json: not valid JSON"),
    (lambda text: text.replace('"schema_version": 1', '"schema_version": 2'),
     "summary.json: schema_version: Input should be 1"),
])
def test_an_edited_or_truncated_record_is_refused(run_dir, tmp_path, edit, message):
    copy = edited(run_dir, tmp_path, edit)
    with pytest.raises(ValidatorError, match=re.escape(message)):
        rerender_report(copy)
    assert (copy / "report.html").read_bytes() == (run_dir / "report.html").read_bytes()
