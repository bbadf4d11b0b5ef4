"""The trainer (`gpt2_edu.train.trainer`): exact resume, a SIGKILL, DDP with two processes, bad settings."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2_edu.cli.main import main
from gpt2_edu.corpus import shakespeare
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.train.checkpoints import RunError
from gpt2_edu.train.outputs import OUTPUTS
from gpt2_edu.train.recipe import TrainConfig, lr_at
from gpt2_edu.train.runs import load_run, read_metrics, read_run_record
from gpt2_edu.train.trainer import Trainer, TrainingDiverged
from tests.helpers import RANK_LAUNCH

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


def poison(trainer, record):
    if trainer.step == 4:
        with torch.no_grad():
            trainer.model.transformer.wte.weight[0, 0] = float("nan")


TINY = [
    "--preset",
    "gpt2-tiny",
    "--tokenizer",
    "bytes",
    "--batch-size",
    "4",
    "--block-size",
    "32",
    "--device",
    "cpu",
    "--eval-every",
    "5",
    "--ckpt-every",
    "5",
]


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


# Each process moves into its own empty folder and trains into the *relative* folder 'run': anything another rank
# wrote would land in that rank's folder, which must stay empty.
DDP_LAUNCH = RANK_LAUNCH


DDP_ARGS = [
    "--preset",
    "gpt2-tiny",
    "--tokenizer",
    "bytes",
    "--batch-size",
    "8",
    "--block-size",
    "64",
    "--device",
    "cpu",
    "--steps",
    "12",
    "--warmup-steps",
    "3",
    "--lr",
    "0.003",
    "--eval-every",
    "4",
    "--ckpt-every",
    "6",
    "--seed",
    "5",
    "--out",
    "run",
]


STEPS = 120


ARGS = [
    "--preset",
    "gpt2-tiny",
    "--tokenizer",
    "bytes",
    "--batch-size",
    "8",
    "--block-size",
    "64",
    "--device",
    "cpu",
    "--steps",
    str(STEPS),
    "--warmup-steps",
    "10",
    "--lr",
    "0.003",
    "--eval-every",
    "20",
    "--ckpt-every",
    "7",
    "--seed",
    "3",
]


LAUNCH = "import sys; from gpt2_edu.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _env(tmp_path):
    # one thread in every run: the same arithmetic, in the same order, in all three processes
    return {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train(tmp_path, corpus, out, *extra, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "train", "--corpus", str(corpus), "--out", str(out), *ARGS, *extra],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_the_advice_after_divergence_can_be_followed(tmp_path):
    run_dir = tmp_path / "run"
    settings = replace(SETTINGS, ckpt_every=2)
    with pytest.raises(TrainingDiverged) as error:
        train(run_dir, settings, callbacks=[poison]).fit()
    message, lower = str(error.value), error.value.lr  # half the learning rate of the step that diverged
    assert lower == float(f"{lr_at(4, settings) / 2:.3g}")
    assert (
        "last good checkpoint (step 4)" in message
        and f"--resume --lr {lower:g}" in message
        and f"lr={lower:g}" in message
    )
    calmer = train(run_dir, replace(settings, lr=lower, warmup_steps=2, grad_clip=0.5), resume=True)
    assert calmer.step == 4
    calmer.fit()
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == list(range(1, 7))
    resumes = read_run_record(run_dir)["resumes"]
    assert resumes == [
        {
            "step": 4,
            "changed": ["train.grad_clip: 1.0 -> 0.5", f"train.lr: 0.003 -> {lower}", "train.warmup_steps: 1 -> 2"],
        }
    ]
    assert all(math.isfinite(p.sum().item()) for p in calmer.model.parameters())


def test_resume_refuses_settings_that_change_the_model_or_the_data(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    with pytest.raises(RunError, match="train.batch_size: 4 -> 8") as error:
        train(run_dir, replace(SETTINGS, batch_size=8, lr=1e-4), resume=True)
    assert "train.lr" not in str(error.value)  # the learning rate may change: not listed as a problem


def test_weight_decay_changed_on_resume_is_used(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    trainer = train(run_dir, replace(SETTINGS, weight_decay=0.0), resume=True)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.0
    trainer.close()


def test_a_new_run_over_a_finished_one_names_the_step_of_its_checkpoint(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    with pytest.raises(RunError, match=r"already holds a run .*; its checkpoint is at step 6\. Resume it"):
        train(run_dir)


def test_a_resume_with_the_same_settings_is_recorded_with_nothing_changed(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir).fit(stop_at=3)
    train(run_dir, resume=True).fit()
    assert read_run_record(run_dir)["resumes"] == [{"step": 3, "changed": []}]


def test_the_steps_after_a_resume_follow_the_schedule_of_the_new_lr(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir).fit(stop_at=3)
    calmer = train(run_dir, replace(SETTINGS, lr=1.5e-3), resume=True)
    history = calmer.fit()
    assert [r["lr"] for r in history] == [lr_at(step, SETTINGS) for step in range(3)] + [
        lr_at(step, calmer.cfg) for step in range(3, 6)
    ]
    assert lr_at(3, calmer.cfg) != lr_at(3, SETTINGS)  # the check tells the two schedules apart


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("block_size", 0, "block_size=0: must be a whole number >= 1"),
        ("steps", 0, "steps=0: must be a whole number >= 1"),
        ("steps", 2.5, "steps=2.5"),
        ("eval_every", -1, "eval_every=-1: must be a whole number >= 0"),
        ("lr", 0, "lr=0: the learning rate must be a finite number > 0"),
        ("lr", -1e-3, "lr=-0.001"),
        ("lr", float("nan"), "lr=nan"),
        ("lr", float("inf"), "lr=inf"),
        ("min_lr", 0.5, "min_lr=0.5: must be between 0 and lr=0.001"),
        ("warmup_steps", 2000, "warmup_steps=2000: must be a whole number from 0 to steps=1000"),
        ("seed", -1, "seed=-1"),
        ("seed", 2**63, "seed=9223372036854775808"),
        ("seed", 1.5, "seed=1.5"),
        ("device", "nonsense", "device='nonsense': must be 'auto', 'cpu', 'cuda', 'cuda:N'"),
        ("device", "cuda:abc", "device='cuda:abc'"),
        ("grad_accum", 3, "grad_accum=3: batch_size=16 must be divisible by it"),
    ],
)
def test_bad_settings_name_the_field_the_value_and_the_fix(field, value, expected):
    with pytest.raises(ValueError, match=None) as error:
        TrainConfig(**{field: value})
    assert expected in str(error.value)


def test_a_window_longer_than_the_models_context_is_refused():
    with pytest.raises(ValueError, match="block_size=512 exceeds the model's context n_positions=64"):
        TrainConfig(block_size=512).resolved(GPTConfig.from_preset("gpt2-tiny"))


def test_lr_zero_does_not_talk_about_min_lr():
    with pytest.raises(ValueError) as error:
        TrainConfig(lr=0)
    assert "min_lr" not in str(error.value)


def test_derived_defaults():
    resolved = TrainConfig(steps=50, lr=2e-3).resolved(GPTConfig.from_preset("gpt2-tiny"))
    assert (resolved.block_size, resolved.warmup_steps, resolved.min_lr) == (min(256, MODEL.n_positions), 5, 2e-4)
    assert TrainConfig(steps=5000).resolved().warmup_steps == 100


def test_the_smoothed_loss_curve_starts_on_the_data():
    from gpt2_edu.train.plots import smooth

    losses = 5 * np.exp(-np.arange(100) / 10) + 2
    smoothed = smooth(losses)
    assert smoothed[0] == losses[0]
    assert (smoothed[:30] <= losses[:30] + 0.5).all()


def test_run_folder_contents_and_sample(corpus, tmp_path, capsys):
    code, out, err = run(capsys, "train", "--corpus", corpus, "--steps", "10", "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint",
        "loss.png",
        "metrics.jsonl",
        OUTPUTS,
        "run.json",
    ]
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == list(range(1, 11))
    assert all({"step", "loss", "lr", "tokens_per_s", "grad_norm"} <= set(r) for r in recs)
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
    (tmp_path / "short.txt").write_text("".join(f"Exit {i}, pursued by a bear.\n" for i in range(40)))  # ~1,100 bytes
    tiny = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "2", "--device", "cpu", "--steps", "2"]
    code, _, err = run(
        capsys, "train", "--corpus", tmp_path / "short.txt", "--out", tmp_path / "run", *tiny, "--block-size", "64"
    )
    assert code == 2 and "short.txt" in err and "--block-size 64" in err, err  # the flag the user typed
    assert not (tmp_path / "run" / "checkpoint").exists()
    hint = re.search(r"use --block-size (\d+) or less, which fits every split", err)
    assert hint, err
    code, _, err = run(
        capsys, "train", "--corpus", tmp_path / "short.txt", "--out", tmp_path / "run", *tiny, "--block-size", hint[1]
    )
    assert code == 0, err


def test_resume_may_change_optimisation_settings_only(corpus, tmp_path, capsys):
    assert (
        run(capsys, "train", "--corpus", corpus, "--steps", "10", "--stop-at", "5", "--out", tmp_path / "run", *TINY)[0]
        == 0
    )
    code, _, err = run(
        capsys,
        "train",
        "--out",
        tmp_path / "run",
        "--resume",
        "--lr",
        "0.01",
        "--batch-size",
        "8",
        "--preset",
        "gpt2-micro",
    )
    assert code == 2 and "cannot resume" in err
    for diff in ["train.batch_size: 4 -> 8", "info.preset: 'gpt2-tiny' -> 'gpt2-micro'", "model.n_embd: 32 -> 128"]:
        assert diff in err, err
    assert "train.lr" not in err  # the learning rate may change
    code, out, err = run(
        capsys, "train", "--out", tmp_path / "run", "--resume", "--stop-at", "7", "--lr", "0.0005", "--eval-every", "1"
    )
    assert code == 0 and "from step 5" in out, err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["train"]["lr"] == 0.0005 and record["train"]["eval_every"] == 1, record["train"]
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", "--resume")  # the run's own settings: fine
    assert code == 0 and "from step 7" in out, err
    code, _, err = run(capsys, "train", "--corpus", corpus, "--out", tmp_path / "run", *TINY)  # no --resume
    assert code == 2 and "already holds a run" in err and "--resume" in err


def test_corrupt_checkpoint(corpus, tmp_path, capsys):
    assert (
        run(capsys, "train", "--corpus", corpus, "--steps", "10", "--stop-at", "5", "--out", tmp_path / "run", *TINY)[0]
        == 0
    )
    state = tmp_path / "run" / "checkpoint" / "trainer_state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x01
    state.write_bytes(bytes(data))
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

    from gpt2_edu.train.trainer import Trainer

    real_step = Trainer.train_step

    def step_then_poison(self):
        rec = real_step(self)
        if self.step == 7:
            with torch.no_grad():
                self.model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("inf")
        return rec

    monkeypatch.setattr(Trainer, "train_step", step_then_poison)
    code, _, err = run(capsys, "train", "--corpus", corpus, "--steps", "10", "--out", tmp_path / "run", *TINY)
    assert code == 1 and "at step 8" in err and "last good checkpoint (step 5)" in err, err
    manifest = json.loads((tmp_path / "run" / "checkpoint" / "manifest.json").read_text())
    assert manifest["step"] == 5


def test_two_processes_match_one(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[2].text[:60_000], encoding="utf-8")
    script = tmp_path / "launch.py"
    script.write_text(DDP_LAUNCH)
    env = {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = [*DDP_ARGS, "--corpus", str(corpus)]
    for name in ("single", "ddp"):
        for r in (0, 1):
            (tmp_path / name / f"rank{r}").mkdir(parents=True)

    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single"), "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    # two processes, and gradient accumulation on top: micro-batches of 4 windows, 2 per process
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path / "ddp"),
            "train",
            *args,
            "--grad-accum",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) on cpu" in two.stdout

    a = [json.loads(line) for line in (tmp_path / "single/rank0/run/metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "ddp/rank0/run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == list(range(1, 13))  # one record per step, written once
    for ra, rb in zip(a, b):
        assert abs(ra["loss"] - rb["loss"]) < 1e-5, (ra, rb)
        assert ("val_loss" in ra) == ("val_loss" in rb)
        if "val_loss" in ra:
            assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-5
    written = {p.name for p in (tmp_path / "ddp/rank0/run").iterdir()}
    assert written == {"checkpoint", "loss.png", "metrics.jsonl", "run.json", OUTPUTS}, written
    assert list((tmp_path / "ddp/rank1").iterdir()) == []  # rank 1 wrote nothing
    print("max |loss difference| over 12 steps:", max(abs(ra["loss"] - rb["loss"]) for ra, rb in zip(a, b)))


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[1].text[:60_000], encoding="utf-8")
    straight = _train(tmp_path, corpus, tmp_path / "straight")
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    victim = _train(tmp_path, corpus, tmp_path / "killed")
    metrics, deadline = tmp_path / "killed" / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and victim.poll() is None:  # wait until the run is well past a checkpoint
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 40:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the run finished before it could be killed: make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_steps = len(metrics.read_text().splitlines())
    ckpt_step = json.loads((tmp_path / "killed" / "checkpoint" / "manifest.json").read_text())["step"]
    assert 0 < ckpt_step < STEPS and ckpt_step % 7 == 0

    resumed = _train(tmp_path, corpus, tmp_path / "killed", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"from step {ckpt_step}" in out
    a, b = _metrics(tmp_path / "straight"), _metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))  # steps after the checkpoint were dropped, then redone
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit for bit (JSON keeps every digit of a float)
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    print(
        f"killed after {killed_steps} logged steps, resumed from the checkpoint at step {ckpt_step}; "
        f"{STEPS} losses identical, last {b[-1]['loss']!r}"
    )


def test_a_token_cache_overwritten_while_a_run_trains_stops_it(tmp_path):
    "Issue 22.5: zeros written into the cached tokens mid-run are never trained on to the end (nor checkpointed)."
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[0].text[:40_000], encoding="utf-8")
    run_dir = tmp_path / "run"
    trainer = _train(tmp_path, corpus, run_dir, "--steps", "400", "--ckpt-every", "10", "--eval-every", "0")
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoint" / "manifest.json").exists():
            assert trainer.poll() is None and time.time() < deadline, trainer.communicate()
            time.sleep(0.02)
        (cache,) = (tmp_path / "cache").rglob("*-train-*.bin")
        with open(cache, "r+b") as f:  # in place, as a careless script would: the run's memory map sees it
            f.write(bytes(cache.stat().st_size))
        out, err = trainer.communicate(timeout=300)
    finally:
        trainer.kill()
    assert trainer.returncode == 2, out + err
    assert "changed after it was opened" in err and str(cache) in err and "--resume" in err, err
    step = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]
    assert step < 400 and f"its last checkpoint (step {step})" in err, err
    resumed = subprocess.run(  # the printed advice: resume; the cache is rebuilt from the corpus
        [sys.executable, "-c", LAUNCH, "train", "--out", str(run_dir), "--resume"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    losses = [record["loss"] for record in _metrics(run_dir)]
    assert len(losses) == 400 and min(losses[-20:]) > 0.5  # trained on Shakespeare to the end, not on zeros


def test_a_loss_that_explodes_keeps_a_sane_checkpoint_and_the_advice_recovers(tmp_path):
    "Issue 22.6: a loss exploding (still finite) stops the run before a checkpoint holds it; the printed advice works."
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[0].text[:40_000], encoding="utf-8")
    run_dir = tmp_path / "run"
    argv = [*TINY, "--steps", "60", "--warmup-steps", "10", "--lr", "2", "--ckpt-every", "2", "--eval-every", "0"]
    first = subprocess.run(
        [sys.executable, "-c", LAUNCH, "train", "--corpus", str(corpus), "--out", str(run_dir), *argv],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 1 and "training diverged" in first.stderr, first.stdout + first.stderr
    step = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]
    assert f"the last good checkpoint (step {step})" in first.stderr
    kept = [record["loss"] for record in _metrics(run_dir)]
    assert len(kept) >= step and max(kept) < 2 * math.log(257)  # no step before it had exploded
    command = first.stderr.split("`")[1].split()  # the advice, as printed: gpt2-edu train --out RUN --resume --lr X
    assert command[:2] == ["gpt2-edu", "train"] and "--resume" in command and "--lr" in command, first.stderr
    second = subprocess.run(
        [sys.executable, "-c", LAUNCH, *command[1:]], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    losses = [record["loss"] for record in _metrics(run_dir)]
    assert len(losses) == 60 and max(losses) < 2 * math.log(257) and np.mean(losses[-10:]) < 4.0  # it learns again
