"""Writing with the model (`gpt2_edu.model.generate`): `sample_text` and `complete`."""
import pytest
import torch
import transformers

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.generate import sample_text
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
        return torch.cat([idx, torch.tensor([[5, 6, 49, 7]])], dim=1)    # two tokens, then <|endoftext|>

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
