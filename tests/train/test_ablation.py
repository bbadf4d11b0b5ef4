"""The ablation's variants (chapter 06g) differ from GPT-2 exactly where they should, and each of them trains."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT, Block
from gpt2_edu.train.ablation import NORMS, VARIANTS, PostLNBlock, build_variant, run_ablation, train_losses
from gpt2_edu.train.recipe import TrainConfig, seed_everything

CONFIG = GPTConfig(vocab_size=64, n_positions=16, n_embd=32, n_layer=3, n_head=4)


def _variant(norm: str, scaled_init: bool, seed: int = 0) -> GPT:
    seed_everything(seed)
    return build_variant(CONFIG, norm, scaled_init)


def _c_proj(model: GPT) -> list[torch.Tensor]:
    return [param for name, param in model.named_parameters() if name.endswith("c_proj.weight")]


def test_post_ln_block_computes_the_formula_by_hand():
    torch.manual_seed(0)
    block = PostLNBlock(CONFIG).eval()
    x = torch.randn(2, 7, CONFIG.n_embd)
    h = x + block.attn(x)
    h = nn.functional.layer_norm(h, (CONFIG.n_embd,), block.ln_1.weight, block.ln_1.bias, CONFIG.layer_norm_epsilon)
    out = h + block.mlp(h)
    out = nn.functional.layer_norm(out, (CONFIG.n_embd,), block.ln_2.weight, block.ln_2.bias, CONFIG.layer_norm_epsilon)
    torch.testing.assert_close(block(x), out, rtol=0, atol=1e-6)
    pre = Block(CONFIG).eval()
    pre.load_state_dict(block.state_dict())
    assert (pre(x) - block(x)).abs().max() > 0.1, "with the same weights, pre-LN and post-LN compute different things"


def test_pre_ln_scaled_variant_is_the_stock_gpt():
    seed_everything(0)
    stock = GPT(CONFIG)
    variant = _variant("pre", True)
    assert type(variant) is GPT and all(type(block) is Block for block in variant.transformer.h)
    assert stock.state_dict().keys() == variant.state_dict().keys()
    for name, tensor in stock.state_dict().items():
        assert torch.equal(tensor, variant.state_dict()[name]), name
    idx = torch.randint(CONFIG.vocab_size, (2, 9))
    torch.testing.assert_close(stock(idx)[0], variant(idx)[0], rtol=0, atol=0)


def test_scaled_init_false_leaves_c_proj_at_the_plain_std():
    scaled = _c_proj(_variant("pre", True))
    plain = _c_proj(_variant("pre", False))
    factor = math.sqrt(2 * CONFIG.n_layer)
    for a, b in zip(scaled, plain):
        torch.testing.assert_close(b, a * factor)  # the same draws, unscaled
    assert abs(torch.cat([p.flatten() for p in plain]).std().item() - CONFIG.init_std) < 1e-3
    assert abs(torch.cat([p.flatten() for p in scaled]).std().item() - CONFIG.init_std / factor) < 1e-3
    stock, unscaled = _variant("pre", True), _variant("pre", False)
    for (name, a), b in zip(stock.named_parameters(), unscaled.parameters()):
        if not name.endswith("c_proj.weight"):
            assert torch.equal(a, b), f"{name} should not change"


def test_post_variant_has_the_same_weights_wired_as_gpt1():
    stock = _variant("pre", True)
    post = _variant("post", True)
    assert all(type(block) is PostLNBlock for block in post.transformer.h)
    assert isinstance(post.transformer.ln_f, nn.Identity)  # GPT-1 had no final LayerNorm
    post_weights = post.state_dict()
    for name, tensor in stock.state_dict().items():
        if not name.startswith("transformer.ln_f"):
            assert torch.equal(tensor, post_weights[name]), name
    assert all(param.requires_grad and param.device.type == "cpu" for param in post.parameters())
    idx = torch.randint(CONFIG.vocab_size, (1, 5))
    x = post.transformer.wte(idx) + post.transformer.wpe(torch.arange(5))
    for block in post.transformer.h:
        x = block(x)
    torch.testing.assert_close(post(idx)[0], post.lm_head(x), rtol=0, atol=1e-5)


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm='mid'"):
        build_variant(CONFIG, "mid")


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("scaled_init", [True, False])
def test_each_variant_learns(norm, scaled_init):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    tokens = np.tile(rng.integers(0, CONFIG.vocab_size, 50), 40)  # a repeated pattern: learnable
    cfg = TrainConfig(steps=40, batch_size=8, block_size=16, lr=3e-3, warmup_steps=4, seed=0)
    losses = train_losses(_variant(norm, scaled_init), tokens, cfg, progress=False)
    assert len(losses) == 40 and all(math.isfinite(loss) for loss in losses)
    assert np.mean(losses[-5:]) < losses[0] - 0.5, f"{norm}-LN, scaled_init={scaled_init}: {losses[0]} -> {losses[-5:]}"


def test_run_ablation_gives_every_variant_the_same_batches():
    tokens = np.arange(2000) % CONFIG.vocab_size
    cfg = TrainConfig(steps=3, batch_size=4, block_size=16, lr=1e-3, warmup_steps=0, seed=0)
    results = run_ablation(CONFIG, tokens, cfg, seeds=(0, 1), progress=False)
    assert list(results) == list(VARIANTS) and all(len(runs) == 2 for runs in results.values())
    again = train_losses(_variant("pre", True, seed=1), tokens, replace(cfg, seed=1), progress=False)
    assert results["pre-LN, scaled init (GPT-2)"][1] == again
