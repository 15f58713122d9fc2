"""The prediction cache: resume after an interruption, with a fake scorer behind the
scorer interface (deterministic, fast, and able to crash on demand)."""

from __future__ import annotations

import numpy as np
import pytest

from validator.cache import PredictionCache, row_keys
from validator.cache_check import lookup
from validator.scorers import no_progress
from validator.scorers.batched import BatchedScorer
from validator.scorers.output_map import OutputMap
from validator.scoring import score_cached


class CharTokenizer:
    """Token ids are character codes; enough to exercise batching and padding."""

    model_input_names = ["input_ids", "attention_mask"]
    pad_token_id = 0
    padding_side = "right"

    def __call__(self, texts, truncation=True, max_length=32):
        return {"input_ids": [[ord(c) for c in t[:max_length]] for t in texts]}

    def get_vocab(self):
        return {}


class FakeScorer(BatchedScorer):
    backend = "fake"

    def __init__(self, crash_after: int | None = None):
        super().__init__("fake", ["a", "b"], CharTokenizer(), OutputMap((0, 1)), batch_size=4,
                         max_length=32)
        self.crash_after, self.batches = crash_after, 0

    def run_batch(self, batch):
        self.batches += 1
        if self.crash_after is not None and self.batches > self.crash_after:
            raise KeyboardInterrupt
        ids = batch["input_ids"] * batch["attention_mask"]
        return np.stack([ids.sum(axis=1) % 5 + 1.0, batch["attention_mask"].sum(axis=1)], axis=1)

    def fingerprint(self):
        return "fake-model-v1"


TEXTS = [f"text number {i} " + "x" * (i % 7) for i in range(40)] + ["repeat", "repeat"]


def test_interrupted_run_resumes_from_the_last_chunk(tmp_path):
    cache = PredictionCache(tmp_path, flush_rows=8)
    expected, _, _ = score_cached(FakeScorer(), TEXTS, no_progress, None)
    with pytest.raises(KeyboardInterrupt):
        score_cached(FakeScorer(crash_after=3), TEXTS, no_progress, cache)
    distinct = list(dict.fromkeys(TEXTS))
    found = lookup(cache, "fake-model-v1", row_keys(distinct), 2).found
    assert found.sum() == 8  # one chunk of 8 texts was written before the crash
    resumed = FakeScorer()
    values, from_cache, check = score_cached(resumed, TEXTS, no_progress, cache)
    np.testing.assert_array_equal(values, expected)
    assert from_cache == sum(t in set(np.array(distinct)[found]) for t in TEXTS)
    assert check["rows_checked"] == 8 and check["rows_disagreeing"] == 0  # both batches
    # only the rest was scored, plus the two cached batches scored again to check them
    assert resumed.batches == -(-(len(distinct) - 8) // 4) + 2


def test_duplicate_texts_are_scored_once_and_share_a_value(tmp_path):
    scorer = FakeScorer()
    values, _, _ = score_cached(scorer, TEXTS, no_progress, PredictionCache(tmp_path))
    np.testing.assert_array_equal(values[-1], values[-2])
    assert scorer.batches == -(-41 // 4)
