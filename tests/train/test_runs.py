"""Run folders (`gpt2_edu.train.runs`): the lock (two real processes), never starting over a run, a full disk,
resuming."""

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.train.checkpoints import RunError, load_checkpoint
from gpt2_edu.train.outputs import OUTPUTS, InTheWay, Outputs
from gpt2_edu.train.runs import (
    LOCK_FILE,
    RUN_FILES,
    RunBusy,
    clear_run,
    load_run,
    resume_changes,
)
from gpt2_edu.train.trainer import TrainConfig, Trainer

MODEL = GPTConfig.from_preset("gpt2-tiny", vocab_size=257)


SETTINGS = TrainConfig(
    steps=6, batch_size=4, block_size=16, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=3, seed=0, device="cpu"
)


TOKENS = np.random.default_rng(0).integers(0, 257, 20_000).astype(np.uint16)


def train(run_dir, settings=SETTINGS, **kw):
    return Trainer(MODEL, settings, TOKENS, run_dir=run_dir, progress=False, **kw)


def snapshot(folder):
    "Every file under `folder` with its bytes."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


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


HOLDER = """
import sys, time
from gpt2_edu.train.runs import RunLock
lock = RunLock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()        # hold the lock until the test closes our stdin (or kills us)
"""


CONTENDER = """
import sys, numpy as np
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.train.trainer import Trainer, TrainConfig
from gpt2_edu.train.runs import RunBusy
cfg = TrainConfig(steps=2, batch_size=2, block_size=8, warmup_steps=0, device="cpu")
try:
    model_config = GPTConfig.from_preset("gpt2-tiny", vocab_size=257)
    Trainer(model_config, cfg, np.arange(1000) % 257, run_dir=sys.argv[1], progress=False).fit()
except RunBusy as error:
    print("busy:", error)
    sys.exit(3)
print("trained")
"""


def contend(run_dir):
    return subprocess.run([sys.executable, "-c", CONTENDER, str(run_dir)], capture_output=True, text=True, timeout=120)


def damage_manifest(run_dir):
    (run_dir / "checkpoint" / "manifest.json").unlink()


def only_prev(run_dir):
    os.replace(run_dir / "checkpoint", run_dir / "checkpoint.prev")


def only_tmp(run_dir):
    os.replace(run_dir / "checkpoint", run_dir / "checkpoint.tmp")


def only_metrics(run_dir):
    shutil.rmtree(run_dir / "checkpoint")
    (run_dir / "run.json").unlink()


def only_run_json(run_dir):
    shutil.rmtree(run_dir / "checkpoint")
    (run_dir / "metrics.jsonl").unlink()


def test_a_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = contend(run_dir)
        assert second.returncode == 3, second.stderr
        assert f"is in use: locked by process {holder.pid};" in second.stdout
        assert not (run_dir / "run.json").exists() and not (run_dir / "metrics.jsonl").exists()
    finally:
        holder.kill()  # SIGKILL: the operating system releases the lock
        holder.wait()
    third = contend(run_dir)
    assert third.returncode == 0 and "trained" in third.stdout, third.stdout + third.stderr


def test_the_lock_is_held_for_the_life_of_a_trainer_and_released_by_fit(tmp_path):
    trainer = train(tmp_path / "run")
    with pytest.raises(RunBusy, match=f"locked by process {os.getpid()};"):
        train(tmp_path / "run", resume=True)
    trainer.fit()
    resumed = train(tmp_path / "run", replace(SETTINGS, steps=9), resume=True)
    resumed.close()
    with train(tmp_path / "run", replace(SETTINGS, steps=9), resume=True) as again:
        assert again.step == 6


@pytest.mark.parametrize("state", [damage_manifest, only_prev, only_tmp, only_metrics, only_run_json])
def test_a_fresh_run_never_replaces_an_earlier_one(finished, tmp_path, state):
    run_dir = copy_run(finished, tmp_path)
    state(run_dir)
    before = snapshot(run_dir)
    with pytest.raises(RunError, match="already holds a run"):
        train(run_dir, replace(SETTINGS, steps=2))
    after = snapshot(run_dir)
    after.pop(LOCK_FILE, None)
    before.pop(LOCK_FILE, None)
    assert after == before  # not a byte changed: metrics, checkpoint, run.json


def test_nothing_to_resume_says_what_the_folder_holds(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        train(tmp_path / "empty", resume=True)


def test_clear_run_removes_only_what_a_run_writes(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "data").mkdir()
    (run_dir / "report.md").write_text("a report of the user's")  # names a job uses, but this run did not write them
    (run_dir / "tokenizer").mkdir()
    removed = clear_run(run_dir)
    assert set(removed) == {"run.json", "metrics.jsonl", "loss.png", "checkpoint"}
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "notes.txt", "report.md", "tokenizer"]
    assert clear_run(tmp_path / "missing") == []
    assert set(RUN_FILES) >= set(removed)


def test_the_lock_file_is_removed_when_a_run_ends(tmp_path):
    "Issue 22: a run.lock naming a dead process no longer stays in the folder after every run."
    done = contend(tmp_path / "run")
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint",
        "loss.png",
        "metrics.jsonl",
        OUTPUTS,
        "run.json",
    ]


def test_outputs_replace_only_what_the_job_wrote(tmp_path):
    folder = tmp_path / "shared"
    report = Outputs(folder, "eval")
    report.write("eval.md", "# one")
    report.write("eval.md", "# two")  # its own, unchanged since: replaced
    assert (folder / "eval.md").read_text() == "# two"
    with pytest.raises(InTheWay, match="eval.md"):
        Outputs(folder, "tokenize").write("eval.md", "# three")  # another job's file is not this job's
    (folder / "eval.md").write_text("# edited by the user")
    with pytest.raises(InTheWay, match=r"holds eval.md, which this command did not write .*choose another folder"):
        report.write("eval.md", "# four")
    assert report.remove(["eval.md"]) == [] and (folder / "eval.md").read_text() == "# edited by the user"
    (folder / "tokenizer").mkdir()
    with pytest.raises(InTheWay, match="tokenizer/"):
        report.write_folder("tokenizer", lambda tmp: (Path(tmp) / "vocab.json").write_text("{}"))
    for text in ("one", "two"):  # its own folder: written whole, then replaced whole
        report.write_folder("tokens", lambda tmp, text=text: (Path(tmp) / f"{text}.txt").write_text(text))
    assert [p.name for p in (folder / "tokens").iterdir()] == ["two.txt"]
    assert sorted(p.name for p in folder.iterdir()) == ["eval.md", OUTPUTS, "tokenizer", "tokens"]  # no temporary
    assert report.remove(["tokens", "eval.md"]) == ["tokens"]


def test_outputs_refuse_a_record_not_theirs_and_a_runs_checkpoint(finished, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / OUTPUTS).write_text('{"my": "outputs"}')
    with pytest.raises(InTheWay, match="is not gpt2-edu's record"):
        Outputs(folder, "eval").write("eval.md", "x")
    assert sorted(p.name for p in folder.iterdir()) == [OUTPUTS]
    run_dir = copy_run(finished, tmp_path)
    for place in (run_dir / "checkpoint", run_dir / "checkpoint" / "sub", run_dir / "checkpoint.prev"):
        with pytest.raises(InTheWay, match="only training writes there"):
            Outputs(place, "tokenize")


def test_clear_run_refuses_a_folder_in_use(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    trainer = train(run_dir, resume=True)
    with pytest.raises(RunBusy):
        clear_run(run_dir)
    trainer.close()
    assert (run_dir / "checkpoint").exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{}", "is not a run record: it lacks model, train, info"),
        ("not json", "cannot read the run record"),
        ("[1, 2]", "is not a run record"),
    ],
)
def test_load_run_names_a_bad_run_json(finished, tmp_path, content, expected):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "run.json").write_text(content)
    with pytest.raises(RunError, match=expected) as error:
        load_run(run_dir)
    assert str(run_dir / "run.json") in str(error.value)


def test_load_run_gives_the_trained_model(finished):
    model, tokenizer, record = load_run(finished)
    assert record["train"]["steps"] == 6 and not model.training
    trainer = train(finished.parent / "other", resume=False)
    trainer.close()
    assert load_checkpoint(finished / "checkpoint", trainer.model) == 6
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trainer.model.state_dict().values()))


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        train(tmp_path / "run", replace(SETTINGS, steps=3)).fit()
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}, {p.name: oct(p.stat().st_mode) for p in files}


def test_resume_changes_lists_what_may_change_and_refuses_the_rest():
    record = {"model": {"n_layer": 2}, "train": {"lr": 1e-3}, "info": {}}
    assert resume_changes(record, {**record, "train": {"lr": 5e-4}}) == ["train.lr: 0.001 -> 0.0005"]
    with pytest.raises(RunError, match="model.n_layer: 2 -> 3"):
        resume_changes(record, {**record, "model": {"n_layer": 3}})
