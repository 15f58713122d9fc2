"""``validator plan-ratings`` and ``sample.rating_plan`` through the CLI, on a simulated
unrated pool (columns backend: no model runs)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import pandas as pd
import pytest

from conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "benchmarks"))
import rating_sim  # noqa: E402

ROWS, BUDGET = 1500, 300


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A run over the unrated pool and a plan made from it: (folder, pool, plan file)."""
    folder = tmp_path_factory.mktemp("plan")
    frame = rating_sim.simulate_pool(ROWS, seed=2)
    config = rating_sim.write_gate(folder / "pool", rating_sim.revealed(frame, []))
    result = run_cli("run", "--config", str(config), "--out", str(folder / "run"), "--quiet")
    assert result.returncode == 1, result.stderr  # nothing rated: inconclusive
    plan = folder / "PLAN.csv"
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", str(BUDGET),
                     "--out", str(plan), "--seed", "4")
    assert result.returncode == 0, result.stderr
    return folder, frame, plan, result.stdout


def to_rate(plan) -> list[str]:
    table = pd.read_csv(plan, dtype={"id": str})
    return table.loc[table["phase"] == "to_rate", "id"].tolist()


def test_plan_lists_every_pool_row_and_the_budget_to_rate(planned):
    folder, frame, plan, stdout = planned
    table = pd.read_csv(plan, dtype={"id": str})
    assert {"id", "text", "inclusion_probability", "stratum", "slices"} <= set(table.columns)
    assert sorted(table["id"]) == sorted(frame["id"])
    assert (table["phase"] == "to_rate").sum() == BUDGET
    assert table["inclusion_probability"].between(0, 1, inclusive="right").all()
    # every flipped row is worth more than an agreeing one
    flips = table["stratum"].str.contains("differs")
    assert table.loc[flips, "inclusion_probability"].min() > \
        table.loc[~flips, "inclusion_probability"].max()
    record = json.loads(plan.with_suffix(".summary.json").read_text())
    assert record["budget"] == BUDGET and record["pool_rows"] == ROWS
    gamma = next(s for s in record["slices"] if s["slice"] == "gamma")
    assert gamma["ruled_out_plan_median"] < gamma["ruled_out_uniform_median"]
    assert "rule out (plan)" in stdout and "gamma" in stdout


def test_same_seed_same_plan(planned, tmp_path):
    folder, _, plan, _ = planned
    again = tmp_path / "again.csv"
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", str(BUDGET),
                     "--out", str(again), "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert again.read_text() == plan.read_text()
    # planning again into the same files replaces the tool's own unchanged pair
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", str(BUDGET // 2),
                     "--out", str(again), "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert (pd.read_csv(again)["phase"] == "to_rate").sum() == BUDGET // 2
    edited = again.read_text().replace("to_rate", "not_chosen", 1)
    again.write_text(edited)  # a plan someone changed is theirs now: never replaced
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", str(BUDGET),
                     "--out", str(again), "--seed", "4")
    assert result.returncode == 2 and "choose another --out" in result.stderr
    assert again.read_text() == edited


def test_run_with_the_plan_carries_the_design_per_row(planned, tmp_path):
    _, frame, plan, _ = planned
    ids = to_rate(plan)
    config = rating_sim.write_gate(tmp_path, rating_sim.revealed(frame, ids), plan=plan)
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode in (0, 1), result.stderr
    table = pd.read_parquet(tmp_path / "run" / "predictions.parquet").set_index("id")
    expected = pd.read_csv(plan, dtype={"id": str}).set_index("id")
    assert table["rated"].sum() == BUDGET and set(table.index[table["rated"]]) == set(ids)
    assert (table["stratum"] == expected["stratum"].reindex(table.index)).all()
    assert (table["inclusion_probability"] -
            expected["inclusion_probability"].reindex(table.index)).abs().max() < 1e-12


def bad_run(tmp_path, frame, plan) -> str:
    config = rating_sim.write_gate(tmp_path, frame, plan=plan)
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def test_a_rated_row_the_plan_did_not_choose_is_refused(planned, tmp_path):
    _, frame, plan, _ = planned
    table = pd.read_csv(plan, dtype={"id": str})
    stray = table.loc[table["phase"] == "not_chosen", "id"].iloc[0]
    error = bad_run(tmp_path, rating_sim.revealed(frame, [*to_rate(plan), stray]), plan)
    assert "not chosen by the plan" in error and stray in error and str(plan) in error


def test_planned_ids_missing_from_the_sample_are_refused(planned, tmp_path):
    _, frame, plan, _ = planned
    ids = to_rate(plan)
    sample = rating_sim.revealed(frame, ids)
    error = bad_run(tmp_path, sample[sample["id"] != ids[0]], plan)
    assert "missing from the sample" in error and ids[0] in error


def test_a_changed_pool_is_refused(planned, tmp_path):
    _, frame, plan, _ = planned
    sample = rating_sim.revealed(frame, to_rate(plan))
    extra = sample.iloc[[0]].assign(id="row-new", **{d: float("nan")
                                                    for d in rating_sim.DIMENSIONS})
    error = bad_run(tmp_path, pd.concat([sample, extra]), plan)
    assert "changed since the plan was made" in error


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.drop(columns="stratum"), "missing column(s) stratum"),
    (lambda t: t.assign(inclusion_probability=0.0), "must be in (0, 1]"),
    (lambda t: t.assign(phase="maybe"), "column phase holds maybe"),
    (lambda t: pd.concat([t, t.iloc[[0]]]), "duplicate ids"),
])
def test_a_malformed_plan_file_is_refused(planned, tmp_path, damage, message):
    _, frame, plan, _ = planned
    broken = tmp_path / "broken.csv"
    damage(pd.read_csv(plan, dtype={"id": str})).to_csv(broken, index=False)
    error = bad_run(tmp_path, rating_sim.revealed(frame, to_rate(plan)), broken)
    assert message in error and str(broken) in error


@pytest.mark.parametrize("budget", ["0", str(ROWS + 1)])
def test_a_budget_outside_the_pool_is_refused(planned, tmp_path, budget):
    folder, _, _, _ = planned
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", budget,
                     "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 2 and "--budget" in result.stderr


def test_plan_ratings_never_replaces_a_users_file(planned, tmp_path):
    folder, _, _, _ = planned
    mine = tmp_path / "mine.csv"
    mine.write_text("id,notes\n1,keep me\n")
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", str(BUDGET),
                     "--out", str(mine))
    assert result.returncode == 2 and "choose another --out" in result.stderr
    assert mine.read_text() == "id,notes\n1,keep me\n"


def test_an_edited_inclusion_probability_is_refused(planned, tmp_path):
    """A hostile trial's wrong pass: lowering the probability of the rows where the
    candidate happened to be right reweighed the estimate. Probabilities must follow
    from the plan's own strata and phases."""
    _, _, plan, _ = planned
    table = pd.read_csv(plan, dtype={"id": str})
    chosen = table.index[table["phase"] == "to_rate"][:5]
    table.loc[chosen, "inclusion_probability"] = 0.001
    edited = tmp_path / "PLAN.csv"
    table.to_csv(edited, index=False)
    from validator.data.rating_plan import read_plan
    from validator.errors import SampleError

    with pytest.raises(SampleError, match="does not follow from the plan's strata"):
        read_plan(edited)


def test_a_run_never_replaces_its_own_rating_plan(planned, tmp_path):
    """A hostile trial: a plan written into a run folder joins its manifest, and
    ``run --force`` into that folder deleted the plan the run was reading."""
    folder, frame, _, _ = planned
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    plan = run / "PLAN.csv"
    result = run_cli("plan-ratings", str(run), "--budget", str(BUDGET), "--out", str(plan),
                     "--seed", "4")
    assert result.returncode == 0, result.stderr
    kept = plan.read_text()
    config = rating_sim.write_gate(tmp_path / "gate", rating_sim.revealed(frame, to_rate(plan)),
                                   plan=plan)
    result = run_cli("run", "--config", str(config), "--out", str(run), "--force", "--quiet")
    assert result.returncode == 2, result.stderr
    assert f"{run}: holds {plan}, an input of this run" in result.stderr
    assert plan.read_text() == kept and plan.with_suffix(".summary.json").is_file()


def test_only_the_plan_its_summary_names_is_replaced(planned, tmp_path):
    """A copy of a plan under another name shares the summary path only by accident of
    ``with_suffix``; a planted summary naming a run's record never unlocks it."""
    folder, _, plan, _ = planned
    copy = tmp_path / "PLAN.orig.csv"
    shutil.copy(plan, tmp_path / "PLAN.csv")
    shutil.copy(plan.with_suffix(".summary.json"), tmp_path / "PLAN.summary.json")
    shutil.copy(plan, copy)  # PLAN.orig.csv -> PLAN.orig.summary.json: absent
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", "100", "--out", str(copy))
    assert result.returncode == 2 and "choose another --out" in result.stderr
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    record = run / "summary.json"
    before = record.read_bytes()
    digest = hashlib.sha256(before).hexdigest()
    (run / "summary.summary.json").write_text(json.dumps(
        {"plan_file": "summary.json", "plan_sha256": digest}))
    result = run_cli("plan-ratings", str(run), "--budget", "100", "--out", str(record))
    assert result.returncode == 2 and record.read_bytes() == before


@pytest.mark.parametrize("out", ["", ".", "/", "-", "plan.txt", "x" * 300 + ".csv"])
def test_a_plan_out_that_cannot_be_a_plan_file_is_refused_plainly(planned, tmp_path, out):
    folder, _, _, _ = planned
    result = run_cli("plan-ratings", str(folder / "run"), "--budget", "100", "--out", out,
                     cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "internal error" not in result.stderr


def consistent(table: pd.DataFrame) -> pd.DataFrame:
    """The table with inclusion probabilities recomputed from its strata and phases."""
    pool = table["phase"] != "rated"
    chosen = (table["phase"] == "to_rate").groupby(table["stratum"]).sum()
    share = chosen / pool.groupby(table["stratum"]).sum()
    earlier = float((~pool).mean())
    return table.assign(inclusion_probability=earlier + (1 - earlier)
                        * table["stratum"].map(share))


def test_rows_chosen_by_hand_are_refused(planned, tmp_path):
    """A hostile trial's wrong pass: the same strata and counts, but the to_rate rows of a
    stratum swapped for the ones where the candidate looked best (a 14-point loss read as
    7 and passed). The run re-draws the seeded selection and refuses any other."""
    _, frame, plan, _ = planned
    table = pd.read_csv(plan, dtype={"id": str})
    phases = table.groupby("stratum")["phase"].agg(set)
    stratum = phases.index[phases.map(lambda p: {"to_rate", "not_chosen"} <= p)][0]
    mine = table.index[table["stratum"] == stratum]
    picked = table.loc[mine[table.loc[mine, "phase"] == "to_rate"][0]]
    other = mine[table.loc[mine, "phase"] == "not_chosen"][0]
    table.loc[picked.name, "phase"], table.loc[other, "phase"] = "not_chosen", "to_rate"
    forged = tmp_path / "PLAN.csv"
    consistent(table).to_csv(forged, index=False)
    ids = table.loc[table["phase"] == "to_rate", "id"].tolist()
    stderr = bad_run(tmp_path, rating_sim.revealed(frame, ids), forged)
    assert f"{forged}: the to_rate rows are not the seeded draw from the plan's strata " \
           f"(2 rows differ: " in stderr


def test_strata_drawn_by_hand_are_refused(planned, tmp_path):
    """Strata must be the ones this run's predictions and slices give: a hand-drawn
    stratum could put a candidate's rated wins among many unrated agreeing rows."""
    _, frame, plan, _ = planned
    from validator.data.rating_plan import check_strata
    from validator.errors import SampleError

    table = pd.read_csv(plan, dtype={"id": str}).set_index("id").reindex(frame["id"])
    columns = lambda suffix: frame[[f"{d}_{suffix}" for d in rating_sim.DIMENSIONS]].to_numpy()
    masks = pd.DataFrame({"all": True, **{s: frame["segment"].eq(s).to_numpy()
                                          for s in rating_sim.SEGMENTS}})
    args = (columns("ref"), {"cand": columns("cand")}, list(rating_sim.DIMENSIONS), masks,
            (1, 5), "exact_agreement", "PLAN.csv")
    check_strata(table["stratum"], *args)  # the plan's own strata pass
    moved = table.index[table["stratum"].str.endswith("/differs-high")][:3]
    table.loc[moved, "stratum"] = table["stratum"][table["stratum"].str.endswith("/same")].iloc[0]
    with pytest.raises(SampleError, match="PLAN.csv: the strata of 3 rows are not the ones "
                                          "this run's predictions and slices give"):
        check_strata(table["stratum"], *args)
