"Test-wide settings: no network, no stray caches."
import os, tempfile

import pytest
import torch

# Tests never touch the network: Hugging Face libraries must use local files only.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"): os.environ[var] = "1"
os.environ.setdefault("HF_HOME", os.path.join(tempfile.gettempdir(), "gpt2_edu_test_hf_home"))
# tiktoken must not copy vocabulary files into a shared cache; our loaders pass files explicitly.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def lively_gpt():
    "Make a small random GPT whose weights are shaken away from the init: varied, decisive predictions to test on."
    def make(vocab_size: int, n_positions: int, noise: float, n_embd: int = 32, n_layer: int = 2, n_head: int = 2,
             seed: int = 0):
        from gpt2_edu.model import GPT, GPTConfig
        torch.manual_seed(seed)
        model = GPT(GPTConfig(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                              n_head=n_head))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
        return model.eval()
    return make
