"The limits chapter's instruments: scores equal the engine's, the window is a hard wall, the probe and the fine-tuning."

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpt2_edu.corpus import join_documents, load_corpus
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.studies.limitations import (
    finetune_answers,
    paired_probe,
    position_bins,
    position_losses,
    repeat_losses,
    sequence_logprobs,
)
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.zeroshot.cloze import last_word_task, make_last_word
from gpt2_edu.zeroshot.engine import encode_pair, loglikelihood


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(join_documents(load_corpus("shakespeare", "train")[:2]), 400)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2)).eval()


@pytest.fixture(scope="module")
def ids(tok):
    return np.array(tok.encode_ordinary(load_corpus("shakespeare", "valid")[0].text[:20_000]))


def test_sequence_logprobs_equal_the_engines_including_truncation(model, tok):
    text = load_corpus("shakespeare", "valid")[1].text
    requests = [(text[:30], " lord"), (text[:400], " the king's"), (text[1000:1500], "\nEnter"), ("Sir", ",")]
    expected = [logprob for logprob, _ in loglikelihood(model, tok, requests)]
    rows = [(ctx + cont, len(cont)) for ctx, cont in (encode_pair(tok, *request) for request in requests)]
    assert max(len(tokens) for tokens, _ in rows) > model.config.n_positions + 1  # left truncation is exercised
    with torch.no_grad():
        got = sequence_logprobs(model, rows).tolist()
    assert got == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="1 <= n"):
        sequence_logprobs(model, [([1, 2, 3], 3)])


def test_sequence_logprobs_keep_gradients(model, tok):
    rows = [(list(range(10, 30)), 5)]
    total = sequence_logprobs(model, rows).sum()
    total.backward()
    assert model.transformer.wte.weight.grad is not None and model.transformer.wte.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_position_losses_equal_a_plain_cross_entropy(model, ids):
    window = model.config.n_positions
    curve = position_losses(model, ids, max_windows=5, batch_size=2)
    windows = torch.tensor(ids[: 5 * window + 1][:-1].reshape(5, window))  # (5, T)
    targets = torch.tensor(ids[1 : 5 * window + 1].reshape(5, window))  # (5, T)
    with torch.no_grad():
        logits, _ = model(windows)
        expected = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(0)  # (T,)
    assert curve == pytest.approx(expected.numpy(), abs=1e-4)
    with pytest.raises(ValueError, match="do not fill one window"):
        position_losses(model, ids[:10])


def test_per_window_losses_average_to_the_curve(model, ids):
    per_window = position_losses(model, ids, max_windows=5, batch_size=2, per_window=True)
    assert per_window.shape == (5, model.config.n_positions)
    assert per_window.mean(0) == pytest.approx(position_losses(model, ids, max_windows=5, batch_size=3), abs=1e-9)


def test_position_bins_by_hand():
    losses = np.array([[4.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0], [6.0, 5.0, 4.0, 2.0, 3.0, 3.0, 3.0, 3.0]])
    edges, means, errors = position_bins(losses)
    assert edges.tolist() == [0, 1, 2, 4, 8]  # bins 0, 1, 2-3, 4-7
    assert means.tolist() == [5.0, 4.0, 2.5, 2.0]
    # bin 0: values 4 and 6, sample std sqrt(2), two standard errors 2 * sqrt(2) / sqrt(2) = 2
    assert errors.tolist() == pytest.approx([2.0, 2.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2 windows"):
        position_bins(losses[:1])


def test_past_the_window_a_first_copy_changes_nothing(model, ids):
    window = model.config.n_positions
    control, repeated = repeat_losses(model, ids, [0, 4, window, 2 * window], n_passages=4, length=8)
    assert repeated[-2:] == pytest.approx(control[-2:], abs=1e-6)  # the first copy is out of view
    assert repeated[0] != pytest.approx(control[0], abs=1e-6)  # inside the window it is seen


def test_repeat_losses_per_passage_are_what_the_means_average(model, ids):
    window = model.config.n_positions
    distances = [0, 4, window]
    each = repeat_losses(model, ids, distances, n_passages=4, length=8, per_passage=True)
    means = repeat_losses(model, ids, distances, n_passages=4, length=8)
    for per_passage, mean in zip(each, means):
        assert per_passage.shape == (3, 4)
        assert per_passage.mean(1) == pytest.approx(mean, abs=1e-6)
    assert each[1][0].std() > 0  # passages differ: an interval has something to show


def test_paired_probe_is_a_difference_of_engine_scores(model, tok):
    templates = ["I know {} is a", "and {} was a"]
    nouns = [" king", " fool", " maid"]
    gaps = paired_probe(model, tok, templates, ("he", "she"), nouns)
    assert gaps.shape == (2, 3)
    he = loglikelihood(model, tok, [("and he was a", " fool")])[0][0]
    she = loglikelihood(model, tok, [("and she was a", " fool")])[0][0]
    assert gaps[1, 1] == pytest.approx(he - she, abs=1e-5)
    assert paired_probe(model, tok, templates, ("she", "he"), nouns) == pytest.approx(-gaps, abs=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        paired_probe(model, tok, ["no slot"], ("he", "she"), nouns)


def test_finetuning_raises_the_right_answers_probability(tok):
    torch.manual_seed(1)
    small = GPT(GPTConfig(vocab_size=tok.vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    requests = last_word_task(make_last_word(6, docs=load_corpus("shakespeare", "train")[:2])).requests()

    def answer_loss():
        with torch.no_grad():
            return -sum(logprob for logprob, _ in loglikelihood(small, tok, requests))

    before = answer_loss()
    losses = finetune_answers(small, tok, requests * 15, steps=30, per_step=3, lr=3e-3)
    after = answer_loss()
    assert len(losses) == 30 and after < 0.6 * before, (before, after)  # it learns the answers it trains on
    assert not small.training  # left in evaluation mode
    with pytest.raises(ValueError, match="need 300 pairs"):
        finetune_answers(small, tok, requests, steps=100, per_step=3)
