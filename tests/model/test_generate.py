"""Writing with the model (`gpt2_edu.model.generate`): `sample_text` and `complete`."""

import pytest
import torch
import transformers

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.generate import complete, complete_many, sample_text
from gpt2_edu.model.gpt import GPT

transformers.utils.logging.disable_progress_bar()


MODEL = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).eval()


class CharTokenizer:
    "Characters as ids; id 49 is <|endoftext|>."

    eot_id = 49

    def encode_ordinary(self, text):
        return [ord(c) % 40 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 65) for i in ids)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "0", True, None])
def test_sample_text_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match=r"must be an integer in \[0, 2\*\*63\)"):
        sample_text(MODEL, CharTokenizer(), "hi", max_new_tokens=2, seed=seed)


def test_sample_text_conditions_on_end_of_text_and_stops_there(monkeypatch):
    seen = {}

    def fake_generate(self, idx, max_new_tokens, **settings):
        seen.update(idx=idx.tolist(), **settings)
        return torch.cat([idx, torch.tensor([[5, 6, 49, 7]])], dim=1)  # two tokens, then <|endoftext|>

    monkeypatch.setattr(GPT, "generate", fake_generate)
    text = sample_text(MODEL, CharTokenizer(), "ab", max_new_tokens=4, top_p=0.9, seed=3)
    assert text == "ab" + "FG"
    assert seen["idx"] == [[49] + CharTokenizer().encode_ordinary("ab")]
    assert seen["sliding_window"] is True and seen["top_p"] == 0.9 and seen["eot_id"] == 49


def test_sample_text_is_repeatable_and_seeds_differ():
    tok = CharTokenizer()
    first = sample_text(MODEL, tok, "ab", max_new_tokens=30, temperature=1.0, seed=1)
    assert first == sample_text(MODEL, tok, "ab", max_new_tokens=30, temperature=1.0, seed=1)
    assert first != sample_text(MODEL, tok, "ab", max_new_tokens=30, temperature=1.0, seed=2)


@pytest.fixture(scope="module")
def micro():
    "A random micro model with GPT-2's tokenizer, and the tokenizer."
    from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("gpt2-micro")).eval(), gpt2_tokenizer()


def test_sample_text_slides_past_a_prompt_longer_than_the_context(micro):
    model, tok = micro
    long_prompt = "word " * 200  # 200 tokens: longer than the 128-token context
    assert sample_text(model, tok, long_prompt, max_new_tokens=3, top_p=0.9).startswith(long_prompt)
    with pytest.raises(ValueError, match="top_p=1.5"):
        sample_text(model, tok, "x", top_p=1.5)


def test_complete_stops_at_any_string_starts_empty_prompts_after_eot_and_drops_a_long_prompts_start(micro):
    model, tok = micro
    free = model.generate(torch.tensor([tok.encode_ordinary("Q: Who wrote Hamlet? A:")]), 12, temperature=0)
    free_text = tok.decode(free[0, -12:].tolist())
    stop = free_text.split()[1]  # any string stops it, not only a newline
    assert complete(model, tok, "Q: Who wrote Hamlet? A:", until=[stop], max_new_tokens=12) == free_text.split(stop)[0]
    from_eot = model.generate(torch.tensor([[tok.eot_id]]), 3, temperature=0)[0, 1:].tolist()
    if tok.eot_id in from_eot:
        from_eot = from_eot[: from_eot.index(tok.eot_id)]
    assert complete(model, tok, "", max_new_tokens=3) == tok.decode(from_eot)
    long_ids = tok.encode_ordinary("word " * 200)  # its beginning is dropped: the last 120 tokens remain
    greedy = model.generate(torch.tensor([long_ids[-120:]]), 8, temperature=0)[0, 120:].tolist()
    assert complete(model, tok, "word " * 200, max_new_tokens=8) == tok.decode(greedy).split("\n")[0]
    with pytest.raises(ValueError, match="max_new_tokens=128 must be an integer from 1 to 127"):
        complete(model, tok, "x", max_new_tokens=128)


PROMPTS = ["Q: Who wrote Hamlet? A:", "The cat", "", "word " * 200, "Translate to French: cheese =", "a", "x y z"]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("decoding", [dict(temperature=0.0), dict(temperature=1.0, top_k=40)], ids=["greedy", "k40"])
def test_complete_many_writes_what_complete_writes_one_by_one(micro, batch_size, decoding):
    model, tok = micro
    seeds = [3 * i + 1 for i in range(len(PROMPTS))]
    until = ["\n", "."]
    batched = complete_many(
        model, tok, PROMPTS, until=until, max_new_tokens=10, seeds=seeds, batch_size=batch_size, **decoding
    )
    one_by_one = [
        complete(model, tok, p, until=until, max_new_tokens=10, seed=s, **decoding) for p, s in zip(PROMPTS, seeds)
    ]
    assert batched == one_by_one


def test_complete_many_refuses_bad_batches(micro):
    model, tok = micro
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        complete_many(model, tok, ["a", "b", "c"], seeds=[1, 2])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size="):
            complete_many(model, tok, ["a"], batch_size=bad)
    assert complete_many(model, tok, []) == []


def test_sample_text_with_one_token_left_is_greedy_at_any_temperature():
    tok = CharTokenizer()
    greedy = sample_text(MODEL, tok, "ab", max_new_tokens=20, temperature=0)
    for temperature in (0.3, 1.0, 1.5):
        assert sample_text(MODEL, tok, "ab", max_new_tokens=20, temperature=temperature, top_k=1, seed=5) == greedy
