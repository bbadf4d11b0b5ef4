"""The next token (`gpt2_edu.model.next_token`): sampling settings refused by name, filters, and the chunked loss."""
import pytest
import torch
import transformers

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.model.next_token import sample_next, top_k_filter, top_p_filter

transformers.utils.logging.disable_progress_bar()


MODEL = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=50)).eval()


PROMPT = torch.tensor([[1, 2, 3]])


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("settings, expected", [
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
])
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
    assert torch.equal(top_p_filter(logits, 1), logits)                   # 1 is valid: keeps every token


def test_validation_happens_before_any_work(monkeypatch):
    calls = []
    monkeypatch.setattr(GPT, "hidden_states", lambda *args, **kwargs: calls.append(1))
    with pytest.raises(ValueError):
        MODEL.generate(PROMPT, 5, top_p=2)
    assert calls == []
