"""What the Ray engine relies on, without Ray (tiny random BERT): a scorer survives the
trip to an actor (pickled as Ray ships it: the model, a fresh trace, the ONNX file's
bytes) with the same predictions and fingerprint, and runs of whole batches of its batch
order give exactly the batches of one local call (dynamic INT8 included)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import DIMENSIONS, tiny_model_dir
from test_transformers_backend import TEXTS, recipe_context, scorer_config
from validator.scorers import RecipeContext, no_progress
from validator.scorers.onnx_recipes import onnx_int8_dynamic
from validator.scorers.torch_recipes import torch_int8_dynamic
from validator.scorers.transformers_backend import load_transformers_scorer

SCALE = (1, 5)
ROWS = TEXTS * 5  # 35 rows, several batches of 4 and lengths shared across batches


@pytest.fixture(scope="module")
def scorers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    model = tiny_model_dir(folder / "model")
    eager = load_transformers_scorer(scorer_config(model), DIMENSIONS, SCALE)
    traced = load_transformers_scorer(scorer_config(model, runtime="torchscript"),
                                      DIMENSIONS, SCALE)
    context = RecipeContext("candidates[1]", list, folder / "artefacts", no_progress)
    return {"eager": eager, "traced": traced,
            "int8": torch_int8_dynamic("int8", traced, recipe_context()),
            "onnx-int8": onnx_int8_dynamic("onnx-int8", eager, context)}


@pytest.mark.parametrize("name", ["eager", "traced", "int8", "onnx-int8"])
def test_a_scorer_shipped_to_an_actor_predicts_what_it_predicts_here(scorers, name):
    scorer = scorers[name]
    shipped = pickle.loads(pickle.dumps(scorer))
    shipped.threads = 1
    shipped.set_threads(1)  # as an actor with one CPU does
    assert shipped.fingerprint() == scorer.fingerprint()
    assert np.abs(shipped.predict(ROWS) - scorer.predict(ROWS)).max() < 1e-5
    if name == "onnx-int8":  # the session reads the shipped bytes, not the driver's file
        assert shipped.onnx_file != scorer.onnx_file
        assert shipped.onnx_file.read_bytes() == scorer.onnx_file.read_bytes()


def test_runs_of_whole_batches_of_the_order_are_the_batches_of_one_call(scorers):
    scorer = scorers["int8"]
    order, batch = scorer.batch_order(ROWS)
    assert batch == 4 and sorted(order) == list(range(len(ROWS)))
    whole = scorer.predict(ROWS)
    pieces = np.empty_like(whole)
    for start in range(0, len(order), 2 * batch):  # calls of two batches, as the engine cuts
        rows = order[start:start + 2 * batch]
        pieces[rows] = scorer.predict([ROWS[i] for i in rows])
    assert np.array_equal(pieces, whole)
    shifted = order[1:1 + 2 * batch]  # a run that does not start on a batch boundary
    assert not np.array_equal(scorer.predict([ROWS[i] for i in shifted]), whole[shifted])


def test_the_engine_reorders_nothing_for_a_scorer_without_batches():
    from validator.scorers import Scorer

    class Plain(Scorer):
        def predict(self, texts, on_batch=None):
            return np.zeros((len(texts), 1))

    order, batch = Plain("plain", ["a"]).batch_order(["x", "y", "z"])
    assert order.tolist() == [0, 1, 2] and batch == 1


def test_token_lengths_without_holding_encodings_match_the_encodings(scorers, monkeypatch):
    from validator.scorers import batched

    scorer = scorers["eager"]
    monkeypatch.setattr(batched, "LENGTH_CHUNK", 3)
    fresh = batched.TokenCache()
    assert fresh.lengths(scorer, ROWS).tolist() == [len(ids) for ids in scorer.encode(ROWS)]
    assert fresh._store == {}
