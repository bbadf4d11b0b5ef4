"""The next token (`gpt2_edu.model.next_token`): sampling settings refused by name, filters, and the chunked loss."""

import pytest
import torch
import torch.nn.functional as F
import transformers

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.model.next_token import (
    IGNORE_INDEX,
    check_sampling,
    chunked_lm_loss,
    next_token_probs,
    sample_next,
    top_k_filter,
    top_p_filter,
)

transformers.utils.logging.disable_progress_bar()


MODEL = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).eval()


PROMPT = torch.tensor([[1, 2, 3]])


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "settings, expected",
    [
        (dict(top_p=1.5), r"top_p=1.5 must be a number in \(0, 1\]"),
        (dict(top_p=0), r"top_p=0 must be a number in \(0, 1\]"),
        (dict(top_p=-0.1), r"top_p=-0.1 must be"),
        (dict(top_p=NAN), r"top_p=nan must be"),
        (dict(temperature=NAN), r"temperature=nan must be a finite number >= 0"),
        (dict(temperature=INF), r"temperature=inf must be a finite number >= 0"),
        (dict(temperature=-1), r"temperature=-1 must be a finite number >= 0"),
        (dict(top_k=0), r"top_k=0 must be an integer >= 1"),
        (dict(top_k=-5), r"top_k=-5 must be an integer >= 1"),
        (dict(top_k=2.5), r"top_k=2.5 must be an integer >= 1"),
    ],
)
def test_bad_sampling_settings(settings, expected):
    with pytest.raises(ValueError, match=expected):
        MODEL.generate(PROMPT, 5, **settings)


@pytest.mark.parametrize("max_new_tokens", [-1, 2.0, "5", None, True])
def test_bad_max_new_tokens(max_new_tokens):
    with pytest.raises(ValueError, match=f"max_new_tokens={max_new_tokens!r} must be an integer >= 0"):
        MODEL.generate(PROMPT, max_new_tokens)


def test_filters_and_sample_next_check_their_settings_too():
    logits = torch.randn(2, 50)
    with pytest.raises(ValueError, match="top_p=1.01"):
        top_p_filter(logits, 1.01)
    with pytest.raises(ValueError, match="top_k=0"):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match="temperature=-0.5"):
        sample_next(logits, -0.5)
    assert torch.equal(top_p_filter(logits, 1), logits)  # 1 is valid: keeps every token


def test_validation_happens_before_any_work(monkeypatch):
    calls = []
    monkeypatch.setattr(GPT, "hidden_states", lambda *args, **kwargs: calls.append(1))
    with pytest.raises(ValueError):
        MODEL.generate(PROMPT, 5, top_p=2)
    assert calls == []


Z = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])


def test_filters_keep_what_they_must():
    assert torch.isfinite(top_p_filter(Z, 0.01)).sum().item() == 1  # the top token is always kept
    assert torch.equal(top_p_filter(Z, 1.0), Z)
    assert torch.equal(top_k_filter(Z, 5), Z)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: top_k_filter(Z, 0), "top_k=0 must be an integer >= 1"),
        (lambda: top_k_filter(Z, 2.5), "top_k=2.5 must be an integer"),
        (lambda: top_p_filter(Z, 1.5), r"top_p=1.5 must be a number in \(0, 1\]"),
        (lambda: top_p_filter(Z, 0), "top_p=0 must be"),
        (lambda: top_p_filter(Z, float("nan")), "top_p=nan must be"),
        (lambda: check_sampling(0.8, 40, 1.5), r"top_p=1.5 must be a number in \(0, 1\]"),
    ],
)
def test_filters_refuse_bad_settings(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_low_temperature_is_nearly_greedy():
    draws = sample_next(Z.expand(2000, -1), 0.1, generator=torch.Generator().manual_seed(0))
    assert (draws == 0).float().mean() > 0.99


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1"])
def test_sample_next_refuses_a_bad_temperature(bad):
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        sample_next(Z, bad)


def test_chunked_loss_equals_cross_entropy_in_value_and_gradients_with_padding_rows():
    torch.manual_seed(0)
    xs = torch.randn(70, 16, requires_grad=True)
    ws = torch.randn(100, 16, requires_grad=True)
    targets = torch.randint(0, 100, (70,))
    targets[:7] = IGNORE_INDEX
    reference = F.cross_entropy(xs @ ws.t(), targets, ignore_index=IGNORE_INDEX)
    ours = chunked_lm_loss(xs, ws, targets, chunk=32)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)
    for ours_grad, ref_grad in zip(
        torch.autograd.grad(2 * ours, (xs, ws)), torch.autograd.grad(2 * reference, (xs, ws))
    ):
        torch.testing.assert_close(ours_grad, ref_grad, atol=1e-6, rtol=0)
    padded = torch.cat([ws.detach(), torch.randn(28, 16)]).requires_grad_()  # 28 padding rows, masked out
    torch.testing.assert_close(
        chunked_lm_loss(xs, padded, targets, chunk=32, vocab_size=100), reference, atol=1e-6, rtol=0
    )


def test_next_token_probs_is_hf_transformers_chain_temperature_then_top_k_then_top_p():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(8, 300, generator=torch.Generator().manual_seed(0)) * 3
    for temperature, top_k, top_p in [(0.7, 40, 0.9), (1.5, 10, 0.5), (1.0, None, 0.95), (0.3, 5, None)]:
        chain = TemperatureLogitsWarper(temperature)(None, logits.clone())
        if top_k is not None:
            chain = TopKLogitsWarper(top_k)(None, chain)
        if top_p is not None:
            chain = TopPLogitsWarper(top_p)(None, chain)
        ours = next_token_probs(logits, temperature, top_k=top_k, top_p=top_p)
        torch.testing.assert_close(ours, chain.softmax(-1), atol=1e-6, rtol=0)
        torch.testing.assert_close(ours.sum(-1), torch.ones(8))


def test_next_token_probs_greedy_is_one_hot_and_unseen_tokens_stay_at_zero():
    assert next_token_probs(Z, 0).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    counted = torch.tensor([5.0, 3.0, 0.0, 2.0]).log()  # a token never seen: log 0 = -inf
    for temperature in (0.5, 1.0, 2.0):
        probs = next_token_probs(counted, temperature)
        assert probs[2] == 0 and torch.isclose(probs.sum(), torch.tensor(1.0))
    torch.testing.assert_close(next_token_probs(counted), torch.tensor([0.5, 0.3, 0.0, 0.2]))
    assert torch.equal(next_token_probs(counted, top_k=2) > 0, torch.tensor([True, True, False, False]))


def test_sample_next_draws_from_next_token_probs():
    settings = dict(temperature=0.8, top_k=3, top_p=0.9)
    drawn = sample_next(Z.expand(4000, -1), **settings, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(drawn.flatten(), minlength=5) / 4000
    torch.testing.assert_close(frequencies, next_token_probs(Z, **settings)[0], atol=0.03, rtol=0)
    with pytest.raises(ValueError, match="top_k=0"):
        next_token_probs(Z, top_k=0)
