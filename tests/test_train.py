"Training from the command line: bad input, each with a clear error, and what a run folder holds."
import json, os
from pathlib import Path

import pytest

from gpt2_edu.cli import main
from gpt2_edu.corpus import shakespeare

TINY = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "4", "--block-size", "32", "--device", "cpu",
        "--eval-every", "5", "--ckpt-every", "5"]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    "A 40 kB corpus file, and a private token cache."
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "corpus.txt"
    p.write_text(shakespeare("train")[0].text[:40_000], encoding="utf-8")
    return p


def run(capsys, *argv):
    "Run the CLI in-process; return (status, stdout, stderr)."
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_folder_contents_and_sample(corpus, tmp_path, capsys):
    code, out, err = run(capsys, "train", "--corpus", corpus, "--steps", "10", "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint", "loss.png", "metrics.jsonl", "run.json", "run.lock"]
    recs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == list(range(1, 11))
    assert all({"step", "loss", "lr", "tokens_per_s"} <= set(r) for r in recs)
    assert [r["step"] for r in recs if "val_loss" in r] == [5, 10]
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = run_dir / "checkpoint"
    assert {"config.json", "manifest.json", "model.safetensors", "trainer_state.pt"} <= {p.name for p in ck.iterdir()}
    assert json.loads((ck / "manifest.json").read_text())["step"] == 10
    code, out, err = run(capsys, "sample", "--run", run_dir, "--prompt", "KING:", "--tokens", "20")
    assert code == 0 and out.startswith("--- sample 1 ---\nKING:"), err


def test_checkpoint_opens_in_hf_transformers(corpus, tmp_path, capsys):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GPT2LMHeadModel
    from gpt2_edu.checkpoint import load_run
    assert run(capsys, "train", "--corpus", corpus, "--steps", "5", "--out", tmp_path / "run", *TINY)[0] == 0
    ours, tok, _ = load_run(tmp_path / "run")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "run" / "checkpoint").eval()
    x = torch.tensor([tok.encode("To be, or not to be")])
    torch.testing.assert_close(hf(x).logits, ours(x)[0], atol=1e-5, rtol=1e-5)


def test_empty_corpus(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty.txt").write_bytes(b"")
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "empty.txt", "--out", tmp_path / "run", *TINY)
    assert code == 2 and "empty.txt' is empty" in err


def test_non_utf8_corpus_names_file_and_offset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "cache"))
    (tmp_path / "latin1.txt").write_bytes("Now is the winter of our discontent, caf\xe9".encode("latin-1"))
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "latin1.txt", "--out", tmp_path / "run", *TINY)
    assert code == 2 and "latin1.txt' is not valid UTF-8: byte 0xe9 at offset 40" in err


def test_corpus_shorter_than_one_window_and_the_hint_leads_somewhere(tmp_path, capsys, monkeypatch):
    "The error suggests a --block-size that fits both splits; following it trains."
    import re
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "cache"))
    (tmp_path / "short.txt").write_text("".join(f"Exit {i}, pursued by a bear.\n" for i in range(40)))   # ~1,100 bytes
    tiny = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "2", "--device", "cpu", "--steps", "2"]
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "short.txt", "--out", tmp_path / "run", *tiny, "--block-size", "64")
    assert code == 2 and "short.txt" in err and "block_size=64" in err, err
    assert not (tmp_path / "run" / "checkpoint").exists()
    hint = re.search(r"--block-size (\d+)\), which fits every split", err)
    assert hint, err
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "short.txt", "--out", tmp_path / "run", *tiny,
                       "--block-size", hint[1])
    assert code == 0, err


def test_resume_may_change_optimisation_settings_only(corpus, tmp_path, capsys):
    assert run(capsys, "train", "--corpus", corpus, "--steps", "10", "--stop-at", "5", "--out", tmp_path / "run", *TINY)[0] == 0
    code, _, err = run(capsys, "train", "--out", tmp_path / "run", "--resume", "--lr", "0.01", "--batch-size", "8",
                       "--preset", "gpt2-micro")
    assert code == 2 and "cannot resume" in err
    for diff in ["train.batch_size: 4 -> 8", "info.preset: 'gpt2-tiny' -> 'gpt2-micro'", "model.n_embd: 32 -> 128"]:
        assert diff in err, err
    assert "train.lr" not in err                                                   # the learning rate may change
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", "--resume", "--stop-at", "7", "--lr", "0.0005",
                         "--eval-every", "1")
    assert code == 0 and "from step 5" in out, err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["train"]["lr"] == 0.0005 and record["train"]["eval_every"] == 1, record["train"]
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", "--resume")     # the run's own settings: fine
    assert code == 0 and "from step 7" in out, err
    code, _, err = run(capsys, "train", "--corpus", corpus, "--out", tmp_path / "run", *TINY)   # no --resume
    assert code == 2 and "already holds a run" in err and "--resume" in err


def test_corrupt_checkpoint(corpus, tmp_path, capsys):
    assert run(capsys, "train", "--corpus", corpus, "--steps", "10", "--stop-at", "5", "--out", tmp_path / "run", *TINY)[0] == 0
    state = tmp_path / "run" / "checkpoint" / "trainer_state.pt"
    data = bytearray(state.read_bytes()); data[len(data) // 2] ^= 0x01; state.write_bytes(bytes(data))
    code, _, err = run(capsys, "train", "--out", tmp_path / "run", "--resume")
    assert code == 2 and "is corrupt: trainer_state.pt does not match the SHA-256" in err
    (tmp_path / "run" / "checkpoint" / "model.safetensors").unlink()
    code, _, err = run(capsys, "sample", "--run", tmp_path / "run")
    assert code == 2 and "is damaged: model.safetensors is missing" in err, err


def test_run_folder_under_a_file(corpus, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = run(capsys, "train", "--corpus", corpus, "--out", tmp_path / "a-file" / "run", *TINY)
    assert code == 2 and "a-file' is a file, not a folder" in err and "choose another --out" in err


def test_nan_loss_stops_with_last_good_checkpoint(corpus, tmp_path, capsys, monkeypatch):
    "A loss that becomes NaN stops the run (status 1) before the update; the last checkpoint stays intact."
    import torch
    from gpt2_edu.train import Trainer
    real_step = Trainer.train_step
    def step_then_poison(self):
        rec = real_step(self)
        if self.step == 7:
            with torch.no_grad(): self.model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("inf")
        return rec
    monkeypatch.setattr(Trainer, "train_step", step_then_poison)
    code, _, err = run(capsys, "train", "--corpus", corpus, "--steps", "10", "--out", tmp_path / "run", *TINY)
    assert code == 1 and "at step 8" in err and "last good checkpoint (step 5)" in err, err
    manifest = json.loads((tmp_path / "run" / "checkpoint" / "manifest.json").read_text())
    assert manifest["step"] == 5
