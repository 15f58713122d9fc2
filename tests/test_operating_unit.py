"""Operating characteristics (validator/judge/operating.py) against an independent
computation of the same "bootstrap world" (issue 22.9).

The module simulates 1,000 runs: per run one bootstrap resample per slice (shared by
the slice's checks), the observed degradations as the truth plus a planted drop, CIs
shifted (and, for agreement metrics, widened by the flips a drop adds), then the gate's
own rules. Here the same world is computed exactly, by enumerating every combination
of resamples of the slices that can vary, with its own implementation of the policies,
the Holm/BH correction (one family per candidate) and the run verdict (nothing imported from operating.py but the
entry point). The module's shares must agree within 0.05 (3 Monte Carlo standard
errors of 1,000 runs at most), and every compared rate lies in [0.1, 0.9] or is an exact
0 or 1, so a figure off by a factor of 2 fails. These tests are in the mutation-testing
set (tests/README.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from validator.config import GateConfig
from validator.judge.gate import Check, GateResult
from validator.judge.operating import EFFECT_MULTIPLE, RUNS, operating_characteristics, widening

TOLERANCE = 0.05
RESAMPLES = 40
DIMENSIONS = ["a", "b"]
ROWS = 200
SLICES = {"all": range(0, 200), "small": range(0, 60),
          "tiny": range(150, 170)}  # tiny: below min_rows 30, never decided
SCENARIOS = ["lossless", "max_drop", "twice_max_drop", "twice_max_drop_on_slice",
             "smallest_slice"]


# -- the world: checks, resamples and slice masks ------------------------------------------

def masks() -> pd.DataFrame:
    return pd.DataFrame({name: np.isin(np.arange(ROWS), list(rows))
                         for name, rows in SLICES.items()})


def make_world(degradations: dict, sd_of: dict, max_drop_of: dict, candidates=("c1", "c2"),
               seed: int = 1, unrated=None, draws: int = RESAMPLES, spread: float = 1.0):
    """Checks for every candidate x slice x dimension (``_all`` last), with resamples
    that share one draw per slice (``spread`` x the bootstrap SD); ``unrated``:
    (slice, dimension) -> no p-value."""
    rng = np.random.default_rng(seed)
    checks, resamples = [], []
    shared = {s: rng.normal(0, 1, draws) for s in SLICES}
    for candidate in candidates:
        for s, rows in SLICES.items():
            for d in [*DIMENSIONS, "_all"]:
                deg, sd = degradations[(candidate, s, d)], sd_of[s]
                own = rng.normal(0, 1, draws)
                samples = deg + spread * sd * (0.8 * shared[s] + 0.6 * own)
                if (candidate, s, d) == ("c1", "all", "a"):
                    samples[1] = np.nan  # an undefined resample: no error that run
                max_drop = max_drop_of[s]
                p = float(norm.sf((deg - max_drop) / sd))
                if unrated and (s, d) in unrated:
                    p = math.nan
                checks.append(Check(
                    candidate=candidate, slice=s, dimension=d, metric="exact_agreement",
                    n=len(rows), reference=70.0, candidate_value=70.0 - deg, degradation=deg,
                    ci_low=deg - 1.96 * sd, ci_high=deg + 1.5 * sd, max_drop=max_drop,
                    verdict="", reason="", p_value=0.5, p_value_adjusted=0.5,
                    detectable_degradation=2.8 * sd, flips_to_disagree=3, flips_to_agree=1,
                    human_ceiling=math.nan, bootstrap_sd=sd, p_value_max_drop=p,
                    p_value_max_drop_adjusted=p))
                resamples.append(samples)
    return checks, resamples


def standard_world(shift: float = 0.0, wide: float = 1.0, **kwargs):
    """Two candidates (c2 a little better), three slices; ``wide`` scales the max_drops."""
    degradations = {}
    for c, s, d in itertools.product(("c1", "c2"), SLICES, [*DIMENSIONS, "_all"]):
        base = {"all": 0.2, "small": 0.8, "tiny": 0.0}[s]
        degradations[(c, s, d)] = base + shift + (0.3 if d == "a" else 0.0) \
            - (0.4 if c == "c2" else 0.0)
    sd = {"all": 0.6, "small": 1.5, "tiny": 0.3}
    max_drop = {"all": 1.0 * wide, "small": 2.0 * wide, "tiny": 1.0 * wide}
    return make_world(degradations, sd, max_drop, **kwargs)


# -- the independent computation ------------------------------------------------------------

def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Holm / BH adjusted p-values of each row (combinations x tested checks)."""
    if method == "none" or p.shape[1] == 0:
        return p
    m = p.shape[1]
    order = np.argsort(p, axis=1)
    ranked = np.sort(p, axis=1)
    k = np.arange(m)
    if method == "holm":  # running max of (m - k) p_(k)
        adj = np.maximum.accumulate((m - k) * ranked, axis=1)
    else:  # running min from the top of p_(k) m / (k + 1)
        adj = np.fliplr(np.minimum.accumulate(np.fliplr(ranked * m / (k + 1)), axis=1))
    out = np.empty_like(p)
    np.put_along_axis(out, order, np.minimum(adj, 1.0), axis=1)
    return out


def policy(gate: GateConfig, d, low, high, detectable, max_drop) -> np.ndarray:
    if gate.policy == "point":
        return np.where(~(d <= max_drop), "fail",
                        np.where(~(detectable <= max_drop), "inconclusive", "pass"))
    if gate.policy == "confident":
        return np.where(low > max_drop, "fail",
                        np.where(high < max_drop, "pass", "inconclusive"))
    return np.where(high < max_drop, "pass", "fail")


def expected_shares(checks, resamples, frame, gate: GateConfig, truth: np.ndarray,
                    flips: bool) -> dict[str, float]:
    """Exact shares of fail / inconclusive / pass over every resample combination."""
    rows = {s: int(frame[s].sum()) for s in frame.columns}
    fixed = []
    for c in checks:
        if rows[c.slice] == 0:
            fixed.append("fail")
        elif c.n < gate.min_rows or math.isnan(c.degradation) or math.isnan(c.ci_low):
            fixed.append("inconclusive")
        else:
            fixed.append("")
    count = {c.slice: len(r) for c, r, f in zip(checks, resamples, fixed) if f == "" and len(r)}
    varying = sorted(count)
    combos = np.array(list(itertools.product(*(range(count[s]) for s in varying))))
    errors = np.zeros((len(combos), len(checks)))
    for i, (c, samples) in enumerate(zip(checks, resamples)):
        if fixed[i] == "" and len(samples):  # a check without resamples: no error
            picked = samples[combos[:, varying.index(c.slice)]]
            errors[:, i] = np.where(np.isnan(picked), 0.0, picked - c.degradation)
    wider = np.ones(len(checks))
    if flips:
        for i, c in enumerate(checks):
            pairs = c.n * (len(DIMENSIONS) if c.dimension == "_all" else 1)
            theta = min(max(truth[i], 0.0), 100.0)
            added = theta * (100 - theta) / pairs if pairs else 0.0
            wider[i] = math.sqrt(c.bootstrap_sd ** 2 + added) / c.bootstrap_sd
    deg = np.array([c.degradation for c in checks])
    estimate = truth + errors * wider
    low = estimate - (deg - np.array([c.ci_low for c in checks])) * wider
    high = estimate + (np.array([c.ci_high for c in checks]) - deg) * wider
    max_drop = np.array([c.max_drop for c in checks])
    detectable = np.array([c.detectable_degradation for c in checks]) * wider
    verdicts = policy(gate, estimate, low, high, detectable, max_drop)
    verdicts = np.where(np.array(fixed) != "", np.array(fixed), verdicts)
    if gate.correction != "none" and gate.policy != "non_inferiority":
        tested = np.flatnonzero([not math.isnan(c.p_value_max_drop) for c in checks])
        sd = np.array([c.bootstrap_sd for c in checks]) * wider
        p = norm.sf((estimate[:, tested] - max_drop[tested]) / sd[tested])
        adjusted = np.full(verdicts.shape, np.nan)
        owners = np.array([checks[i].candidate for i in tested])
        for candidate in set(owners):  # one family per candidate
            mine = owners == candidate
            adjusted[:, tested[mine]] = adjust(p[:, mine], gate.correction)
        n = np.array([c.n for c in checks])
        soften = (verdicts == "fail") & (n > 0) & (adjusted >= gate.false_fail_budget)
        verdicts = np.where(soften, "inconclusive", verdicts)
        screened = np.ones(verdicts.shape, dtype=bool)  # untested: fail closed
        for candidate in set(owners):  # Benjamini-Hochberg within each candidate
            mine = owners == candidate
            screened[:, tested[mine]] = ((adjust(p[:, mine], "bh") < gate.false_fail_budget)
                                         | (p[:, mine] < 0.001))  # LIKELY_LOSS_LEVEL
    else:
        screened = np.ones(verdicts.shape, dtype=bool)
    failed = (verdicts == "fail").any(axis=1)
    blocking = (verdicts == "inconclusive") & (  # a likely loss blocks anyway
        (gate.on_inconclusive == "fail") | ((low > max_drop) & screened))
    undecided = ~(verdicts == "pass").any(axis=1) | blocking.any(axis=1)
    run = np.where(failed, "fail", np.where(undecided, "inconclusive", "pass"))
    return {v: float((run == v).mean()) for v in ("fail", "inconclusive", "pass")}


def planted(checks, frame, gate: GateConfig) -> dict[str, np.ndarray]:
    """Each scenario's true degradation per check, from the module's documentation."""
    rows = {s: int(frame[s].sum()) for s in frame.columns}
    gated = {s: r for s, r in rows.items() if r >= gate.min_rows} or rows
    target = min(gated, key=gated.get)
    large = {s: r for s, r in rows.items() if r >= max(gate.min_rows, 400)}
    large = min(large, key=large.get) if large else max(rows, key=rows.get)
    first = np.array([c.candidate == checks[0].candidate for c in checks], dtype=float)
    gated = np.array([c.role == "gate" for c in checks], dtype=float)  # guards: other unit
    max_drop = np.array([c.max_drop for c in checks])

    def share(planted_on: str) -> np.ndarray:
        return np.array([(frame[planted_on] & frame[c.slice]).sum() / max(rows[c.slice], 1)
                         for c in checks])

    effect = EFFECT_MULTIPLE * gate.max_drop
    return {"lossless": np.zeros(len(checks)), "max_drop": first * max_drop,
            "twice_max_drop": first * 2 * max_drop,
            "twice_max_drop_on_slice": first * gated * 2 * max_drop * share(large),
            "smallest_slice": first * gated * effect * share(target)}


def compare(world, gate: GateConfig, seed: int = 5, frame=None, check_range=True) -> dict:
    """Every reported figure vs the independent computation; returns the report."""
    checks, resamples = world
    frame = masks() if frame is None else frame
    report = operating_characteristics(GateResult("fail", 1, checks, resamples), frame, gate,
                                       seed)
    flips = gate.metric in ("exact_agreement", "adjacent_agreement")
    truths = planted(checks, frame, gate)
    assert [s["name"] for s in report["scenarios"]] == SCENARIOS
    for scenario in report["scenarios"]:
        expected = expected_shares(checks, resamples, frame, gate, truths[scenario["name"]],
                                   flips)
        for verdict, key in (("fail", "fail"), ("inconclusive", "inconclusive"),
                             ("pass", "pass")):
            assert scenario[key] == pytest.approx(expected[verdict], abs=TOLERANCE), \
                (scenario["name"], verdict, expected)
        assert scenario["fail"] + scenario["inconclusive"] + scenario["pass"] == \
            pytest.approx(1.0)
        assert scenario["fail_standard_error"] == pytest.approx(
            math.sqrt(scenario["fail"] * (1 - scenario["fail"]) / RUNS))
        assert list(scenario["by_candidate"]) == list(dict.fromkeys(c.candidate for c in checks))
        for name, got in scenario["by_candidate"].items():  # each candidate's own checks
            mine = [i for i, c in enumerate(checks) if c.candidate == name]
            alone = expected_shares([checks[i] for i in mine], [resamples[i] for i in mine],
                                    frame, gate, truths[scenario["name"]][mine], flips)
            for verdict in ("fail", "inconclusive", "pass"):
                assert got[verdict] == pytest.approx(alone[verdict], abs=TOLERANCE), \
                    (scenario["name"], name, verdict, alone)
    lossless = expected_shares(checks, resamples, frame, gate, truths["lossless"], flips)
    assert report["false_fail"] == pytest.approx(lossless["fail"], abs=TOLERANCE)
    assert report["false_block"] == pytest.approx(lossless["fail"] + lossless["inconclusive"],
                                                  abs=TOLERANCE)
    assert report["false_fail"] == report["scenarios"][0]["fail"]
    assert report["false_block"] == pytest.approx(report["scenarios"][0]["fail"]
                                                  + report["scenarios"][0]["inconclusive"])
    assert report["within_budget"] == (report["false_fail"] <= gate.false_fail_budget)
    assert report["false_fail_budget"] == gate.false_fail_budget and report["runs"] == RUNS
    return report


def shares(report) -> dict[str, tuple[float, float]]:
    return {s["name"]: (s["fail"], s["inconclusive"]) for s in report["scenarios"]}


def discriminating(value: float) -> bool:
    """A rate a factor-2 error would move by more than the tolerance."""
    return value in (0.0, 1.0) or 0.1 <= value <= 0.9


# -- the figures, configuration by configuration -------------------------------------------

CONFIGS = {  # name: (gate, wide, scenarios whose fail or inconclusive share is in [0.1, 0.9])
    "point": (GateConfig(policy="point", correction="none", min_rows=30), 1.0,
              {"lossless", "max_drop"}),
    "confident": (GateConfig(policy="confident", correction="none", min_rows=30,
                             on_inconclusive="warn", max_drop=0.5), 1.0,
                  {"twice_max_drop"}),
    "confident-holm": (GateConfig(policy="confident", correction="holm", min_rows=30,
                                  on_inconclusive="warn", false_fail_budget=0.2,
                                  max_drop=0.5), 0.5,
                       {"lossless", "max_drop", "twice_max_drop", "smallest_slice"}),
    "point-bh": (GateConfig(policy="point", correction="bh", min_rows=30,
                            on_inconclusive="warn"), 0.5, {"smallest_slice"}),
    "non-inferiority": (GateConfig(policy="non_inferiority", correction="holm",
                                   min_rows=30), 2.0, {"lossless"}),
    "mae": (GateConfig(metric="mean_absolute_error", max_drop=0.5, policy="confident",
                       correction="none", min_rows=30, on_inconclusive="warn"), 1.0,
            {"twice_max_drop"}),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_reported_figure_matches_the_independent_computation(name):
    gate, wide, moving = CONFIGS[name]
    report = compare(standard_world(wide=wide), gate)
    for scenario in report["scenarios"]:
        if scenario["name"] in moving:
            assert any(0.1 <= scenario[k] <= 0.9 for k in ("fail", "inconclusive")), scenario


def test_the_scenarios_report_their_drops_slices_and_order():
    gate = GateConfig(policy="point", correction="none", min_rows=30, on_inconclusive="warn")
    report = compare(standard_world(), gate)
    got = shares(report)
    assert 0.1 <= got["lossless"][0] <= 0.5
    assert got["lossless"][0] < got["max_drop"][0] < got["twice_max_drop"][0]
    smallest = report["scenarios"][4]
    assert (smallest["slice"], smallest["slice_rows"], smallest["drop"]) == ("small", 60, 6.0)
    assert [s["drop"] for s in report["scenarios"]] == [0.0, 1.0, 2.0, 2.0, 6.0]
    on_slice = report["scenarios"][3]  # no slice of 400 rows here: the largest one
    assert (on_slice["slice"], on_slice["slice_rows"]) == ("all", 200)
    assert [s["slice"] for s in report["scenarios"][:3]] == [None, None, None]
    assert [s["slice_rows"] for s in report["scenarios"][:3]] == [None, None, None]


def test_min_rows_makes_a_slice_inconclusive_and_blocks_unless_warned():
    """tiny (20 rows) is below min_rows 30: its checks are inconclusive in every run, so
    with on_inconclusive fail no run passes; warned, most lossless runs pass; with
    min_rows 10 tiny is decided, and the smallest gated slice."""
    warned, _, _ = CONFIGS["confident"]
    blocking = compare(standard_world(), warned.model_copy(update={"on_inconclusive": "fail"}))
    assert all(s["pass"] == 0.0 for s in blocking["scenarios"])
    assert blocking["false_block"] == 1.0
    assert compare(standard_world(), warned)["false_block"] < 0.1
    decided = compare(standard_world(), warned.model_copy(update={"min_rows": 10}))
    assert decided["scenarios"][4]["slice"] == "tiny"  # now the smallest gated slice


def test_a_slice_without_rows_fails_every_run():
    checks, resamples = standard_world()
    checks = [replace(c, n=0) if c.slice == "tiny" else c for c in checks]
    report = compare((checks, resamples), GateConfig(policy="point", min_rows=30),
                     frame=masks().assign(tiny=False))
    assert all(s["fail"] == 1.0 for s in report["scenarios"])
    assert report["scenarios"][4]["slice"] == "small" and not report["within_budget"]


def test_without_a_gated_slice_the_smallest_slice_is_the_target():
    report = compare(standard_world(-0.6), GateConfig(policy="point", correction="none",
                                                      min_rows=500, on_inconclusive="warn"))
    assert report["scenarios"][4]["slice"] == "tiny"
    assert all(s["inconclusive"] == 1.0 for s in report["scenarios"])


def test_an_untested_check_keeps_its_failure_through_the_correction():
    world = standard_world(1.5, unrated={("small", "a")})
    report = compare(world, GateConfig(policy="point", correction="holm", min_rows=30,
                                       on_inconclusive="warn"))
    assert report["false_fail"] > 0.0


def test_flips_widen_agreement_checks_by_the_documented_variance():
    """Twice max_drop planted adds 2m(100 - 2m) / pairs to an agreement check's variance:
    the catch rate differs from the unwidened one by far more than the tolerance."""
    gate, wide, _ = CONFIGS["confident"]
    world = standard_world(wide=wide)
    report = compare(world, gate)
    truth = planted(world[0], masks(), gate)["twice_max_drop"]
    unwidened = expected_shares(*world, masks(), gate, truth, flips=False)
    assert abs(shares(report)["twice_max_drop"][0] - unwidened["fail"]) > 4 * TOLERANCE


def test_the_seed_changes_the_draws_not_the_rates():
    gate = GateConfig(policy="point", correction="none", min_rows=30, on_inconclusive="warn")
    a = compare(standard_world(-0.6), gate, seed=1)
    b = compare(standard_world(-0.6), gate, seed=2)
    assert a == compare(standard_world(-0.6), gate, seed=1)  # deterministic
    assert [s["fail"] for s in a["scenarios"]] != [s["fail"] for s in b["scenarios"]]


def test_no_checks_report_a_run_that_never_passes():
    report = operating_characteristics(GateResult("inconclusive", 1, [], []), masks(),
                                       GateConfig(min_rows=30), 0)
    assert [s["inconclusive"] for s in report["scenarios"]] == [1.0] * 5
    assert report["false_fail"] == 0.0 and report["within_budget"]
    assert "simulated from this run's paired bootstrap" in report["method"]
    assert report["scenarios"][4]["description"].startswith(
        "the first candidate drops by 6 on the smallest gated slice, small")


def test_undefined_checks_are_inconclusive_in_every_run():
    """A NaN degradation, or a NaN lower bound alone, makes a check inconclusive whatever
    the draw: with on_inconclusive fail no run passes (tiny is decided: min_rows 10)."""
    gate, _, _ = CONFIGS["confident"]
    gate = gate.model_copy(update={"min_rows": 10, "on_inconclusive": "fail"})
    assert compare(standard_world(wide=3, draws=12), gate)["scenarios"][0]["pass"] > 0.5
    for field in ("degradation", "ci_low"):
        checks, resamples = standard_world(wide=3, draws=12)
        checks = [replace(c, **{field: math.nan}) if (c.candidate, c.slice, c.dimension)
                  == ("c2", "all", "b") else c for c in checks]
        report = compare((checks, resamples), gate)
        assert all(s["pass"] == 0.0 for s in report["scenarios"]), field


def test_min_rows_is_inclusive():
    """tiny has exactly 20 rated rows: min_rows 20 decides it, 21 does not."""
    gate, _, _ = CONFIGS["confident"]
    world = standard_world(wide=3, draws=12)
    at, above = (compare(world, gate.model_copy(update={"min_rows": rows,
                                                        "on_inconclusive": "fail"}))
                 for rows in (20, 21))
    assert at["scenarios"][0]["pass"] > 0.5 and above["scenarios"][0]["pass"] == 0.0


def test_a_decided_check_without_resamples_has_no_sampling_error():
    checks, resamples = standard_world()
    resamples = [np.array([]) if (c.candidate, c.slice, c.dimension) == ("c1", "all", "b")
                 else r for c, r in zip(checks, resamples)]
    compare((checks, resamples), CONFIGS["point"][0])


def test_every_resample_can_be_drawn():
    """Two resamples per slice, the first far worse: about half of the runs draw it."""
    checks, resamples = standard_world()
    resamples = [np.array([c.degradation + 10.0, c.degradation]) for c in checks]
    gate = GateConfig(policy="point", correction="none", min_rows=30, on_inconclusive="warn")
    report = compare((checks, resamples), gate)
    assert 0.6 <= report["false_fail"] <= 0.85  # 1 - 1/4: either slice's bad draw fails


def flip_check(n: int, dimension: str = "a", sd: float = 2.0) -> Check:
    return Check(candidate="c1", slice="s", dimension=dimension, metric="exact_agreement",
                 n=n, reference=70.0, candidate_value=70.0, degradation=0.0, ci_low=-1.0,
                 ci_high=1.0, max_drop=1.0, verdict="", reason="", p_value=0.5,
                 p_value_adjusted=0.5, detectable_degradation=1.0, flips_to_disagree=0,
                 flips_to_agree=0, human_ceiling=math.nan, bootstrap_sd=sd,
                 p_value_max_drop=0.5, p_value_max_drop_adjusted=0.5)


@pytest.mark.filterwarnings("error")  # zero spreads and zero pairs without numpy warnings
def test_widening_by_hand():
    """sqrt(sd^2 + t(100 - t) / pairs) / sd with t clipped to [0, 100]; pairs = n, or
    n x dimensions for _all; 1 without pairs, without a spread or without flips."""
    checks = [flip_check(10), flip_check(1), flip_check(0), flip_check(10, sd=0.0),
              flip_check(0, sd=0.0), flip_check(10, "_all"), flip_check(10, "b")]
    truth = np.array([20.0, 20.0, 20.0, 20.0, 0.0, 20.0, 20.0])
    got = widening(checks, truth, flips=True)
    expected = [math.sqrt(4 + 1600 / 10) / 2, math.sqrt(4 + 1600) / 2, 1.0, 1.0, 1.0,
                math.sqrt(4 + 1600 / 20) / 2, math.sqrt(4 + 1600 / 10) / 2]
    assert got.tolist() == pytest.approx(expected, rel=1e-12)
    clipped = widening(checks[:1] * 4, np.array([-5.0, 150.0, 100.0, 0.0]), flips=True)
    assert clipped.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert widening(checks, truth, flips=False).tolist() == [1.0] * len(checks)


def test_the_correction_named_is_the_one_applied():
    """Every first-candidate check just beyond twice max_drop (p about 0.01 each, draws
    that barely move it): BH rejects them together, Holm (a family of 36 tests per
    candidate) in well under two thirds of the runs."""
    degradations = dict.fromkeys(itertools.product(("c1", "c2"), SLICES,
                                                   [*DIMENSIONS, "_all"]), 0.0)
    world = make_world(degradations, dict.fromkeys(SLICES, 0.45), dict.fromkeys(SLICES, 1.0),
                       draws=12, spread=0.3)
    gate = GateConfig(metric="mean_absolute_error", max_drop=1.0, policy="point",
                      correction="holm", min_rows=10, on_inconclusive="warn")
    holm = shares(compare(world, gate))["twice_max_drop"][0]
    bh = shares(compare(world, gate.model_copy(update={"correction": "bh"})))[
        "twice_max_drop"][0]
    assert holm < 0.6 and bh > 0.9


def test_location_guard_checks_get_no_smallest_slice_effect():
    """The smallest-slice effect is in the gate metric's unit: a guard's checks (MAE) do
    not receive it; max_drop scenarios plant each check's own max_drop."""
    checks, resamples = standard_world()
    checks = [replace(c, role="location_guard") if c.dimension == "b" else c for c in checks]
    compare((checks, resamples), CONFIGS["confident-holm"][0])


def test_budget_is_inclusive_and_texts_are_exact():
    gate, _, _ = CONFIGS["point"]
    first = compare(standard_world(), gate)
    at_budget = compare(standard_world(), gate.model_copy(
        update={"false_fail_budget": first["false_fail"]}))
    assert at_budget["false_fail"] == first["false_fail"] and at_budget["within_budget"]
    assert at_budget["method"] == (
        "simulated from this run's paired bootstrap: observed degradations as the truth, "
        "one resample per slice as a run's sampling error, the gate's own rules")
    assert [s["description"] for s in at_budget["scenarios"]] == [
        "no true drop on any check",
        "the first candidate drops by each check's max_drop everywhere",
        "the first candidate drops by twice each check's max_drop everywhere",
        "the first candidate drops by twice max_drop on all (200 rows), diluted in the "
        "slices that overlap it",
        "the first candidate drops by 6 on the smallest gated slice, small (diluted in the "
        "slices that overlap it)"]
    half = compare(standard_world(), CONFIGS["confident"][0])  # gate.max_drop 0.5
    assert [s["drop"] for s in half["scenarios"]] == [0.0, 0.5, 1.0, 1.0, 3.0]


def test_under_warn_a_likely_loss_still_blocks_the_simulated_run():
    """A failure softened by Holm into inconclusive, with its whole CI above max_drop and
    its drop beyond max_drop still significant under Benjamini-Hochberg, blocks even
    under on_inconclusive warn (judge.gate.likely_loss): here about 4% of max_drop runs
    and 2% of twice_max_drop runs end inconclusive that way, as the exact computation
    confirms, and a lossless candidate is blocked in no more than the budget of runs."""
    gate, _, _ = CONFIGS["confident-holm"]
    got = shares(compare(standard_world(), gate.model_copy(
        update={"false_fail_budget": 0.05})))
    assert got["max_drop"][1] >= 0.02 and got["twice_max_drop"][1] >= 0.01
    assert got["lossless"][0] + got["lossless"][1] <= 0.05
