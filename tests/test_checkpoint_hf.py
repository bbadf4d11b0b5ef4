"A run's checkpoint folder is a complete Hugging Face model folder: AutoModelForCausalLM and AutoTokenizer open it, offline, and give our ids and logits."
import json, logging, os, warnings

import numpy as np
import pytest
import torch

from gpt2_edu.corpus import shakespeare
from gpt2_edu.checkpoint import load_run
from gpt2_edu.model import GPTConfig
from gpt2_edu.tokenizer import Tokenizer
from gpt2_edu.train import Trainer, TrainConfig

TEXTS = ["To be, or not to be, that is the question:", "ROMEO:\nBut, soft! what light through yonder window breaks?",
         "  spaces,\ttabs and numbers 1234 ... café"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    "A short training run with a small BPE trained on Shakespeare; returns its checkpoint folder and the tokenizer."
    text = shakespeare("train")[0].text[:40_000]
    tokenizer = Tokenizer.train(text, 300)
    tokens = np.array(tokenizer.encode(text), dtype=np.uint16)
    run_dir = tmp_path_factory.mktemp("hf") / "run"
    model_config = GPTConfig.from_preset("gpt2-tiny", vocab_size=tokenizer.vocab_size)
    settings = TrainConfig(steps=4, batch_size=4, block_size=32, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=4,
                           device="cpu", seed=0)
    info = {"tokenizer": "bpe:300"}
    Trainer(model_config, settings, tokens, run_dir=run_dir, progress=False, tokenizer=tokenizer, info=info).fit()
    return run_dir / "checkpoint", tokenizer


def test_checkpoint_holds_model_and_tokenizer_files_in_its_manifest(checkpoint):
    folder, tokenizer = checkpoint
    listed = set(json.loads((folder / "manifest.json").read_text())["files"])
    assert {"model.safetensors", "config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "trainer_state.pt"} <= listed
    assert listed == {p.name for p in folder.iterdir()} - {"manifest.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["eos_token_id"] == tokenizer.eot_id < config["vocab_size"]


def test_auto_classes_give_our_ids_and_logits_offline_without_warnings(checkpoint, caplog):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, tokenizer = checkpoint
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
        hf_tokenizer = AutoTokenizer.from_pretrained(folder)
    complaints = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not [c for c in complaints if "eos" in c.lower() or "vocab" in c.lower()], complaints
    ours, our_tokenizer, _ = load_run(folder.parent)
    for text in TEXTS:
        ids = hf_tokenizer(text)["input_ids"]
        assert ids == tokenizer.encode(text) == our_tokenizer.encode(text), text
        assert hf_tokenizer.decode(ids) == text
        x = torch.tensor([ids])
        with torch.no_grad():
            torch.testing.assert_close(hf_model(x).logits, ours(x)[0], atol=1e-5, rtol=1e-5)
    assert hf_tokenizer.eos_token_id == tokenizer.eot_id == hf_model.config.eos_token_id
