"""`gpt2-edu train --parallel fsdp` (`gpt2_edu.train.parallel`): FSDP2 with two CPU processes (gloo) trains like DDP,
a run killed with SIGKILL resumes exactly, and its checkpoint is a Hugging Face folder with our logits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpt2_edu.corpus import shakespeare
from gpt2_edu.train.runs import load_run
from tests.helpers import RANK_LAUNCH, TINY_RUN

ARGS = [*TINY_RUN, "--eval-every", "4", "--ckpt-every", "5"]
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("fsdp") / "corpus.txt"
    path.write_text(shakespeare("train")[2].text[:60_000], encoding="utf-8")
    return path


def _launch(tmp_path, name, corpus, *extra, launcher=TORCHRUN):
    root = tmp_path / name
    for rank in (0, 1):
        (root / f"rank{rank}").mkdir(parents=True, exist_ok=True)
    script = tmp_path / "launch.py"
    script.write_text(RANK_LAUNCH)
    env = {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, *launcher, str(script), str(root), "train", "--corpus", str(corpus), *ARGS]
    command += [str(a) for a in extra]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    return process, root / "rank0" / "run"


def _finish(process) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-4000:]
    return out


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fsdp_trains_like_ddp_and_one_process(corpus, tmp_path):
    runs = {}
    for name, launcher, extra in [
        ("one", [], []),
        ("ddp", TORCHRUN, ["--grad-accum", 2]),
        ("fsdp", TORCHRUN, ["--grad-accum", 2, "--parallel", "fsdp"]),
    ]:
        process, run_dir = _launch(tmp_path, name, corpus, "--steps", 12, *extra, launcher=launcher)
        out = _finish(process)
        runs[name] = _losses(run_dir)
        assert len(runs[name]) == 12
        if name != "one":
            assert "2 process(es) on cpu" in out
            assert list((tmp_path / name / "rank1").iterdir()) == []  # only process 0 writes
    assert max(abs(a - b) for a, b in zip(runs["fsdp"], runs["ddp"])) < 1e-5
    assert max(abs(a - b) for a, b in zip(runs["fsdp"], runs["one"])) < 1e-5
    record = json.loads((tmp_path / "fsdp" / "rank0" / "run" / "run.json").read_text())
    assert record["train"]["parallel"] == "fsdp"


def test_a_killed_fsdp_run_resumes_to_the_same_losses_and_opens_in_transformers(corpus, tmp_path):
    steps = 40
    straight, straight_dir = _launch(tmp_path, "straight", corpus, "--steps", steps, "--parallel", "fsdp")
    _finish(straight)

    victim, run_dir = _launch(tmp_path, "killed", corpus, "--steps", steps, "--parallel", "fsdp")
    deadline = time.time() + 200
    while time.time() < deadline and victim.poll() is None:
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 17:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before it could be killed"
    # torchrun starts its workers in sessions of their own: kill every process of this run by its folder
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path / "killed")], check=False)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", str(tmp_path / "killed")], capture_output=True).stdout == b""
    step = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]
    assert 0 < step < steps and step % 5 == 0

    # every process reads the run to resume: rank 0's folder, by its absolute path
    resumed, _ = _launch(tmp_path, "killed", corpus, "--resume", "--parallel", "fsdp", "--out", run_dir)
    assert f"from step {step}" in _finish(resumed)
    assert _losses(run_dir) == _losses(straight_dir)  # bit for bit

    # the checkpoint is a whole Hugging Face folder: transformers reads it and computes our logits
    from transformers import AutoModelForCausalLM

    model, _, _ = load_run(run_dir)
    hf = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoint").eval()
    ids = torch.randint(0, 257, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(ids)[0]
        theirs = hf(ids).logits
    assert (ours - theirs).abs().max() < 1e-4


def test_an_fsdp_run_resumes_with_ddp(corpus, tmp_path):
    "Its checkpoints hold the whole state, so the same run continues with whole copies (or on one process)."
    first, run_dir = _launch(
        tmp_path, "switch", corpus, "--steps", 10, "--stop-at", 5, "--parallel", "fsdp", "--activation-checkpointing"
    )
    _finish(first)
    second, _ = _launch(tmp_path, "switch", corpus, "--resume", "--parallel", "ddp", "--out", run_dir)
    assert "from step 5" in _finish(second)
    reference, reference_dir = _launch(tmp_path, "reference", corpus, "--steps", 10)
    _finish(reference)
    assert max(abs(a - b) for a, b in zip(_losses(run_dir), _losses(reference_dir))) < 1e-5


def test_activation_checkpointing_trains_the_same_run(tmp_path):
    "Recomputing each block in backward changes the memory, not the numbers: the same losses, bit for bit."
    import numpy as np

    from gpt2_edu.model.config import GPTConfig
    from gpt2_edu.train.recipe import TrainConfig
    from gpt2_edu.train.trainer import Trainer

    tokens = np.frombuffer(shakespeare("train")[0].text[:30_000].encode(), dtype=np.uint8).astype(np.uint16)
    model = GPTConfig.from_preset("gpt2-tiny", vocab_size=257, dropout=0.1)
    histories = []
    for recompute in (False, True):
        settings = TrainConfig(steps=6, batch_size=4, block_size=32, eval_every=0, activation_checkpointing=recompute)
        trainer = Trainer(model, settings, tokens, run_dir=tmp_path / str(recompute), progress=False)
        assert trainer.model.recompute is recompute
        histories.append([record["loss"] for record in trainer.fit()])
    assert histories[0] == histories[1]
