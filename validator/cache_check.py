"""Cached predictions are verified before a run uses them.

Anyone who can write the cache folder (a CI cache restored between jobs) could put a
reference's predictions under a candidate's key and turn a failing gate into a pass.
So each run, per scorer:

- serves a cached row only when the whole batch it was scored in (the chunk records
  it) is among this run's texts; rows of other batches are scored again;
- draws ``CHECK_BATCHES`` of those cached batches at random (seeded from the operating
  system at run time, mixed with the scorer's key: an attacker cannot know which) and
  scores each again, in the same composition and order, so dynamic INT8's per-batch
  activation ranges are those of the cached values;
- compares within ``TOLERANCE`` (a faithful cache differs by 0: same inputs, same
  kernels; the tolerance only absorbs float noise of thread scheduling). One
  disagreeing row discards every chunk that held a disagreeing batch and the whole
  cache of that scorer for this run: every row is scored again, and the run says so.

The record (``record.schema.CacheCheck``) states the rows checked and, for an edited
share p of the cached rows, the probability that the draw holds at least one edited
batch: with G cached batches of at most B rows, N rows, and g drawn, an edit of pN rows
touches at least t = ceil(pN / B) batches, and P(caught) >= 1 - C(G - t, g) / C(G, g).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import sys
from dataclasses import dataclass, field

import numpy as np

from validator.cache import Chunk, PredictionCache, signing_key

CHECK_BATCHES = 8
TOLERANCE = 1e-4   # in rating points; see the module docstring and docs/trust.md
SHARES = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Cached:
    """What the cache holds for a run's distinct texts."""
    values: np.ndarray                      # (texts, width), NaN where not served
    found: np.ndarray                       # served from the cache
    batches: list[tuple[Chunk, np.ndarray, np.ndarray]] = field(default_factory=list)
    # each whole batch among the texts: (its chunk, rows in the chunk, rows of the texts)


def lookup(cache: PredictionCache, fingerprint: str, keys: np.ndarray, width: int) -> Cached:
    """The cached values of the texts ``keys`` (one key per distinct text), batch by
    batch; a batch with a text this run lacks is not served (it cannot be checked)."""
    position = {key: i for i, key in enumerate(keys.tolist())}  # a repeated key: its last
    cached = Cached(np.full((len(keys), width), np.nan), np.zeros(len(keys), dtype=bool))
    for chunk in cache.chunks(fingerprint, width):
        for rows in chunk.batches().values():
            texts = [position.get(key) for key in chunk.keys[rows].tolist()]
            if None in texts:
                continue
            texts = np.array(texts)
            cached.values[texts], cached.found[texts] = chunk.values[rows], True
            cached.batches.append((chunk, rows, texts))
    last = np.array([position[key] for key in keys.tolist()], dtype=int)
    cached.values, cached.found = cached.values[last], cached.found[last]  # repeated keys
    return cached


def catch_probability(batch_sizes: list[int], drawn: int) -> dict[str, float]:
    """P(the draw holds an edited batch) for each share of edited cached rows."""
    total, rows, largest = len(batch_sizes), sum(batch_sizes), max(batch_sizes, default=1)
    out = {}
    for share in SHARES:
        touched = min(total, math.ceil(share * rows / largest))
        missed = math.comb(total - touched, drawn) / math.comb(total, drawn) if total else 1.0
        out[f"{share:g}"] = round(1.0 - missed, 4)
    return out


def verify(scorer, texts: list[str], cached: Cached, predict, fingerprint: str,
           cache: PredictionCache) -> dict:
    """Score ``CHECK_BATCHES`` drawn cached batches again; on a disagreement, discard
    (see the module docstring). Returns the CacheCheck record as plain data."""
    run_key = int.from_bytes(hashlib.sha256(fingerprint.encode()).digest()[:8], "big")
    rng = np.random.default_rng([secrets.randbits(64), run_key])
    drawn = rng.choice(len(cached.batches), size=min(CHECK_BATCHES, len(cached.batches)),
                       replace=False) if cached.batches else []
    checked, disagreeing, largest, bad = 0, 0, 0.0, set()
    for index in drawn:
        chunk, rows, positions = cached.batches[index]
        fresh = predict(scorer, [texts[i] for i in positions], lambda *_: None)
        difference = np.abs(np.asarray(fresh, dtype=float) - chunk.values[rows]).max(axis=1)
        wrong = ~(difference <= TOLERANCE)  # NaN disagrees
        checked, disagreeing = checked + len(rows), disagreeing + int(wrong.sum())
        largest = max(largest, float(np.nanmax(difference, initial=0.0)))
        if wrong.any():
            bad.add(chunk.path)
    from_cache = int(cached.found.sum())
    if bad:
        for path in bad:
            cache.discard(path)
        print(f"warning: cache: {disagreeing} of {checked} re-scored cached rows of "
              f"{scorer.name!r} disagree with the cache (largest difference {largest:.3g}); "
              f"discarded {len(bad)} chunk(s) and scoring all {len(texts)} texts afresh",
              file=sys.stderr)
        cached.found[:] = False
    return {"rows_from_cache": from_cache, "rows_checked": checked,
            "rows_disagreeing": disagreeing, "tolerance": TOLERANCE,
            "max_difference": largest if checked else None, "rescored": bool(bad),
            "chunks_discarded": cache.unsigned.get(fingerprint, 0) + len(bad),
            "signed": signing_key() is not None,
            "catch_probability": catch_probability([len(b[1]) for b in cached.batches],
                                                   len(drawn))}


def say_unsigned(cache: PredictionCache, fingerprint: str, scorer_name: str) -> None:
    discarded = cache.unsigned.get(fingerprint, 0)
    if discarded:
        print(f"warning: cache: discarded {discarded} chunk(s) of {scorer_name!r} unsigned or "
              f"mis-signed under SLICE_VALIDATOR_CACHE_KEY; their rows are scored again",
              file=sys.stderr)


def describe(name: str, check) -> str:
    """One terminal line per scorer (``check``: record.schema.CacheCheck)."""
    p10 = check.catch_probability.get("0.1", 0.0)
    verdict = ("disagreed: discarded and scored afresh" if check.rescored
               else "all agree")
    return (f"cache: {name}: {check.rows_checked} of {check.rows_from_cache} cached rows "
            f"scored again, {verdict}; an edit of 10% of cached rows is caught with "
            f"p >= {p10:.2f}, of 50% with p >= "
            f"{check.catch_probability.get('0.5', 0.0):.2f}")
