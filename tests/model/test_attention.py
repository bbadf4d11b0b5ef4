"""Attention (`gpt2_edu.model.attention`): the fused layer against the hand-written kernel, in values and
gradients, the weights it makes visible, and a width the heads cannot share."""

import pytest
import torch

from gpt2_edu.model.attention import CausalSelfAttention, KVCache, attention, causal_mask, padding_mask


def _by_hand(attn, x):
    "The layer's output with the chapter's hand-written kernel instead of SDPA."
    B, T, C = x.shape
    q, k, v = attn.heads(x)
    y, _ = attention(q, k, v, causal_mask(T))
    return attn.c_proj(y.transpose(1, 2).reshape(B, T, C))


def test_sdpa_equals_the_hand_written_kernel_in_values_and_gradients():
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=8, n_head=2)
    x = torch.randn(3, 5, 8, requires_grad=True)
    fast, slow = attn(x), _by_hand(attn, x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    (grad_fast,) = torch.autograd.grad(fast.sum(), x)
    (grad_slow,) = torch.autograd.grad(slow.sum(), x)
    torch.testing.assert_close(grad_fast, grad_slow, atol=1e-5, rtol=0)


def test_weights_are_causal_distributions_and_the_last_row_matches_a_cached_step():
    torch.manual_seed(1)
    attn = CausalSelfAttention(n_embd=8, n_head=2).eval()
    x = torch.randn(2, 9, 8)
    weights = attn.weights(x)  # (B, n_head, T, T)
    assert weights.shape == (2, 2, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 9))
    assert weights.triu(1).abs().sum().item() == 0
    q, k, _ = attn.heads(x)  # the last query, computed against the cache's keys, by hand
    cache = KVCache()
    attn(x[:, :8], kv_cache=cache)
    attn(x[:, 8:], kv_cache=cache)
    last = (q[:, :, -1:] @ cache.keys[0].transpose(-2, -1) / q.size(-1) ** 0.5).softmax(-1)[:, :, 0]
    torch.testing.assert_close(last, weights[:, :, -1], atol=1e-6, rtol=0)


def test_a_width_the_heads_cannot_share_is_refused():
    with pytest.raises(ValueError, match="not divisible by n_head=3"):
        CausalSelfAttention(10, 3)


def test_causal_mask_lets_one_new_token_see_every_key_and_refuses_fewer_keys_than_queries():
    assert causal_mask(1, 6).all().item()  # a single new token after five cached ones sees all six
    with pytest.raises(ValueError, match="S must be >= T"):
        causal_mask(5, 3)


def test_padding_mask_is_causal_blind_to_padding_and_never_empty():
    attention_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    mask = padding_mask(attention_mask, 5)
    assert mask.shape == (3, 1, 5, 5)
    assert mask.any(-1).all()  # every query sees at least one key: no 0/0 softmax
    assert torch.equal(mask[2, 0, :4], torch.eye(4, 5, dtype=torch.bool))  # a padding query sees itself only
    real_queries = attention_mask.bool()[:, None, :, None]  # (B, 1, T, 1)
    allowed_for_real = mask & real_queries
    assert not (allowed_for_real & ~attention_mask.bool()[:, None, None, :]).any()  # real tokens never read padding
    assert torch.equal(mask[1, 0], causal_mask(5))
    new_token = padding_mask(attention_mask, 1)  # one new token after a cache of four
    assert torch.equal(new_token[:, 0, 0], attention_mask.bool())
