"""Like with like (issue 25): ratios from interleaved rounds, provisional under load,
cross-device comparisons labelled, and each scorer priced at its own device's instance."""

from __future__ import annotations

import pytest

from validator.scoring import ScorerInfo
from validator.speed.mix import deployment_cost, instance_price
from validator.speed.profile import add_ratios
from validator.speed.isolated import round_timings
from validator.speed.rounds import interleaved, summarize


class FakeClock:
    """Time that passes only when a fake scorer serves."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeScorer:
    """A scorer whose work takes ``cost`` seconds per text times the machine's slowdown
    at that moment (a fake behind the scorer interface: ``serve``, ``synchronize``),
    timing itself over ``TEXTS`` as its process does (``round_timings``)."""

    def __init__(self, clock: FakeClock, cost: float, slowdown):
        self.clock, self.cost, self.slowdown = clock, cost, slowdown

    def serve(self, texts):
        self.clock.now += self.cost * len(texts) * self.slowdown()

    def synchronize(self):
        pass

    def timings(self):
        return round_timings(self, TEXTS, self.clock)


TEXTS = [f"t{i}" for i in range(64)]


def test_interleaved_rounds_cancel_a_load_that_comes_and_goes():
    clock = FakeClock()
    # the machine is 3x slower during the middle of the run (another job)
    slowdown = lambda: 3.0 if 10 < clock.now < 40 else 1.0  # noqa: E731
    reference = FakeScorer(clock, 0.02, slowdown)
    candidate = FakeScorer(clock, 0.01, slowdown)  # truly twice as fast
    [found] = interleaved(reference, [candidate], rounds=7, load=lambda: 1.0)
    assert found["throughput_vs_reference"] == pytest.approx(2.0, rel=0.05)
    assert found["speedup_vs_reference"] == pytest.approx(2.0, rel=0.05)
    low, high = found["throughput_vs_reference_range"]
    assert low <= found["throughput_vs_reference"] <= high
    assert found["rounds"] == 7 and not found["provisional"]


class CountingScorer(FakeScorer):
    def __init__(self, *args):
        super().__init__(*args)
        self.probe_passes = 0

    def serve(self, texts):
        self.probe_passes += len(texts) > 1
        super().serve(texts)


def test_the_reference_is_timed_once_a_round_for_every_candidate():
    clock = FakeClock()
    slowdown = lambda: 2.5 if 20 < clock.now < 60 else 1.0  # noqa: E731
    reference = CountingScorer(clock, 0.02, slowdown)
    candidates = [CountingScorer(clock, 0.02 / speed, slowdown) for speed in (2.0, 1.0, 4.0)]
    found = interleaved(reference, candidates, rounds=9, load=lambda: 1.0)
    assert [round(f["throughput_vs_reference"], 1) for f in found] == [2.0, 1.0, 4.0]
    assert [round(f["speedup_vs_reference"], 1) for f in found] == [2.0, 1.0, 4.0]
    assert reference.probe_passes == 9 and all(c.probe_passes == 9 for c in candidates)


def test_a_ratio_is_provisional_when_the_load_exceeds_the_cores():
    assert summarize([2.0, 2.1], [1.5, 1.6], [1.0, 4.5], cores=2)["provisional"]
    calm = summarize([2.0, 2.1], [1.5, 1.6], [1.0, 1.9], cores=2)
    assert not calm["provisional"] and calm["load_average_max"] == 1.9
    assert calm["throughput_vs_reference"] == pytest.approx(2.05)
    assert not summarize([2.0], [1.5], [None], cores=2)["provisional"]


def info(name: str, role: str, device: str | None, load: float | None = None,
         **speed) -> ScorerInfo:
    return ScorerInfo(name=name, role=role, backend="transformers", runtime="eager",
                      recipe=None, fingerprint=None, size_bytes=100, parameter_bytes=100,
                      peak_rss_bytes=1, latency_ms_p50=speed.get("latency", 10.0),
                      latency_ms_p95=None, throughput_rows_per_s=speed.get("rows", 100.0),
                      scoring_seconds=0.0, rows_scored=0, rows_from_cache=0,
                      device=device, load_average_1m=load)


def test_ratios_come_from_the_rounds_and_cross_device_comparisons_are_labelled(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    infos = [info("fp32", "reference", "cuda NVIDIA H200", load=0.5),
             info("bf16", "candidate", "cuda NVIDIA H200", load=0.5, rows=900.0),
             info("int8", "candidate", "cpu", load=3.0, rows=50.0)]
    rounds = {"bf16": summarize([1.4, 1.5, 1.3], [1.1, 1.2, 1.0], [0.4, 0.6, 0.5], cores=2)}
    add_ratios(infos, rounds)
    bf16, int8 = infos[1], infos[2]
    assert bf16.throughput_vs_reference == pytest.approx(1.4)  # rounds, not 900/100
    assert bf16.throughput_vs_reference_range == [1.3, 1.5] and bf16.ratio_rounds == 3
    assert bf16.comparison == "same device (cuda NVIDIA H200)"
    assert not bf16.ratio_provisional
    assert int8.throughput_vs_reference == pytest.approx(0.5) and int8.ratio_rounds is None
    assert int8.comparison == "cross-device: cpu vs reference on cuda NVIDIA H200"
    assert int8.ratio_provisional and int8.ratio_load_average_max == 3.0


def test_each_scorer_is_priced_at_its_own_devices_instance():
    cost = {"requests_per_month": 3.6e6, "instance_cost_per_hour": 1.0,
            "instance_cost_per_hour_by_device": {"cuda": 4.0}}
    scorers = {"fp32": {"device": "cuda NVIDIA H200", "throughput_rows_per_s": 1000.0},
               "int8": {"device": "cpu", "throughput_rows_per_s": 100.0}}
    assert instance_price(scorers["fp32"], cost) == 4.0
    assert instance_price(scorers["int8"], cost) == 1.0
    found = deployment_cost("int8", {"int8": 1.0}, scorers, cost, "fp32")
    # 3.6e6 rows: 10 CPU hours at 1.0 against 1 GPU hour at 4.0
    assert found["monthly_cost"] == pytest.approx(10.0)
    assert found["reference_monthly_cost"] == pytest.approx(4.0)
    assert found["saving"] == pytest.approx(-6.0) and "costs" in found["sentence"]
    one_price = deployment_cost("int8", {"int8": 1.0}, scorers,
                                {**cost, "instance_cost_per_hour_by_device": None}, "fp32")
    assert one_price["reference_monthly_cost"] == pytest.approx(1.0)


def test_the_cost_config_names_only_known_devices():
    from validator.config import CostConfig

    CostConfig(requests_per_month=1, instance_cost_per_hour=1,
               instance_cost_per_hour_by_device={"cuda": 3.5})
    with pytest.raises(ValueError, match="tpu"):
        CostConfig(requests_per_month=1, instance_cost_per_hour=1,
                   instance_cost_per_hour_by_device={"tpu": 3.5})
