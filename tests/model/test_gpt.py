"""The model (`gpt2_edu.model.gpt`): HF transformers' logits and generations, checkpoints in and out, and the method
signatures."""

import inspect
import json
import math
import os
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2_edu.model.attention import KVCache
from gpt2_edu.model.config import GPTConfig, config_to_hf
from gpt2_edu.model.gpt import GPT, IGNORE_INDEX, next_token_targets, state_dict_from_hf

transformers.utils.logging.disable_progress_bar()


def tiny_model(vocab_size=300, seed=0):
    "A small GPT with every tensor moved away from its initial value (so a mapping mistake would show)."
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=vocab_size)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model


def write_two_shards(
    model: GPT,
    folder: Path,
    first_name="model-00001-of-00002.safetensors",
    second_name="model-00002-of-00002.safetensors",
):
    "A real 2-shard checkpoint: the tensors split in two files, and the index that maps each tensor to its file."
    folder.mkdir(parents=True, exist_ok=True)
    tensors = model.hf_state_dict()
    names = sorted(tensors)
    halves = {first_name: names[: len(names) // 2], second_name: names[len(names) // 2 :]}
    weight_map = {}
    for shard_name, keys in halves.items():
        shard_path = folder / shard_name
        shard_path.parent.mkdir(parents=True, exist_ok=True)
        save_file({key: tensors[key] for key in keys}, shard_path, metadata={"format": "pt"})
        weight_map.update({key: shard_name for key in keys})
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config)))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weight_map


MODEL = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).eval()


PROMPT = torch.tensor([[1, 2, 3]])


os.environ.setdefault("HF_HUB_OFFLINE", "1")


transformers.logging.set_verbosity_error()


SHAPES = [
    dict(n_embd=64, n_layer=2, n_head=4, n_positions=48, vocab_size=300),
    dict(n_embd=48, n_layer=3, n_head=3, n_positions=40, vocab_size=50257),
    dict(n_embd=40, n_layer=1, n_head=5, n_positions=16, vocab_size=1001),
]


def random_hf(seed=0, **shape):
    "HF GPT-2 with every tensor (LayerNorms and biases too) moved away from its initial value."
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(**shape, bos_token_id=None, eos_token_id=None, pad_token_id=0)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return hf


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize(
    "index",
    [
        {"weight_map": ["model-00001-of-00002.safetensors"]},
        {"weight_map": {"transformer.wte.weight": 3}},
        {"weight_map": {"transformer.wte.weight": ["a", "b"]}},
        {"no_weight_map": {}},
        ["not", "a", "dict"],
    ],
)
def test_malformed_index_is_refused(tmp_path, index):
    write_two_shards(tiny_model(), tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="has no valid weight_map"):
        GPT.from_pretrained(tmp_path)


def test_explicit_eos_token_id_and_gpt2_default(tmp_path):
    model = tiny_model(vocab_size=2048)
    model.save_pretrained(tmp_path, eos_token_id=0)
    assert json.loads((tmp_path / "config.json").read_text())["eos_token_id"] == 0
    assert config_to_hf(GPTConfig())["eos_token_id"] == 50256
    for bad in (2048, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"is outside the vocabulary \[0, 2048\); pass the id of <\|endoftext\|>"):
            model.save_pretrained(tmp_path, eos_token_id=bad)


@pytest.mark.parametrize(
    "method, parameters",
    [
        (
            "generate",
            [
                "self",
                "idx",
                "max_new_tokens",
                "temperature",
                "top_k",
                "top_p",
                "eot_id",
                "use_cache",
                "generator",
                "sliding_window",
                "stop",
                "attention_mask",
            ],
        ),
        ("forward", ["self", "idx", "targets", "kv_cache", "attention_mask", "last_only", "return_logits"]),
        ("from_pretrained", ["path", "dropout", "pad_vocab_to"]),
        ("save_pretrained", ["self", "folder", "eos_token_id"]),
    ],
)
def test_gpt_methods_have_real_signatures(method, parameters):
    function = getattr(GPT, method)
    assert function.__qualname__ == f"GPT.{method}"
    signature = inspect.signature(function)
    assert list(signature.parameters) == parameters
    assert not [p for p in signature.parameters.values() if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def test_generation_is_finite_math():
    "Greedy decoding still works after all the checks (a smoke test for the happy path)."
    out = MODEL.generate(PROMPT, 4, temperature=0, top_k=3, top_p=0.5)
    assert out.shape == (1, 7) and math.isfinite(float(out.float().sum()))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['n_layer']}x{s['n_embd']}h{s['n_head']}v{s['vocab_size']}")
@pytest.mark.parametrize("pad", [None, 64])
def test_logits_and_loss_match_hf_both_ways(tmp_path, shape, pad):
    hf = random_hf(**shape)
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT.from_pretrained(tmp_path / "hf", pad_vocab_to=pad)
    ids = torch.randint(0, shape["vocab_size"], (3, shape["n_positions"]))
    labels = ids.clone()
    labels[0, 5:9] = IGNORE_INDEX  # ignored positions too
    with torch.no_grad():
        ref = hf(ids, labels=labels)
        logits, loss = ours(ids, next_token_targets(labels))
        _, fast_loss = ours(ids, next_token_targets(labels), return_logits=False)
    assert logits.shape == ref.logits.shape
    assert max_diff(logits, ref.logits) < 1e-5
    assert abs(loss.item() - ref.loss.item()) < 1e-5 and abs(fast_loss.item() - ref.loss.item()) < 1e-5
    ours.save_pretrained(tmp_path / "ours")  # ours -> HF -> equal again
    assert sorted(os.listdir(tmp_path / "ours")) == ["config.json", "model.safetensors"]
    hf2 = GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert max_diff(hf2(ids).logits, ref.logits) < 1e-5
    again = GPT.from_pretrained(tmp_path / "ours")
    with torch.no_grad():
        assert max_diff(again(ids)[0], logits) < 1e-6


def test_pytorch_model_bin_hub_layout(tmp_path):
    "The hub's original files: keys without `transformer.`, old attn.bias buffers, pytorch_model.bin."
    shape = SHAPES[0]
    hf = random_hf(**shape)
    sd = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(shape["n_layer"]):
        sd[f"h.{i}.attn.bias"] = torch.ones(1, 1, shape["n_positions"], shape["n_positions"]).tril()
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    hf.config.to_json_file(tmp_path / "config.json")
    ours = GPT.from_pretrained(tmp_path)
    ids = torch.randint(0, shape["vocab_size"], (2, 20))
    with torch.no_grad():
        assert max_diff(ours(ids)[0], hf(ids).logits) < 1e-5


def test_loads_from_local_hf_cache(tmp_path, monkeypatch):
    shape = SHAPES[2]
    hf = random_hf(**shape)
    snap = tmp_path / "hub" / "models--someone--tiny-gpt2" / "snapshots" / "abc123"
    hf.save_pretrained(snap)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ours = GPT.from_pretrained("someone/tiny-gpt2")
    ids = torch.randint(0, shape["vocab_size"], (1, 10))
    with torch.no_grad():
        assert max_diff(ours(ids)[0], hf(ids).logits) < 1e-5
    with pytest.raises(FileNotFoundError, match="neither a folder nor a model in the local HF cache"):
        GPT.from_pretrained("someone/not-downloaded")


@pytest.mark.parametrize("shape", SHAPES[:2], ids=["2x64", "3x48"])
def test_greedy_generation_identical_to_hf(tmp_path, shape):
    hf = random_hf(seed=3, **{**shape, "n_positions": 96})
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    prompt = torch.randint(0, shape["vocab_size"], (2, 7))
    ref = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=64, pad_token_id=0
    )
    assert ref.shape == (2, 71)
    assert torch.equal(ours.generate(prompt, 64, temperature=0), ref)
    assert torch.equal(ours.generate(prompt, 64, temperature=0, use_cache=False), ref)


def test_sampling_cache_equals_recompute_and_is_seedable():
    m = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=97)).eval()
    p = torch.randint(0, 97, (3, 5))
    for kw in [dict(temperature=0.8), dict(top_k=40), dict(top_p=0.9), dict(temperature=1.3, top_k=20, top_p=0.8)]:
        a = m.generate(p, 40, generator=torch.Generator().manual_seed(1), **kw)
        b = m.generate(p, 40, generator=torch.Generator().manual_seed(1), use_cache=False, **kw)
        assert torch.equal(a, b), kw


def test_chunked_loss_gradients_match_plain():
    torch.manual_seed(0)
    m = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=300, pad_vocab_to=64))
    idx = torch.randint(0, 300, (2, 33))
    x, y = idx[:, :-1], idx[:, 1:].clone()
    y[1, :4] = IGNORE_INDEX
    m(x, y)[1].backward()
    g_plain = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()
    m(x, y, return_logits=False)[1].backward()
    for k, p in m.named_parameters():
        assert max_diff(p.grad, g_plain[k]) < 1e-6, k


def test_a_training_batch_layout_and_last_only_give_the_full_forwards_numbers():
    "`model(idx[:, :-1], idx[:, 1:])` is `model(idx, next_token_targets(idx))` without its last position."
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=100)).eval()
    idx = torch.randint(0, 100, (2, 10))
    with torch.no_grad():
        logits, loss = model(idx, next_token_targets(idx))
        batch_logits, batch_loss = model(idx[:, :-1], idx[:, 1:])
        last, _ = model(idx, last_only=True)
    torch.testing.assert_close(batch_loss, loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(batch_logits, logits[:, :-1], atol=1e-6, rtol=0)
    assert last.shape == (2, 1, 100)
    torch.testing.assert_close(last, logits[:, -1:], atol=1e-6, rtol=0)


def test_kv_cache_forward_equals_full():
    m = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).eval()
    idx = torch.randint(0, 50, (2, 30))
    cache = KVCache()
    with torch.no_grad():
        parts = [m(idx[:, a:b], kv_cache=cache)[0] for a, b in [(0, 11), (11, 12), (12, 20), (20, 30)]]
        assert max_diff(torch.cat(parts, 1), m(idx)[0]) < 1e-5
    with pytest.raises(ValueError, match="exceeds the model's context of 64"):
        m(torch.zeros(2, 35, dtype=torch.long), kv_cache=cache)  # 30 cached + 35 new > 64


def test_bad_config():
    with pytest.raises(ValueError, match="n_embd=100 is not divisible by n_head=12"):
        GPTConfig(n_embd=100, n_head=12)
    with pytest.raises(ValueError, match="choose one of: gpt2, gpt2-medium"):
        GPTConfig.from_preset("gpt-5")


def test_bad_tokens_and_lengths():
    m = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50))
    with pytest.raises(ValueError, match=r"token id 50 is outside the vocabulary \[0, 50\)"):
        m(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="65 tokens exceeds the model's context of 64"):
        m(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds the model's context of 64.*sliding_window=True"):
        m.generate(torch.zeros(1, 60, dtype=torch.long), 10)
    assert m.generate(torch.zeros(1, 60, dtype=torch.long), 10, sliding_window=True, temperature=0).shape == (1, 70)


def test_mismatched_checkpoint_lists_every_key(tmp_path):
    GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_embd"] = 64
    cfg["n_head"] = 4
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError) as e:
        GPT.from_pretrained(tmp_path)
    msg = str(e.value)
    assert "shape mismatch" in msg
    for key in [
        "transformer.wte.weight: checkpoint (50, 32) vs model (50, 64)",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.ln_f.bias",
    ]:
        assert key in msg, key
    tiny = GPTConfig.from_preset("gpt2-tiny", vocab_size=50)
    small = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50, n_layer=1)).hf_state_dict()
    with pytest.raises(ValueError, match="n_layer=2 but the weights are for n_layer=1"):
        state_dict_from_hf(small, tiny)
    partial = {key: t for key, t in GPT(tiny).hf_state_dict().items() if not key.startswith("transformer.h.1.ln")}
    with pytest.raises(ValueError, match=r"missing \(4 keys\):\n    transformer\.h\.1\.ln_1\.weight"):
        state_dict_from_hf(partial, tiny)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="not a GPT-2 checkpoint: it has no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert', expected 'gpt2'"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(GPT2Config(n_embd=32, n_layer=1, n_head=2).to_dict()))
    with pytest.raises(ValueError, match="no model.safetensors or pytorch_model.bin"):
        GPT.from_pretrained(tmp_path)


def test_save_is_atomic(tmp_path, monkeypatch):
    "A save that fails (here: the disk fills at the last step) leaves the old files and no temporary file."
    import errno

    import gpt2_edu.atomic

    m = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50))
    m.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def disk_fills(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gpt2_edu.atomic.os, "replace", disk_fills)
    with pytest.raises(OSError, match="no space left on device while writing .*model.safetensors"):
        GPT(m.config).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temp file left behind


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.tensor([[-1, 3]])), "token id -1 is outside"),
        (lambda m: m(torch.zeros(5, dtype=torch.long)), r"of shape \(batch, time\)"),
        (
            lambda m: m(torch.zeros(2, 10, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)),
            r"do not match the \(2, 10\) positions",
        ),
        (lambda m: m.generate(torch.tensor([1, 2, 3]), 3), r"use idx\[None\]"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call(GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)))


def test_padding_rows_are_not_parameters():
    with torch.device("meta"):
        padded = GPT(GPTConfig.from_preset("gpt2", pad_vocab_to=64))
    assert padded.num_params() == 124_439_808


def test_generate_seeds_differ_and_zero_new_tokens_gives_the_prompt():
    first = MODEL.generate(PROMPT, 20, top_k=10, generator=torch.Generator().manual_seed(42))
    other = MODEL.generate(PROMPT, 20, top_k=10, generator=torch.Generator().manual_seed(7))
    assert not torch.equal(first, other)
    assert torch.equal(MODEL.generate(PROMPT, 0), PROMPT)


def test_from_pretrained_ties_the_output_layer_again(tmp_path):
    GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=100, pad_vocab_to=64)).save_pretrained(tmp_path)
    loaded = GPT.from_pretrained(tmp_path)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()


def left_padded(rows, pad=0):
    "Prompts of different lengths as one left-padded batch and its attention mask."
    width = max(len(row) for row in rows)
    idx = torch.tensor([[pad] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return idx, mask


@pytest.mark.parametrize("shape", SHAPES[:2], ids=["2x64", "3x48"])
def test_left_padded_logits_and_generation_identical_to_hf(tmp_path, shape):
    hf = random_hf(seed=5, **{**shape, "n_positions": 96})
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    torch.manual_seed(0)
    rows = [torch.randint(1, shape["vocab_size"], (n,)).tolist() for n in (2, 9, 5, 1)]
    idx, mask = left_padded(rows)
    with torch.no_grad():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # HF's forward counts from 0 unless told (its generate does)
        ref_logits = hf(idx, attention_mask=mask, position_ids=positions).logits
        our_logits = ours(idx, attention_mask=mask)[0]
    real = mask.bool()
    assert max_diff(our_logits[real], ref_logits[real]) < 1e-5  # padding positions are HF's business and ours
    ref = hf.generate(idx, attention_mask=mask, do_sample=False, max_new_tokens=40, pad_token_id=0)
    assert torch.equal(ours.generate(idx, 40, temperature=0, attention_mask=mask), ref)
    assert torch.equal(ours.generate(idx, 40, temperature=0, attention_mask=mask, use_cache=False), ref)


def test_a_padded_row_gives_its_own_logits_and_tokens_whatever_the_padding_holds():
    model = tiny_model(vocab_size=97)
    torch.manual_seed(1)
    rows = [torch.randint(0, 97, (n,)).tolist() for n in (3, 11, 7)]
    for pad in (0, 96):
        idx, mask = left_padded(rows, pad)
        with torch.no_grad():
            batch_logits = model(idx, attention_mask=mask)[0]
        for b, row in enumerate(rows):
            with torch.no_grad():
                alone = model(torch.tensor([row]))[0][0]
            assert max_diff(batch_logits[b, -len(row) :], alone) < 1e-5
        generators = [torch.Generator().manual_seed(10 + b) for b in range(len(rows))]
        batch = model.generate(idx, 12, top_k=20, attention_mask=mask, generator=generators)
        for b, row in enumerate(rows):
            alone = model.generate(torch.tensor([row]), 12, top_k=20, generator=torch.Generator().manual_seed(10 + b))
            assert batch[b, -12:].tolist() == alone[0, -12:].tolist()


def test_padded_batches_through_the_cache_in_pieces_and_past_the_window():
    model = tiny_model(vocab_size=97)  # 64 positions
    idx, mask = left_padded([[5] * 30, [6, 7, 8] * 15])
    cache = KVCache()
    with torch.no_grad():
        full = model(idx, attention_mask=mask)[0]
        first = model(idx[:, :20], kv_cache=cache, attention_mask=mask[:, :20])[0]
        second = model(idx[:, 20:], kv_cache=cache, attention_mask=mask)[0]
    assert max_diff(torch.cat([first, second], 1), full) < 1e-5  # padding included: it only ever sees itself
    slid = model.generate(idx, 40, temperature=0, attention_mask=mask, sliding_window=True)
    assert torch.equal(
        slid, model.generate(idx, 40, temperature=0, attention_mask=mask, sliding_window=True, use_cache=False)
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, i: m(i, attention_mask=torch.ones(2, 4)), r"attention_mask of shape \(2, 4\) should be \(2, 5\)"),
        (lambda m, i: m(i, attention_mask=torch.full((2, 5), 2)), "other than 0 and 1"),
        (lambda m, i: m.generate(i, 2, attention_mask=torch.tensor([[1, 1, 1, 1, 0]] * 2)), "pad prompts on the left"),
        (lambda m, i: m.generate(i, 2, generator=[torch.Generator()]), "1 generators for 2 rows"),
    ],
)
def test_bad_padding_names_the_problem(call, message):
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50))
    with pytest.raises(ValueError, match=message):
        call(model, torch.zeros(2, 5, dtype=torch.long))


def test_a_config_claiming_a_million_blocks_is_refused_before_building_them(tmp_path):
    model = tiny_model(vocab_size=50)  # 2 blocks
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # narrow enough to pass MAX_PARAMS (768M parameters), deep enough that building it would take many minutes
    config.update(n_layer=1_000_000, n_embd=8, n_head=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="n_layer=1,000,000 but the weights are for n_layer=2"):
        GPT.from_pretrained(tmp_path)
