"""Checkpoints (`gpt2_edu.train.checkpoints`): damaged, unsafe and interrupted checkpoints, and a run's checkpoint
opened in transformers."""

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from gpt2_edu.corpus import shakespeare
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.train.checkpoints import CheckpointError, RunError, find_checkpoint, load_checkpoint
from gpt2_edu.train.runs import load_run
from gpt2_edu.train.trainer import TrainConfig, Trainer

TEXTS = [
    "To be, or not to be, that is the question:",
    "ROMEO:\nBut, soft! what light through yonder window breaks?",
    "  spaces,\ttabs and numbers 1234 ... café",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    "A short training run with a small BPE trained on Shakespeare; returns its checkpoint folder and the tokenizer."
    text = shakespeare("train")[0].text[:40_000]
    tokenizer = Tokenizer.train(text, 300)
    tokens = np.array(tokenizer.encode(text), dtype=np.uint16)
    run_dir = tmp_path_factory.mktemp("hf") / "run"
    model_config = GPTConfig.from_preset("gpt2-tiny", vocab_size=tokenizer.vocab_size)
    settings = TrainConfig(
        steps=4, batch_size=4, block_size=32, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=4, device="cpu", seed=0
    )
    info = {"tokenizer": "bpe:300"}
    Trainer(model_config, settings, tokens, run_dir=run_dir, progress=False, tokenizer=tokenizer, info=info).fit()
    return run_dir / "checkpoint", tokenizer


MODEL = GPTConfig.from_preset("gpt2-tiny", vocab_size=257)


SETTINGS = TrainConfig(
    steps=6, batch_size=4, block_size=16, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=3, seed=0, device="cpu"
)


TOKENS = np.random.default_rng(0).integers(0, 257, 20_000).astype(np.uint16)


def train(run_dir, settings=SETTINGS, **kw):
    return Trainer(MODEL, settings, TOKENS, run_dir=run_dir, progress=False, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    "A run folder trained to step 6 (checkpoints at 3 and 6)."
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(run_dir).fit()
    return run_dir


def copy_run(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    return run_dir


def damage_manifest(run_dir):
    (run_dir / "checkpoint" / "manifest.json").unlink()


class Payload:
    "Stands for anything that would run code when unpickled."

    def __reduce__(self):
        return (os.getcwd, ())


FILL = """
import os, sys, numpy as np
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.train.trainer import Trainer, TrainConfig
from gpt2_edu.train.checkpoints import find_checkpoint, read_manifest
run_dir = os.path.join(sys.argv[1], "run")
cfg = TrainConfig(steps=6, batch_size=4, block_size=16, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=3, seed=0,
                  device="cpu")
tokens = np.random.default_rng(0).integers(0, 257, 20_000).astype(np.uint16)
try:
    Trainer(GPTConfig.from_preset("gpt2-tiny", vocab_size=257), cfg, tokens, run_dir=run_dir, progress=False).fit()
except OSError as error:
    print(f"{type(error).__name__}: {error}")
    print("files:", sorted(os.listdir(run_dir)))
    checkpoint = find_checkpoint(run_dir)
    print("checkpoint step:", None if checkpoint is None else read_manifest(checkpoint)["step"])
    sys.exit(3)
"""


def fill_the_disk(tmp_path, size_kib):
    "Train in a tmpfs of `size_kib` KiB (a private mount namespace); returns the training process's result."
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("unshare -m is not available here (it needs root or user namespaces)")
    mount = tmp_path / "small"
    mount.mkdir()
    command = 'mount -t tmpfs -o size="$1"k tmpfs "$2" && exec "$3" -c "$4" "$2"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", command, "sh", str(size_kib), str(mount), sys.executable, FILL],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_checkpoint_holds_model_and_tokenizer_files_in_its_manifest(checkpoint):
    folder, tokenizer = checkpoint
    listed = set(json.loads((folder / "manifest.json").read_text())["files"])
    assert {
        "model.safetensors",
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "trainer_state.pt",
    } <= listed
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


def test_a_damaged_checkpoint_is_explained_not_called_missing(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    damage_manifest(run_dir)
    with pytest.raises(CheckpointError, match="damaged: manifest.json is missing") as error:
        train(run_dir, resume=True)
    assert "model.safetensors" in str(error.value) and "no checkpoint" not in str(error.value)
    with pytest.raises(RunError, match="checkpoint' is damaged: manifest.json is missing"):
        train(run_dir)


def test_a_file_missing_from_a_checkpoint_is_named(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "checkpoint" / "trainer_state.pt").unlink()
    with pytest.raises(CheckpointError, match="damaged: trainer_state.pt is missing"):
        train(run_dir, resume=True)


def test_resume_ignores_and_removes_a_stale_checkpoint_tmp(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "checkpoint.tmp").mkdir()
    (run_dir / "checkpoint.tmp" / "model.safetensors").write_bytes(b"\0" * 1000)  # a write cut short
    trainer = train(run_dir, replace(SETTINGS, steps=9), resume=True)
    assert not (run_dir / "checkpoint.tmp").exists()
    trainer.fit()
    assert find_checkpoint(run_dir).name == "checkpoint" and trainer.step == 9


def test_an_unsafe_trainer_state_is_refused_without_suggesting_weights_only_false(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    folder = run_dir / "checkpoint"
    state = torch.load(folder / "trainer_state.pt", weights_only=True)
    state["extra"] = Payload()
    torch.save(state, folder / "trainer_state.pt")
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib

    manifest["files"]["trainer_state.pt"] = hashlib.sha256((folder / "trainer_state.pt").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(folder, GPT(MODEL))
    message = str(error.value)
    assert "refused to load" in message and "not a plain tensor checkpoint" in message
    assert "weights_only" not in message


@pytest.mark.parametrize("room, kept", [("one checkpoint, not two at once", "3"), ("no checkpoint at all", "None")])
def test_disk_full_during_a_checkpoint_leaves_no_temporary_and_one_clear_error(finished, tmp_path, room, kept):
    checkpoint_bytes = sum(p.stat().st_size for p in (finished / "checkpoint").iterdir())
    size_kib = (checkpoint_bytes * 3 // 2) // 1024 + 64 if kept == "3" else 48
    result = fill_the_disk(tmp_path, size_kib)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("WriteError: ") and "no space left on device while writing" in result.stdout
    assert "Traceback" not in result.stderr
    files = result.stdout.split("files:")[1].splitlines()[0]
    assert "checkpoint.tmp" not in files
    assert f"checkpoint step: {kept}" in result.stdout  # the previous checkpoint, if any, is intact


def test_a_changed_file_is_named_a_crash_between_renames_is_recovered_and_no_checkpoint_is_none(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    checkpoint = run_dir / "checkpoint"
    os.replace(checkpoint, run_dir / "checkpoint.prev")  # a crash between the two renames
    assert find_checkpoint(run_dir) == run_dir / "checkpoint.prev"
    os.replace(run_dir / "checkpoint.prev", checkpoint)
    weights = bytearray((checkpoint / "model.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (checkpoint / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(CheckpointError, match="model.safetensors does not match the SHA-256"):
        load_checkpoint(checkpoint, GPT(MODEL))
    assert find_checkpoint(tmp_path / "nothing-here") is None


WRITER = """
import sys, numpy as np
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.train.trainer import Trainer, TrainConfig
cfg = TrainConfig(steps=100_000, batch_size=2, block_size=16, warmup_steps=1, eval_every=0, ckpt_every=1, seed=0,
                  device="cpu")
tokens = np.random.default_rng(0).integers(0, 257, 20_000).astype(np.uint16)
tok = Tokenizer([], {"<|endoftext|>": 256})
model = GPTConfig(vocab_size=257, n_positions=16, n_embd=128, n_layer=4, n_head=4)  # files big enough to take time
Trainer(model, cfg, tokens, run_dir=sys.argv[1], progress=False, info={"tokenizer": "bytes"}, tokenizer=tok).fit()
"""


def test_a_run_read_while_it_checkpoints_is_the_old_or_the_new_checkpoint(tmp_path):
    "Issue 22.7: `load_run` (what sample, eval and the explorer do) never sees half a checkpoint, never says corrupt."
    import time

    run_dir = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoint" / "manifest.json").exists():  # a checkpoint at every step from now on
            assert writer.poll() is None and time.time() < deadline, writer.stderr.read()
            time.sleep(0.05)
        errors, loads = [], 0
        while loads < 250 and time.time() < deadline:
            try:
                model, tokenizer, _ = load_run(run_dir)
                assert tokenizer.vocab_size == 257 and model.config.vocab_size == 257
            except (RunError, OSError) as error:  # CheckpointError is a RunError
                errors.append(f"{type(error).__name__}: {error}")
            loads += 1
        assert writer.poll() is None, "the writer stopped: the test read a run that was not checkpointing"
    finally:
        writer.kill()
        writer.wait()
    assert loads >= 150 and not errors, f"{len(errors)} of {loads} loads failed, e.g. {errors[:2]}"
