"Exact resume: a run killed with SIGKILL in the middle, then resumed, gives the same losses bit for bit."
import json, os, signal, subprocess, sys, time
from pathlib import Path

from gpt2_edu.corpus import shakespeare

STEPS = 120
ARGS = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "8", "--block-size", "64", "--device", "cpu",
        "--steps", str(STEPS), "--warmup-steps", "10", "--lr", "0.003", "--eval-every", "20", "--ckpt-every", "7", "--seed", "3"]
LAUNCH = "import sys; from gpt2_edu.cli import main; sys.exit(main(sys.argv[1:]))"


def _env(tmp_path):
    # one thread in every run: the same arithmetic, in the same order, in all three processes
    return {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train(tmp_path, corpus, out, *extra, **kw):
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "train", "--corpus", str(corpus), "--out", str(out), *ARGS, *extra],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _metrics(run_dir):
    return [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[1].text[:60_000], encoding="utf-8")
    straight = _train(tmp_path, corpus, tmp_path / "straight")
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    victim = _train(tmp_path, corpus, tmp_path / "killed")
    metrics, deadline = tmp_path / "killed" / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and victim.poll() is None:      # wait until the run is well past a checkpoint
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 40: break
        time.sleep(0.005)
    assert victim.poll() is None, "the run finished before it could be killed: make it longer"
    victim.send_signal(signal.SIGKILL); victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_steps = len(metrics.read_text().splitlines())
    ckpt_step = json.loads((tmp_path / "killed" / "checkpoint" / "manifest.json").read_text())["step"]
    assert 0 < ckpt_step < STEPS and ckpt_step % 7 == 0

    resumed = _train(tmp_path, corpus, tmp_path / "killed", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"from step {ckpt_step}" in out
    a, b = _metrics(tmp_path / "straight"), _metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))   # steps after the checkpoint were dropped, then redone
    assert [r["loss"] for r in a] == [r["loss"] for r in b]       # bit for bit (JSON keeps every digit of a float)
    assert [r.get("val_loss") for r in a] == [r.get("val_loss") for r in b]
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    print(f"killed after {killed_steps} logged steps, resumed from the checkpoint at step {ckpt_step}; "
          f"{STEPS} losses identical, last {b[-1]['loss']!r}")
