"""Training from `gpt2-edu prepare` shards (`gpt2_edu.train.shards`): the same run as one array, SIGKILL and an exact
resume, two processes and two rendezvous "nodes" under torchrun equal to one, and one-line refusals.

Every corpus here is real text (Shakespeare's plays) prepared by the real command, with the byte tokenizer and small
shards, so that every batch has windows that cross a shard boundary."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.train.prepare import prepare_shards, tokenizer_from_spec
from gpt2_edu.train.recipe import TrainConfig
from gpt2_edu.train.shards import ShardedTokens, open_prepared
from gpt2_edu.train.trainer import Trainer
from tests.helpers import RANK_LAUNCH, TINY_RUN

BYTES = tokenizer_from_spec("bytes")
STEPS = 60


ARGS = [*TINY_RUN, "--eval-every", "10", "--ckpt-every", "7"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    "Three plays prepared into 20,000-byte shards: the first play is the validation shard, the others 12 shards."
    folder = tmp_path_factory.mktemp("shards")
    plays = folder / "plays"
    plays.mkdir()
    from gpt2_edu.corpus import shakespeare

    for i, doc in enumerate(shakespeare("train")[:3]):
        (plays / f"{i}.txt").write_text(doc.text[:120_000], encoding="utf-8")
    prepare_shards(plays, folder / "prepared", BYTES, workers=2, shard_tokens=20_000, val_tokens=5_000, progress=False)
    return folder / "prepared"


def _env(tmp_path: Path) -> dict:
    # one thread in every process: the same arithmetic, in the same order, in all of them
    return {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _folders(root: Path, ranks: int = 2) -> Path:
    for rank in range(ranks):
        (root / f"rank{rank}").mkdir(parents=True)
    return root


def _launch(tmp_path, root, *extra, launcher=(), **kw):
    script = tmp_path / "launch.py"
    script.write_text(RANK_LAUNCH)
    command = [sys.executable, *launcher, str(script), str(root), "train", *ARGS, *map(str, extra)]
    return subprocess.Popen(
        command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_shards_train_exactly_like_the_concatenated_array(shards, tmp_path):
    "The same batches, so the same losses to the last bit; every batch of 8 windows crosses boundaries often."
    train, valid = open_prepared(shards, BYTES)
    assert len(train.shards) >= 10
    model = GPTConfig.from_preset("gpt2-tiny", vocab_size=BYTES.vocab_size)
    settings = TrainConfig(steps=12, batch_size=8, block_size=64, lr=3e-3, warmup_steps=2, eval_every=6, seed=1)
    histories = []
    for name, tokens in (("shards", train), ("array", np.concatenate(train.shards))):
        trainer = Trainer(model, settings, tokens, valid, run_dir=tmp_path / name, progress=False)
        histories.append(trainer.fit())
    assert [r["loss"] for r in histories[0]] == [r["loss"] for r in histories[1]]
    assert [r.get("val_loss") for r in histories[0]] == [r.get("val_loss") for r in histories[1]]


def test_sigkill_then_resume_on_shards_is_bit_identical(shards, tmp_path):
    straight = _launch(tmp_path, _folders(tmp_path / "straight", 1), "--corpus", shards, "--steps", STEPS)
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err
    assert f"tokens of {shards}" in out

    killed = _folders(tmp_path / "killed", 1)
    victim = _launch(tmp_path, killed, "--corpus", shards, "--steps", STEPS)
    metrics, deadline = killed / "rank0" / "run" / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 25:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the run finished before it could be killed: make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    step = json.loads((killed / "rank0" / "run" / "checkpoint" / "manifest.json").read_text())["step"]
    assert 0 < step < STEPS

    resumed = _launch(tmp_path, killed, "--resume")  # the corpus, tokenizer and settings come from the run
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"from step {step}" in out
    a, b = _metrics(tmp_path / "straight" / "rank0" / "run"), _metrics(killed / "rank0" / "run")
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit for bit
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("layout", ["one node, two processes", "two nodes, one process each"])
def test_two_processes_on_shards_match_one(shards, tmp_path, layout):
    "DDP reads each process's rows of every batch; two launchers meeting through a c10d rendezvous train the same."
    extra = ["--corpus", shards, "--steps", 12]
    one = _launch(tmp_path, _folders(tmp_path / "single"), *extra)
    out, err = one.communicate(timeout=300)
    assert one.returncode == 0, err
    root = _folders(tmp_path / "ddp")
    if layout == "one node, two processes":
        launchers = [["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]]
    else:  # what two machines would run, each with its own --node-rank, here both on 127.0.0.1
        endpoint = f"127.0.0.1:{_free_port()}"
        launchers = [
            ["-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node)]
            + ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "shards-test"]
            for node in (0, 1)
        ]
    processes = [_launch(tmp_path, root, *extra, "--grad-accum", "2", launcher=launcher) for launcher in launchers]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    assert "2 process(es) on cpu" in "".join(out for out, _ in results)
    a, b = _metrics(tmp_path / "single" / "rank0" / "run"), _metrics(root / "rank0" / "run")
    assert [r["step"] for r in b] == list(range(1, 13))
    assert max(abs(ra["loss"] - rb["loss"]) for ra, rb in zip(a, b)) < 1e-5
    assert list((root / "rank1").iterdir()) == []  # rank 1 wrote nothing


def _refusal(tmp_path, *extra) -> str:
    process = _launch(tmp_path, _folders(tmp_path / f"r{len(list(tmp_path.glob('r*')))}", 1), *extra, "--steps", 4)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_what_would_train_on_other_tokens_is_one_line(shards, tmp_path):
    assert "prepared with another tokenizer (vocabulary 257)" in _refusal(
        tmp_path, "--corpus", shards, "--tokenizer", "gpt2"
    )
    unfinished = tmp_path / "unfinished"
    prepare_shards(shards.parent / "plays", unfinished, BYTES, workers=1, shard_tokens=20_000, val_tokens=5_000)
    manifest = json.loads((unfinished / "manifest.json").read_text())
    manifest["complete"] = False  # as a killed `prepare` leaves it
    (unfinished / "manifest.json").write_text(json.dumps(manifest))
    assert "is not finished" in _refusal(tmp_path, "--corpus", unfinished)
    (unfinished / manifest["shards"][3]["file"]).write_bytes(b"damaged")
    manifest["complete"] = True
    (unfinished / "manifest.json").write_text(json.dumps(manifest))
    assert "cannot be trained on: it holds 7 bytes" in _refusal(tmp_path, "--corpus", unfinished)


def test_sharded_tokens_read_like_the_concatenated_array(shards):
    train, _ = open_prepared(shards, BYTES)
    whole = np.concatenate(train.shards)
    positions = np.random.default_rng(0).integers(0, len(whole), (64, 33))
    assert np.array_equal(train[positions], whole[positions])
    assert np.array_equal(train[19_990:20_010], whole[19_990:20_010])  # across the first boundary
    assert isinstance(train, ShardedTokens) and len(train) == len(whole)
