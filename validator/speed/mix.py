"""Traffic, speed, capacity and cost of a mix of scorers (a routed deployment).

Traffic shares come from the gate rows, each row weighted so that the rows match
``sample.production_mix`` when it is given (share of its value / rows with that
value), else equally. For a mix with shares s_i over scorers i:

- latency p50 / p95: the traffic-weighted mean of each scorer's p50 / p95 (the
  expected value of that percentile for a request, not the percentile of the mix);
- throughput: 1 / sum(s_i / throughput_i), since a row's time adds up; capacity alike
  from each scorer's capacity under the SLO;
- size, weights in memory and isolated memory: the sum over the scorers that take
  traffic (all are deployed); the harness's peak resident memory: the largest;
- the serving rate of a scorer: its capacity under ``report.slo_ms`` (requests/s one
  instance sustains within the SLO) when measured, else its raw throughput;
- instances: per scorer, ceil(requests per second x s_i / rate_i), the average
  load over a 730-hour month;
- monthly cost: requests x sum(s_i / rate_i x price_i) / 3600, price_i the hourly
  cost of scorer i's instance (``report.cost.instance_cost_per_hour_by_device`` for
  its device, else ``instance_cost_per_hour``), the basis of the per-scorer cost in
  ``summary.json`` (busy instance-hours).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

HOURS_PER_MONTH = 730


def row_weights(frame: pd.DataFrame, production_mix) -> np.ndarray:
    """A traffic weight per gate row, summing to 1."""
    if production_mix is None or production_mix.column not in frame.columns:
        return np.full(len(frame), 1.0 / max(len(frame), 1))
    values = frame[production_mix.column].astype(str)
    counts = values.map(values.value_counts())
    shares = values.map({str(k): v for k, v in production_mix.shares.items()}).fillna(0.0)
    weights = (shares / counts).to_numpy(dtype=float)
    total = weights.sum()
    return weights / total if total > 0 else np.full(len(frame), 1.0 / len(frame))


def traffic(choice: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """The share of traffic each scorer answers, largest first."""
    shares = pd.Series(weights).groupby(pd.Series(choice, dtype=object)).sum()
    return {str(k): float(v) for k, v in shares.sort_values(ascending=False).items() if v > 0}


def _weighted(shares: dict[str, float], scorers: dict[str, dict], key: str) -> float | None:
    values = [scorers[name].get(key) for name in shares]
    if any(v is None for v in values):
        return None
    return float(sum(share * v for share, v in zip(shares.values(), values)))


def rate_key(scorers) -> str:
    """The rate cost is projected from: capacity under the SLO when every scorer has
    one, else raw throughput."""
    values = scorers.values() if isinstance(scorers, dict) else scorers
    return "capacity_rps" if all(s.get("capacity_rps") for s in values) \
        else "throughput_rows_per_s"


def _seconds_per_row(shares: dict[str, float], scorers: dict[str, dict],
                     key: str = "throughput_rows_per_s") -> float | None:
    rates = [scorers[name].get(key) for name in shares]
    if any(not rate for rate in rates):
        return None
    return sum(share / rate for share, rate in zip(shares.values(), rates))


def mix_speed(shares: dict[str, float], scorers: dict[str, dict]) -> dict:
    """Speed figures of a deployment from its scorers' (dicts of ScorerInfo fields)."""
    per_row = _seconds_per_row(shares, scorers)
    per_request = _seconds_per_row(shares, scorers, "capacity_rps")
    sizes = [scorers[name].get("size_bytes") for name in shares]
    params = [scorers[name].get("parameter_bytes") for name in shares]
    memory = [scorers[name].get("memory_bytes") for name in shares]
    return {
        "capacity_rps": None if not per_request else 1.0 / per_request,
        "memory_bytes": None if None in memory else int(sum(memory)),
        "latency_ms_p50": _weighted(shares, scorers, "latency_ms_p50"),
        "latency_ms_p95": _weighted(shares, scorers, "latency_ms_p95"),
        "throughput_rows_per_s": None if not per_row else 1.0 / per_row,
        "size_bytes": None if None in sizes else int(sum(sizes)),
        "parameter_bytes": None if None in params else int(sum(params)),
        "peak_rss_bytes": int(max(scorers[name].get("peak_rss_bytes") or 0 for name in shares)),
    }


def instance_price(scorer: dict, cost: dict) -> float:
    """The hourly price of the instance that serves ``scorer``: its device's, when the
    cost config prices that device, else the one instance price."""
    by_device = cost.get("instance_cost_per_hour_by_device") or {}
    kind = (scorer.get("device") or "").split(" ")[0]
    return by_device.get(kind, cost["instance_cost_per_hour"])


def money(*values: float) -> list[str]:
    """The amounts as shown side by side: whole units, or cents when one is below 100,
    and their difference taken from the shown amounts (so 30.18 vs 40.62 saves 10.44,
    where whole units read "30 vs 41, saves 10")."""
    digits = 0 if all(abs(v) >= 100 for v in values) else 2
    shown = [round(v, digits) for v in values]
    return [f"{v:,.{digits}f}" for v in [*shown, abs(shown[1] - shown[0])]]


def deployment_cost(name: str, shares: dict[str, float], scorers: dict[str, dict], cost: dict,
                    reference: str) -> dict | None:
    """Instances and monthly cost of a deployment, and its saving against the reference
    on all traffic; None when a throughput is unknown."""
    key = rate_key({s: scorers[s] for s in {*shares, reference}})
    priced = {s: share * instance_price(scorers[s], cost) for s, share in shares.items()}
    per_row = _seconds_per_row(priced, scorers, key)  # instance-cost-seconds per row
    full = _seconds_per_row({reference: instance_price(scorers[reference], cost)}, scorers,
                            key)
    if per_row is None or full is None:
        return None
    requests = cost["requests_per_month"]
    per_second = requests / (HOURS_PER_MONTH * 3600)
    monthly = requests * per_row / 3600
    baseline = requests * full / 3600
    fallback = shares.get(reference, 0.0)
    what = (f"{name} with fallback on {fallback:.0%} of traffic" if fallback > 0
            else f"{name} on all traffic")
    mine, theirs, gap = money(monthly, baseline)
    return {
        "candidate": name, "traffic": shares, "fallback_share": fallback,
        "instances": {s: math.ceil(per_second * share / scorers[s][key])
                      for s, share in shares.items()},
        "monthly_cost": monthly, "reference_monthly_cost": baseline,
        "saving": baseline - monthly,
        "sentence": f"{what}: {mine}/month vs {theirs} for {reference} on all traffic, "
                    f"{'saves' if baseline >= monthly else 'costs'} {gap}",
    }


BASIS = {"capacity_rps": "requests / capacity (requests/s one instance sustains within "
                         "the {slo:g} ms p95 SLO, closed-loop load test) x instance cost "
                         "per hour",
         "throughput_rows_per_s": "requests / measured throughput (rows/s; no capacity "
                                  "measured) x instance cost per hour"}


def cost_projection(cost, scorers: list[dict], slo_ms: float) -> dict | None:
    if cost is None:
        return None
    key = rate_key([s for s in scorers if s["backend"] != "route"])
    prices = {"requests_per_month": cost.requests_per_month,
              "instance_cost_per_hour": cost.instance_cost_per_hour,
              "instance_cost_per_hour_by_device": cost.instance_cost_per_hour_by_device}
    per_scorer = {}
    for s in scorers:
        rate = s[key]
        hours = cost.requests_per_month / rate / 3600 if rate else None
        per_scorer[s["name"]] = None if hours is None else hours * instance_price(s, prices)
    projection = {**prices, "basis": BASIS[key].format(slo=slo_ms),
                  "monthly_cost": per_scorer}
    return {**projection, "deployments": deployments(projection, scorers)}


def deployments(cost: dict, scorers: list[dict]) -> list[dict]:
    """Each candidate's traffic mix, instances, monthly cost and saving."""
    by_name = {s["name"]: s for s in scorers}
    found = [deployment_cost(s["name"], s["traffic"] or {s["name"]: 1.0}, by_name, cost,
                             scorers[0]["name"]) for s in scorers[1:]]
    return [d for d in found if d is not None]
