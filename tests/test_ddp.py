"DistributedDataParallel on 2 CPU processes (gloo) computes the same run as 1 process, and only rank 0 writes files."
import json, os, subprocess, sys
from pathlib import Path


from gpt2_edu.checkpoint import RUN_FILES
from gpt2_edu.corpus import shakespeare

# Each process moves into its own empty folder and trains into the *relative* folder 'run': anything another rank
# wrote would land in that rank's folder, which must stay empty.
LAUNCH = """
import os, sys
os.chdir(os.path.join(sys.argv[1], "rank" + os.environ.get("RANK", "0")))
from gpt2_edu.cli import main
sys.exit(main(sys.argv[2:]))
"""
ARGS = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "8", "--block-size", "64", "--device", "cpu",
        "--steps", "12", "--warmup-steps", "3", "--lr", "0.003", "--eval-every", "4", "--ckpt-every", "6", "--seed", "5",
        "--out", "run"]


def test_two_processes_match_one(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare("train")[2].text[:60_000], encoding="utf-8")
    script = tmp_path / "launch.py"; script.write_text(LAUNCH)
    env = {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    args = [*ARGS, "--corpus", str(corpus)]
    for name in ("single", "ddp"):
        for r in (0, 1): (tmp_path / name / f"rank{r}").mkdir(parents=True)

    one = subprocess.run([sys.executable, str(script), str(tmp_path / "single"), "train", *args],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    # two processes, and gradient accumulation on top: micro-batches of 4 windows, 2 per process
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                          str(tmp_path / "ddp"), "train", *args, "--grad-accum", "2"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) on cpu" in two.stdout

    a = [json.loads(l) for l in (tmp_path / "single/rank0/run/metrics.jsonl").read_text().splitlines()]
    b = [json.loads(l) for l in (tmp_path / "ddp/rank0/run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == list(range(1, 13))               # one record per step, written once
    for ra, rb in zip(a, b):
        assert abs(ra["loss"] - rb["loss"]) < 1e-5, (ra, rb)
        assert ("val_loss" in ra) == ("val_loss" in rb)
        if "val_loss" in ra: assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-5
    written = {p.name for p in (tmp_path / "ddp/rank0/run").iterdir()}
    assert {"checkpoint", "loss.png", "metrics.jsonl", "run.json", "run.lock"} <= written <= set(RUN_FILES), written
    assert list((tmp_path / "ddp/rank1").iterdir()) == []             # rank 1 wrote nothing
    print("max |loss difference| over 12 steps:", max(abs(ra["loss"] - rb["loss"]) for ra, rb in zip(a, b)))
