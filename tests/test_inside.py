"""Chapter 9a's tools equal a computation by hand: the logit lens, head ablation, activation patching, and the
induction and in-context-learning scores, on tiny models with random weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from gpt2_edu.explorer import induction_score
from gpt2_edu.inside import (
    ablation_scan,
    head_outputs,
    icl_score,
    induction_heads,
    lm_loss,
    logit_difference,
    logit_lens,
    patching,
    patching_scan,
    periodic_tokens,
    position_losses,
    replacing_head,
    residual_stream,
)
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT

VOCAB = 50


@pytest.fixture(scope="module")
def model():
    "A tiny GPT with large random weights (so that every head matters), a padded vocabulary, in eval mode."
    torch.manual_seed(0)
    tiny = GPT(GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=16, n_positions=16, pad_vocab_to=64))
    with torch.no_grad():
        for param in tiny.parameters():
            param.normal_(0, 0.3)
    return tiny.eval()


@pytest.fixture(scope="module")
def idx():
    return torch.randint(VOCAB, (3, 10), generator=torch.Generator().manual_seed(1))


def _manual_forward(model, idx, zero=None):
    "Logits and the residual stream by hand: embeddings, each block written out (head `zero` = (layer, head) zeroed)."
    config = model.config
    head_dim = config.n_embd // config.n_head
    B, T = idx.shape
    x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(T))
    stream = []
    for layer, block in enumerate(model.transformer.h):
        stream.append(x)
        h = block.ln_1(x)
        q, k, v = block.attn.c_attn(h).split(config.n_embd, dim=2)
        q, k, v = (t.view(B, T, config.n_head, head_dim).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, config.n_embd)
        if zero is not None and zero[0] == layer:
            y = y.clone()
            y[..., zero[1] * head_dim : (zero[1] + 1) * head_dim] = 0
        x = x + block.attn.c_proj(y)
        x = x + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(x)), approximate="tanh"))
    stream.append(x)
    logits = model.lm_head(model.transformer.ln_f(x))[..., : config.vocab_size]
    return logits, torch.stack(stream)


@torch.no_grad()
def test_logit_lens_equals_a_manual_forward_through_blocks_ln_f_and_lm_head(model, idx):
    logits, stream = _manual_forward(model, idx)
    torch.testing.assert_close(residual_stream(model, idx), stream, atol=1e-5, rtol=1e-5)
    by_hand = model.lm_head(model.transformer.ln_f(stream))[..., :VOCAB]  # (n_layer + 1, B, T, vocab)
    lens = logit_lens(model, idx)
    assert lens.shape == (3, 3, 10, VOCAB)
    torch.testing.assert_close(lens, by_hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lens[-1], model(idx)[0], atol=1e-5, rtol=1e-5)  # the last place: the model's logits
    torch.testing.assert_close(lens[-1], logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("layer,head", [(0, 0), (0, 1), (1, 1)])
def test_zero_ablation_equals_a_forward_with_the_heads_slice_zeroed(model, idx, layer, head):
    by_hand, _ = _manual_forward(model, idx, zero=(layer, head))
    with replacing_head(model, layer, head, 0.0):
        ablated, _ = model(idx)
    torch.testing.assert_close(ablated, by_hand, atol=1e-5, rtol=1e-5)
    assert (ablated - model(idx)[0]).abs().max() > 1e-3  # the head mattered: the test can fail
    loss_by_hand = F.cross_entropy(by_hand[:, :-1].flatten(0, 1), idx[:, 1:].flatten()).item()
    change = ablation_scan(model, idx)
    assert change.shape == (2, 2)
    assert change[layer, head].item() == pytest.approx(loss_by_hand - lm_loss(model, idx), abs=1e-5)


@torch.no_grad()
def test_mean_ablation_puts_the_heads_mean_output_in_its_slice(model, idx):
    outputs = head_outputs(model, idx)  # (n_layer, B, T, n_head, head_dim)
    mean = outputs[1, :, :, 0].mean(dim=(0, 1))  # layer 1, head 0: its mean over batch and positions
    with replacing_head(model, 1, 0, mean):
        replaced = head_outputs(model, idx)
    torch.testing.assert_close(replaced[1, :, :, 0], mean.expand(3, 10, -1))
    torch.testing.assert_close(replaced[1, :, :, 1], outputs[1, :, :, 1])
    with replacing_head(model, 1, 0, mean):
        inside = lm_loss(model, idx)
    assert ablation_scan(model, idx, mean=True)[1, 0].item() == pytest.approx(inside - lm_loss(model, idx), abs=1e-5)


@torch.no_grad()
def test_hooks_are_removed_even_after_an_error(model, idx):
    before = model(idx)[0]
    with pytest.raises(RuntimeError), replacing_head(model, 0, 0, 0.0):
        raise RuntimeError("inside the with")
    with pytest.raises(RuntimeError), patching(model, 1, torch.zeros(3, 10, 16)):
        raise RuntimeError("inside the with")
    torch.testing.assert_close(model(idx)[0], before)
    assert all(not block.attn.c_proj._forward_pre_hooks for block in model.transformer.h)
    assert all(not block._forward_pre_hooks for block in model.transformer.h)


@torch.no_grad()
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_the_whole_stream_at_all_positions_recovers_the_clean_logits_exactly(model, idx, layer):
    corrupted = (idx + 1) % VOCAB
    clean_stream = residual_stream(model, idx)
    with patching(model, layer, clean_stream[layer]):
        patched, _ = model(corrupted)
    torch.testing.assert_close(patched, model(idx)[0], atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_patching_scan_recovers_all_where_the_difference_is_and_none_elsewhere(model, idx):
    corrupted = idx.clone()
    corrupted[:, 4] = (idx[:, 4] + 7) % VOCAB
    right, wrong = idx[:, 4], corrupted[:, 4]
    recovered = patching_scan(model, idx, corrupted, right, wrong)
    assert recovered.shape == (3, 10)
    expected_embeddings = torch.zeros(10)
    expected_embeddings[4] = 1.0  # the embeddings differ only at position 4
    torch.testing.assert_close(recovered[0], expected_embeddings, atol=1e-5, rtol=1e-5)
    expected_last = torch.zeros(10)
    expected_last[-1] = 1.0  # after the last block only the last position's stream reaches the logits
    torch.testing.assert_close(recovered[-1], expected_last, atol=1e-5, rtol=1e-5)
    # one entry by hand: patch position 6 after block 1
    stream = residual_stream(model, idx)
    corrupted_run = model(corrupted)[0]
    with patching(model, 1, stream[1, :, 6], position=6):
        patched_run = model(corrupted)[0]
    rows = torch.arange(3)

    def diff(logits):
        return (logits[rows, -1, right] - logits[rows, -1, wrong]).mean()

    share = (diff(patched_run) - diff(corrupted_run)) / (diff(model(idx)[0]) - diff(corrupted_run))
    assert recovered[1, 6].item() == pytest.approx(share.item(), abs=1e-5)
    torch.testing.assert_close(logit_difference(model, idx, right, wrong).mean(), diff(model(idx)[0]))


def test_induction_score_on_a_hand_built_attention_pattern():
    period = 4
    T = 2 * period
    weights = torch.eye(T)
    for query in range(period, T):
        weights[query, query] = 0.0
        weights[query, query - period + 1] = 1.0  # the token after the earlier copy
    assert induction_score(weights, period).item() == pytest.approx(1.0)
    assert induction_score(torch.eye(T), period).item() == pytest.approx(0.0)
    half = weights.clone()
    half[period:] = 0.5 * weights[period:] + 0.5 * torch.eye(T)[period:]  # half on the copy, half on itself
    assert induction_score(half, period).item() == pytest.approx(0.5)


@torch.no_grad()
def test_induction_heads_ranks_the_scores_of_every_head(model):
    found = induction_heads(model, period=5, k=4, batch=2)
    assert [score for _, _, score in found] == sorted((score for _, _, score in found), reverse=True)
    assert {(layer, head) for layer, head, _ in found} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_periodic_tokens_repeat_with_their_period():
    tokens = periodic_tokens(20, 30, (3, 7), 16, torch.Generator().manual_seed(0))
    assert tokens.shape == (16, 30) and tokens.min() >= 0 and tokens.max() < 20
    for row in tokens:
        period = next(p for p in range(3, 8) if torch.equal(row[p:], row[:-p]))  # each row has a period in range
        assert 3 <= period <= 7


@torch.no_grad()
def test_position_losses_and_the_icl_score_by_hand(model, idx):
    losses = position_losses(model, idx)
    logits, _ = model(idx[:, :-1])
    by_hand = torch.stack([F.cross_entropy(logits[:, i], idx[:, i + 1]) for i in range(idx.size(1) - 1)])
    torch.testing.assert_close(losses, by_hand, atol=1e-5, rtol=1e-5)
    assert icl_score(losses, 8, 2) == pytest.approx((by_hand[7] - by_hand[1]).item(), abs=1e-5)
