"The scaling job resumes: a finished size is never retrained, a killed size continues from its checkpoint, bit for bit."

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt2_edu.studies.scaling import (
    CPU_SIZES,
    GPU_SIZES,
    SIZES,
    log_fit,
    non_embedding_params,
    scaling_study,
    size_config,
)
from gpt2_edu.train.checkpoints import RunError, find_checkpoint, read_manifest

STEPS = 300
SETTINGS = dict(
    sizes="xs,s",
    budget_tokens=STEPS * 4 * 32,
    questions=5,
    vocab_size=300,
    context=32,
    batch_size=4,
    measure_windows=64,
    device="cpu",
    progress=False,
    train=dict(ckpt_every=10),
)
LAUNCH = (
    "import sys, json; from gpt2_edu.studies.scaling import scaling_study; scaling_study(**json.loads(sys.argv[1]))"
)


def _env(tmp_path):
    # one thread: the same arithmetic, in the same order, in every process
    return {**os.environ, "GPT2_EDU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _study(tmp_path, out, **overrides):
    settings = json.dumps({**SETTINGS, "out": str(out), "cache_dir": str(tmp_path / "cache"), **overrides})
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, settings],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return out


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _checkpoint_step(run_dir):
    "The step of the run's newest complete checkpoint (0 if none yet)."
    try:
        folder = find_checkpoint(run_dir) if Path(run_dir).is_dir() else None
        return read_manifest(folder)["step"] if folder is not None else 0
    except (OSError, ValueError):  # caught in the middle of replacing its checkpoint: ask again
        return 0


def test_killed_size_resumes_and_finished_size_is_skipped(tmp_path):
    out = tmp_path / "study"
    victim = _study(tmp_path, out)
    deadline = time.time() + 300
    while time.time() < deadline and victim.poll() is None:  # xs measured, s past a checkpoint: kill it
        if (out / "xs" / "result.json").exists() and _checkpoint_step(out / "s") >= 20:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the study finished before it could be killed: make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = _checkpoint_step(out / "s")
    assert 0 < killed_at < STEPS and not (out / "s" / "result.json").exists()
    xs_files = {name: (out / "xs" / name).stat().st_mtime_ns for name in ("result.json", "metrics.jsonl", "run.json")}
    xs_result = (out / "xs" / "result.json").read_text()

    printed = _finish(_study(tmp_path, out))  # the rerun: xs skipped, s resumed
    assert "xs: measured earlier" in printed and "not retrained" in printed
    assert f"resumed from step {killed_at}" in printed
    assert {name: (out / "xs" / name).stat().st_mtime_ns for name in xs_files} == xs_files
    assert (out / "xs" / "result.json").read_text() == xs_result
    resumes = json.loads((out / "s" / "run.json").read_text())["resumes"]
    assert [resume["step"] for resume in resumes] == [killed_at]
    s_result = json.loads((out / "s" / "result.json").read_text())
    assert s_result["steps"] == STEPS and s_result["done"] == f"resumed from step {killed_at}"

    straight = tmp_path / "straight"  # the same size, never interrupted
    _finish(_study(tmp_path, straight, sizes="s"))
    assert _losses(out / "s") == _losses(straight / "s")  # bit for bit
    assert json.loads((straight / "s" / "result.json").read_text())["val_loss"] == s_result["val_loss"]

    study = json.loads((out / "scaling.json").read_text())
    assert [size["name"] for size in study["sizes"]] == ["xs", "s"] and "val_bpb" in study["fits"]
    before = {size: (out / size / "metrics.jsonl").stat().st_mtime_ns for size in ("xs", "s")}
    printed = _finish(_study(tmp_path, out))  # a third run: nothing left to train
    assert printed.count("not retrained") == 2
    assert {size: (out / size / "metrics.jsonl").stat().st_mtime_ns for size in ("xs", "s")} == before

    with pytest.raises(RunError, match="other settings.*budget_tokens"):
        scaling_study(**{**SETTINGS, "out": out, "budget_tokens": 2 * STEPS * 4 * 32, "cache_dir": tmp_path / "cache"})


def test_a_run_stopped_before_its_first_checkpoint_starts_again(tmp_path):
    "A size folder with run.json but no checkpoint is the study's own: cleared and trained from step 0."
    out = tmp_path / "study"
    settings = {
        **SETTINGS,
        "sizes": "xs",
        "budget_tokens": 12 * 4 * 32,
        "out": out,
        "cache_dir": tmp_path / "cache",
        "train": dict(ckpt_every=100),
    }
    scaling_study(**settings)
    for name in ("checkpoint", "result.json"):  # as if killed before the first checkpoint
        path = out / "xs" / name
        subprocess.run(["rm", "-rf", str(path)], check=True)
    study = scaling_study(**settings)
    assert study["sizes"][0]["done"] == "trained" and study["sizes"][0]["steps"] == 12


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(sizes="xs,huge"), "unknown size 'huge'"),
        (dict(sizes="xs,xs"), "names a size twice"),
        (dict(budget_tokens=100), "less than one step"),
        (dict(questions=0), "at least 1 question"),
        (dict(lr=-1.0), "lr=-1.0"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        scaling_study(**{**SETTINGS, "out": tmp_path / "study", **bad})
    assert not (tmp_path / "study").exists()  # nothing written


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="not a folder"):
        scaling_study(**{**SETTINGS, "out": tmp_path / "file" / "study"})
    assert (tmp_path / "file").read_text() == "mine"


def test_the_family_keeps_gpt2s_shape():
    cpu = CPU_SIZES.split(",")
    params = [non_embedding_params(size_config(name, 2048)) for name in cpu]
    assert params == sorted(params) and params[-1] / params[0] >= 30
    for family, head_width in ((cpu + ["xl"], 32), (GPU_SIZES.split(","), 64)):
        shapes = [SIZES[name] for name in family]
        assert all(shape["n_embd"] // shape["n_head"] == head_width for shape in shapes)  # heads grow with width
        assert [shape["n_layer"] for shape in shapes] == sorted(shape["n_layer"] for shape in shapes)
    assert SIZES["gpt2"] == dict(n_layer=12, n_embd=768, n_head=12)


def test_log_fit():
    fit = log_fit([1e2, 1e3, 1e4, 1e5], [5.0, 4.0, 3.0, 2.0])
    assert (
        fit["slope"] == pytest.approx(-1.0) and fit["intercept"] == pytest.approx(7.0) and fit["r2"] == pytest.approx(1)
    )
    noisy = log_fit([1e2, 1e3, 1e4, 1e5], [5.0, 3.5, 3.2, 2.0])
    assert noisy["slope"] < 0 and 0 < noisy["r2"] < 1
    with pytest.raises(ValueError, match="at least 2 models"):
        log_fit([1e3], [2.0])


def test_a_folder_holding_a_training_run_is_refused(tmp_path):
    run = tmp_path / "demo"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(RunError, match="holds a training run"):
        scaling_study(**{**SETTINGS, "out": run})
    assert sorted(path.name for path in run.iterdir()) == ["run.json"]  # nothing written beside it


def test_the_command_line_job(tmp_path, capsys):
    from gpt2_edu.cli.main import main

    with pytest.raises(SystemExit):
        main(["scaling", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--out", "--budget-tokens", "--sizes", "--questions", "--measure-windows", "--device"):
        assert flag in help_text
    assert main(["scaling", "--out", str(tmp_path / "bad"), "--sizes", "xs,huge"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1 and "unknown size 'huge'" in printed.err
    out = tmp_path / "study"
    status = main(
        [
            "scaling",
            "--out",
            str(out),
            "--sizes",
            "xs",
            "--budget-tokens",
            str(8 * 4 * 32),
            "--questions",
            "2",
            "--vocab-size",
            "300",
            "--context",
            "32",
            "--batch-size",
            "4",
            "--measure-windows",
            "8",
            "--device",
            "cpu",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert status == 0
    study = json.loads((out / "scaling.json").read_text())
    assert [size["name"] for size in study["sizes"]] == ["xs"] and study["sizes"][0]["steps"] == 8
    assert not (out / "scaling.png").exists()  # one point: no line to draw
    assert "the fits and scaling.png need two" in capsys.readouterr().out


# Issue 22: the study replaces only what it wrote (4), refuses budgets it cannot use (9), and never reports sizes
# trained with other settings as its own (10).

CLI = "import sys; from gpt2_edu.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _scaling_command(tmp_path, out, *extra, sizes="xs", timeout=600):
    "Run `gpt2-edu scaling` (a tiny study) in a new process; return (status, output)."
    argv = ["scaling", "--out", out, "--sizes", sizes, "--budget-tokens", 8 * 4 * 32, "--questions", 2]
    argv += ["--vocab-size", 300, "--context", 32, "--batch-size", 4, "--measure-windows", 8, "--device", "cpu"]
    argv += ["--cache-dir", tmp_path / "cache", *extra]
    done = subprocess.run(
        [sys.executable, "-c", CLI, *map(str, argv)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def _refused(code, output, *words):
    lines = [line for line in output.strip().splitlines() if line.startswith("gpt2-edu")]
    assert code == 2 and "Traceback" not in output and len(lines) == 1, output
    for word in words:
        assert word in lines[0], (word, output)


def test_a_users_tokenizer_tmp_survives_the_study(tmp_path):
    out = tmp_path / "study"
    (out / "tokenizer.tmp").mkdir(parents=True)
    (out / "tokenizer.tmp" / "notes.txt").write_text("mine")
    code, output = _scaling_command(tmp_path, out)
    assert code == 0, output
    assert (out / "tokenizer.tmp" / "notes.txt").read_text() == "mine" and (out / "tokenizer" / "vocab.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_a_users_scaling_png_and_tokenizer_are_refused_before_any_work(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "scaling.png").write_bytes(b"my own figure")
    code, output = _scaling_command(tmp_path, out, sizes="xs,s")
    _refused(code, output, "scaling.png", "did not write", "--out")
    assert (
        sorted(p.name for p in out.iterdir()) == ["scaling.png"]
        and (out / "scaling.png").read_bytes() == b"my own figure"
    )
    (out / "scaling.png").unlink()
    (out / "tokenizer").mkdir()  # a tokenizer the study would train its sizes with
    code, output = _scaling_command(tmp_path, out)
    _refused(code, output, "tokenizer/", "did not write")


def test_a_budget_no_study_can_use_is_refused(tmp_path):
    code, output = _scaling_command(tmp_path, tmp_path / "study", "--budget-tokens", str(10**18), timeout=120)
    _refused(code, output, f"--budget-tokens {10**18}", "at most")
    assert not (tmp_path / "study").exists()


def test_sizes_measured_with_other_settings_are_refused_even_without_scaling_json(tmp_path):
    out = tmp_path / "study"
    code, output = _scaling_command(tmp_path, out)
    assert code == 0, output
    (out / "scaling.json").unlink()  # the study's record is gone; each size's own records remain
    code, output = _scaling_command(tmp_path, out, "--questions", "3")
    _refused(code, output, "other settings", "questions: 2 -> 3")
    assert not (out / "scaling.json").exists() or 'questions": 3' not in (out / "scaling.json").read_text()
    (out / "xs" / "result.json").unlink()  # as if killed before it was measured: its run.json tells its settings
    code, output = _scaling_command(tmp_path, out, "--lr", "0.001")
    _refused(code, output, "other settings", "train.lr")
