"""Measuring a run (`gpt2_edu.train.metrics`): the targets the validation loss scores are the batches' own."""

import numpy as np

from gpt2_edu.train.data import eval_batches
from gpt2_edu.train.metrics import eval_targets


def test_eval_targets_are_the_targets_of_the_evaluated_batches():
    tokens = np.arange(5_000) % 257
    batches = np.concatenate([y.flatten().numpy() for _, y in eval_batches(tokens, 64, 8, 4)])
    assert np.array_equal(eval_targets(tokens, 64, 8, max_batches=4), batches)
    assert np.array_equal(
        eval_targets(tokens, 64, 8), np.concatenate([y.flatten().numpy() for _, y in eval_batches(tokens, 64, 8)])
    )
