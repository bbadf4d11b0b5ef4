"Run folders: the lock (two real processes), never starting over a run, damaged and unsafe checkpoints, a full disk, resuming with other optimisation settings, clear_run, load_run, and bad settings."
import json, math, os, pickle, shutil, signal, stat, subprocess, sys, textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2_edu.checkpoint import (RunError, RunBusy, CheckpointError, RUN_FILES, LOCK_FILE, clear_run, find_checkpoint,
                                 load_checkpoint, load_run, read_metrics, read_run_record)
from gpt2_edu.model import GPT, GPTConfig
from gpt2_edu.train import Trainer, TrainConfig, TrainingDiverged, pick_device

MODEL = GPTConfig.from_preset("gpt2-tiny", vocab_size=257)
SETTINGS = TrainConfig(steps=6, batch_size=4, block_size=16, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=3,
                       seed=0, device="cpu")
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


# --- the lock: two real processes -------------------------------------------------------------------------------

HOLDER = """
import sys, time
from gpt2_edu.checkpoint import RunLock
lock = RunLock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()        # hold the lock until the test closes our stdin (or kills us)
"""
CONTENDER = """
import sys, numpy as np
from gpt2_edu.model import GPTConfig
from gpt2_edu.train import Trainer, TrainConfig
from gpt2_edu.checkpoint import RunBusy
cfg = TrainConfig(steps=2, batch_size=2, block_size=8, warmup_steps=0, device="cpu")
try:
    Trainer(GPTConfig.from_preset("gpt2-tiny", vocab_size=257), cfg, np.arange(1000) % 257, run_dir=sys.argv[1], progress=False).fit()
except RunBusy as error:
    print("busy:", error)
    sys.exit(3)
print("trained")
"""


def contend(run_dir):
    return subprocess.run([sys.executable, "-c", CONTENDER, str(run_dir)], capture_output=True, text=True, timeout=120)


def test_a_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = contend(run_dir)
        assert second.returncode == 3, second.stderr
        assert f"is in use: locked by process {holder.pid};" in second.stdout
        assert not (run_dir / "run.json").exists() and not (run_dir / "metrics.jsonl").exists()
    finally:
        holder.kill()                    # SIGKILL: the operating system releases the lock
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


# --- never start over a run, whatever its state -----------------------------------------------------------------

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
    assert after == before                       # not a byte changed: metrics, checkpoint, run.json


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
    (run_dir / "checkpoint.tmp" / "model.safetensors").write_bytes(b"\0" * 1000)   # a write cut short
    trainer = train(run_dir, replace(SETTINGS, steps=9), resume=True)
    assert not (run_dir / "checkpoint.tmp").exists()
    trainer.fit()
    assert find_checkpoint(run_dir).name == "checkpoint" and trainer.step == 9


def test_nothing_to_resume_says_what_the_folder_holds(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        train(tmp_path / "empty", resume=True)


# --- unsafe trainer state --------------------------------------------------------------------------------------

class Payload:
    "Stands for anything that would run code when unpickled."
    def __reduce__(self):
        return (os.getcwd, ())


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


# --- a full disk (a real ENOSPC: a small tmpfs in a private mount namespace) ------------------------------------

FILL = """
import os, sys, numpy as np
from gpt2_edu.model import GPTConfig
from gpt2_edu.train import Trainer, TrainConfig
from gpt2_edu.checkpoint import find_checkpoint, read_manifest
run_dir = os.path.join(sys.argv[1], "run")
cfg = TrainConfig(steps=6, batch_size=4, block_size=16, lr=3e-3, warmup_steps=1, eval_every=0, ckpt_every=3, seed=0, device="cpu")
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
    return subprocess.run(["unshare", "-m", "sh", "-c", command, "sh", str(size_kib), str(mount), sys.executable, FILL],
                          capture_output=True, text=True, timeout=300)


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
    assert f"checkpoint step: {kept}" in result.stdout     # the previous checkpoint, if any, is intact


# --- resuming with other optimisation settings (the NaN guard's advice) -----------------------------------------

def poison(trainer, record):
    if trainer.step == 4:
        with torch.no_grad():
            trainer.model.transformer.wte.weight[0, 0] = float("nan")


def test_the_advice_after_divergence_can_be_followed(tmp_path):
    run_dir = tmp_path / "run"
    settings = replace(SETTINGS, ckpt_every=2)
    with pytest.raises(TrainingDiverged) as error:
        train(run_dir, settings, callbacks=[poison]).fit()
    message = str(error.value)
    assert "last good checkpoint (step 4)" in message and "--resume --lr 0.0015" in message and "lr=0.0015" in message
    calmer = train(run_dir, replace(settings, lr=0.0015, warmup_steps=2, grad_clip=0.5), resume=True)
    assert calmer.step == 4
    calmer.fit()
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == list(range(1, 7))
    resumes = read_run_record(run_dir)["resumes"]
    assert resumes == [{"step": 4, "changed": ["train.grad_clip: 1.0 -> 0.5", "train.lr: 0.003 -> 0.0015",
                                               "train.warmup_steps: 1 -> 2"]}]
    assert all(math.isfinite(p.sum().item()) for p in calmer.model.parameters())


def test_resume_refuses_settings_that_change_the_model_or_the_data(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    with pytest.raises(RunError, match="train.batch_size: 4 -> 8") as error:
        train(run_dir, replace(SETTINGS, batch_size=8, lr=1e-4), resume=True)
    assert "train.lr" not in str(error.value)        # the learning rate may change: not listed as a problem


def test_weight_decay_changed_on_resume_is_used(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    trainer = train(run_dir, replace(SETTINGS, weight_decay=0.0), resume=True)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.0
    trainer.close()


# --- clear_run and load_run -------------------------------------------------------------------------------------

def test_clear_run_removes_only_what_a_run_writes(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "data").mkdir()
    (run_dir / "report.md").write_text("a run's report")
    removed = clear_run(run_dir)
    assert set(removed) == {"run.json", "metrics.jsonl", "loss.png", "report.md", "checkpoint", LOCK_FILE}
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "notes.txt"]
    assert clear_run(tmp_path / "missing") == []
    assert set(RUN_FILES) >= set(removed)


def test_clear_run_refuses_a_folder_in_use(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    trainer = train(run_dir, resume=True)
    with pytest.raises(RunBusy):
        clear_run(run_dir)
    trainer.close()
    assert (run_dir / "checkpoint").exists()


@pytest.mark.parametrize("content, expected", [("{}", "is not a run record: it lacks model, train, info"),
                                                ("not json", "cannot read the run record"),
                                                ("[1, 2]", "is not a run record")])
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


# --- bad settings ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, expected", [
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
])
def test_bad_settings_name_the_field_the_value_and_the_fix(field, value, expected):
    with pytest.raises(ValueError, match=None) as error:
        TrainConfig(**{field: value})
    assert expected in str(error.value)


def test_lr_zero_does_not_talk_about_min_lr():
    with pytest.raises(ValueError) as error:
        TrainConfig(lr=0)
    assert "min_lr" not in str(error.value)


def test_derived_defaults():
    resolved = TrainConfig(steps=50, lr=2e-3).resolved(GPTConfig.from_preset("gpt2-tiny"))
    assert (resolved.block_size, resolved.warmup_steps, resolved.min_lr) == (min(256, MODEL.n_positions), 5, 2e-4)
    assert TrainConfig(steps=5000).resolved().warmup_steps == 100


@pytest.mark.parametrize("spec, expected", [("nonsense", "must be 'auto', 'cpu', 'cuda', 'cuda:N'"),
                                            ("cuda:abc", "device='cuda:abc'")])
def test_pick_device_refuses_bad_spellings(spec, expected):
    with pytest.raises(ValueError, match=expected):
        pick_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_pick_device_without_cuda():
    with pytest.raises(ValueError, match="sees no CUDA GPU; use device 'cpu'"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        pick_device("cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_pick_device_without_mps():
    with pytest.raises(ValueError, match="MPS backend is not available here; use device 'cpu'"):
        pick_device("mps")


def test_the_smoothed_loss_curve_starts_on_the_data():
    from gpt2_edu.loss_plots import smooth
    losses = 5 * np.exp(-np.arange(100) / 10) + 2
    smoothed = smooth(losses)
    assert smoothed[0] == losses[0]
    assert (smoothed[:30] <= losses[:30] + 0.5).all()
