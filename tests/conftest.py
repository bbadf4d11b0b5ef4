"Test-wide settings: no network, no stray caches."

import os
import tempfile
from pathlib import Path

import pytest
import torch

# Tests never touch the network: Hugging Face libraries must use local files only.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ.setdefault("HF_HOME", os.path.join(tempfile.gettempdir(), "gpt2_edu_test_hf_home"))
# tiktoken must not copy vocabulary files into a shared cache; our loaders pass files explicitly.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def lively_gpt():
    "Make a small random GPT whose weights are shaken away from the init: varied, decisive predictions to test on."

    def make(
        vocab_size: int,
        n_positions: int,
        noise: float,
        n_embd: int = 32,
        n_layer: int = 2,
        n_head: int = 2,
        seed: int = 0,
    ):
        from gpt2_edu.model.config import GPTConfig
        from gpt2_edu.model.gpt import GPT

        torch.manual_seed(seed)
        model = GPT(
            GPTConfig(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head)
        )
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
        return model.eval()

    return make


@pytest.fixture(scope="session")
def hflm():
    "Make lm-evaluation-harness's HF model (HFLM) on a gpt2_edu model's weights, saved to `folder`."

    def make(model, tok, folder, batch_size: int = 4):
        from lm_eval.models.huggingface import HFLM
        from transformers import GPT2TokenizerFast

        folder = Path(folder)
        model.save_pretrained(folder)
        tok.save(folder)
        hf_tok = GPT2TokenizerFast(vocab=str(folder / "encoder.json"), merges=str(folder / "vocab.bpe"))
        return HFLM(pretrained=str(folder), tokenizer=hf_tok, device="cpu", batch_size=batch_size)

    return make
