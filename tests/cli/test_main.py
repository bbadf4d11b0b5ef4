"The command line: flags come from TrainConfig, and every expected failure is one line, exit status 2, with a fix."

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from gpt2_edu.atomic import sha256_file
from gpt2_edu.cli.main import _parser, main
from gpt2_edu.corpus import shakespeare
from gpt2_edu.train.runs import RUN_FILES
from gpt2_edu.train.trainer import TrainConfig

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
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--ckpt-every",
    "2",
]


def run(capsys, *argv):
    "Run the CLI in-process; return (status, stdout, stderr)."
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    "A folder with a small corpus, a finished tiny run, and broken copies of it."
    root = tmp_path_factory.mktemp("cli")
    saved_cache = os.environ.get("GPT2_EDU_CACHE")
    os.environ["GPT2_EDU_CACHE"] = str(root / "cache")
    (root / "corpus.txt").write_text(shakespeare("train")[0].text[:20_000], encoding="utf-8")
    assert main(["train", "--corpus", str(root / "corpus.txt"), "--out", str(root / "run"), *TINY]) == 0
    for name, record in [("empty-record", "{}"), ("not-json", "{ this is not JSON")]:
        shutil.copytree(root / "run", root / name)
        (root / name / "run.json").write_text(record)
    unsafe = root / "unsafe"
    shutil.copytree(root / "run", unsafe)
    checkpoint = unsafe / "checkpoint"
    torch.save({"step": 4, "payload": print}, checkpoint / "trainer_state.pt")  # a pickled function: not plain tensors
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["trainer_state.pt"] = sha256_file(
        checkpoint / "trainer_state.pt"
    )  # the hash matches: only the content is unsafe
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    (root / "a-file").write_text("not a folder")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    yield root
    if saved_cache is None:
        os.environ.pop("GPT2_EDU_CACHE", None)
    else:
        os.environ["GPT2_EDU_CACHE"] = saved_cache


TRAIN = ["train", "--corpus", "{root}/corpus.txt", "--out", "{root}/new-run", *TINY]
SAMPLE = ["sample", "--run", "{root}/run", "--tokens", "5"]

# arguments -> words the one-line error must contain (the flag as typed, the value, and the way out)
BAD_INPUT = [
    (TRAIN + ["--device", "nonsense"], ["--device 'nonsense'", "'cpu'"]),
    (TRAIN + ["--device", "mps"], ["--device 'mps'", "'cpu'"]),
    (TRAIN + ["--device", "cuda:abc"], ["--device 'cuda:abc'", "'cpu'"]),
    (TRAIN + ["--block-size", "0"], ["--block-size 0", ">= 1"]),
    (TRAIN + ["--eval-every", "-1"], ["--eval-every -1", ">= 0"]),
    (TRAIN + ["--lr", "0"], ["--lr 0.0", "e.g. 1e-3"]),
    (TRAIN + ["--lr", "nan"], ["--lr nan", "e.g. 1e-3"]),
    (TRAIN + ["--seed", "-1"], ["--seed -1", "from 0 to"]),
    (TRAIN + ["--seed", str(2**70)], [f"--seed {2**70}", "from 0 to"]),
    (TRAIN + ["--stop-at", "0"], ["--stop-at 0", "--stop-at 1 or more"]),
    (TRAIN + ["--stop-at", "-5"], ["--stop-at -5", "--stop-at 1 or more"]),
    (TRAIN + ["--out", ""], ["--out is empty", "e.g. --out runs/mine"]),
    (TRAIN + ["--corpus", "{root}/loop-a"], ["loop-a", "symbolic links", "fix the path"]),
    (TRAIN + ["--cache-dir", "{root}/a-file/cache"], ["a-file", "is a file", "--cache-dir"]),
    (["train", "--out", "{root}/empty-record", "--resume"], ["empty-record/run.json"]),
    (["train", "--out", "{root}/not-json", "--resume"], ["not-json/run.json"]),
    (["train", "--out", "{root}/unsafe", "--resume"], ["refused to load", "trainer_state.pt"]),
    (["tokenize", "--out", "{root}/a-file"], ["a-file' is a file", "choose another --out"]),
    (["demo", "--steps", "0"], ["--steps 0"]),
    (["demo", "--out", ""], ["--out is empty"]),
    (["demo", "--out", "{root}/run"], ["not a demo", "--out"]),
    (SAMPLE + ["--temperature", "nan"], ["temperature"]),
    (SAMPLE + ["--temperature", "inf"], ["temperature"]),
    (SAMPLE + ["--top-p", "1.5"], ["--top-p 1.5"]),
    (SAMPLE + ["--num", "0"], ["--num 0", "--num 1"]),
    (SAMPLE + ["--seed", "-1"], ["seed"]),
    (["sample", "--run", "{root}/empty-record"], ["empty-record/run.json"]),
    (["sample", "--run", "{root}/not-json"], ["not-json/run.json"]),
    (["sample", "--run", "{root}/nowhere"], ["nowhere", "gpt2-edu train"]),
]


@pytest.mark.parametrize("argv, words", BAD_INPUT, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_with_status_2(place, capsys, argv, words):
    code, out, err = run(capsys, *[a.format(root=place) for a in argv])
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err and "[Errno" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word.format(root=place) in err, (word, err)
    assert not (place / "new-run" / "checkpoint").exists()  # refused before any training


def test_tokenize_refuses_an_existing_file_before_training(place, capsys):
    code, out, err = run(capsys, "tokenize", "--out", place / "a-file")
    assert code == 2 and "Training" not in out and (place / "a-file").read_text() == "not a folder"


def test_every_train_config_field_is_a_train_flag_with_its_default():
    train = _parser().parse_args(["train"])
    for field in dataclasses.fields(TrainConfig):
        assert hasattr(train, field.name), f"TrainConfig.{field.name} has no --{field.name.replace('_', '-')} flag"
        assert getattr(train, field.name) == field.default, field.name


def test_help_documents_the_cache(capsys):
    for command in ["train", "demo"]:  # the jobs that tokenize a corpus into the cache
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        assert exit.value.code == 0
        out = capsys.readouterr().out
        assert "GPT2_EDU_CACHE" in out and "--cache-dir" in out, command


def test_sample_offers_top_p(place, capsys):
    code, out, err = run(
        capsys, "sample", "--run", place / "run", "--prompt", "KING:", "--tokens", "8", "--top-p", "0.9", "--top-k", "0"
    )  # nucleus sampling alone
    assert code == 0 and out.startswith("--- sample 1 ---\nKING:"), err


def test_cache_dir_is_where_tokens_go(place, tmp_path, capsys):
    code, _, err = run(
        capsys,
        "train",
        "--corpus",
        place / "corpus.txt",
        "--out",
        tmp_path / "run",
        "--cache-dir",
        tmp_path / "my-cache",
        *TINY,
    )
    assert code == 0, err
    assert list((tmp_path / "my-cache").rglob("*.bin"))


def test_ctrl_c_is_status_130(place, tmp_path, capsys, monkeypatch):
    from gpt2_edu.train.trainer import Trainer

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    code, _, err = run(capsys, "train", "--corpus", place / "corpus.txt", "--out", tmp_path / "run", *TINY)
    assert code == 130 and "--resume" in err and "Traceback" not in err


def _entry_point(*argv, prefix=(), env=None):
    "Run the real console entry point in a new process; return (status, stderr)."
    code = "import sys; from gpt2_edu.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_entry_point_prints_no_traceback_for_a_bad_device(place):
    code, output = _entry_point(*[a.format(root=place) for a in TRAIN], "--device", "cuda:abc")
    assert code == 2 and "Traceback" not in output and "cuda:abc" in output, output


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop root's file override")
def test_entry_point_read_only_cache(place, tmp_path):
    "A cache folder the user may not write to (a real EACCES, even as root): one line, status 2."
    cache = tmp_path / "read-only-cache"
    cache.mkdir()
    cache.chmod(0o555)
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    code, output = _entry_point(
        "train",
        "--corpus",
        place / "corpus.txt",
        "--out",
        tmp_path / "run",
        "--cache-dir",
        cache / "tokens",
        *TINY,
        prefix=prefix,
    )
    assert code == 2 and "Traceback" not in output and "read-only-cache" in output, output


def test_demo_twice_keeps_the_users_files(tmp_path, capsys, monkeypatch):
    "A second demo in the same folder removes only the first demo's files, says so, and keeps the user's."
    import gpt2_edu.cli.demo as cli

    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "cache"))
    for key, value in dict(n_layer=1, n_embd=32, n_head=2, n_positions=32).items():  # a tinier model, same job
        monkeypatch.setitem(cli.DEMO_MODEL, key, value)
    for key, value in dict(batch_size=4, block_size=32, eval_batches=2).items():
        monkeypatch.setitem(cli.DEMO_TRAIN, key, value)
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "my-notes.txt").write_text("keep me")
    code, out, err = run(capsys, "demo", "--out", demo, "--steps", "3")
    assert code == 0, err
    assert "trained 3 of 3 steps" in out and "validation loss" in out and "unigram baseline" in out
    assert "train loss (mean of last 20 steps)" in out and "--- sample (prompt 'ROMEO:\\n') ---" in out
    report = (demo / "report.md").read_text()
    assert "| **validation loss** |" in report and "| train loss (mean of last 20 steps) |" in report
    code, out, err = run(capsys, "demo", "--out", demo, "--steps", "3")
    assert code == 0 and "replacing the earlier demo" in out, err
    assert (demo / "my-notes.txt").read_text() == "keep me"
    names = {p.name for p in demo.iterdir()}
    assert {"checkpoint", "loss.png", "metrics.jsonl", "report.md", "run.json", "my-notes.txt"} <= names
    assert names - set(RUN_FILES) == {"my-notes.txt", "outputs.json"}


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a private tmpfs"
)
def test_entry_point_full_disk(place, tmp_path):
    "A disk that fills up while writing a checkpoint (a real ENOSPC, on a 200 kB tmpfs): one line, status 2."
    disk = tmp_path / "disk"
    disk.mkdir()
    code = "import sys; from gpt2_edu.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = ["train", "--corpus", place / "corpus.txt", "--out", disk / "run", *TINY, "--ckpt-every", "1"]
    script = f'mount -t tmpfs -o size=200k tmpfs "{disk}" && exec "{sys.executable}" -c "{code}" ' + " ".join(
        f'"{a}"' for a in argv
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "no space left on device while writing" in output, output
    assert "Traceback" not in output and "[Errno" not in output, output


# Issue 22, 1-4: every job replaces only what it can prove it wrote (`Outputs`), and refuses what is in its way.


def _one_line_refusal(code, output, *words):
    "Status 2, one line, no traceback, with each of `words`."
    lines = [line for line in output.strip().splitlines() if line.startswith("gpt2-edu")]
    assert code == 2 and "Traceback" not in output and len(lines) == 1, output
    for word in words:
        assert word in lines[0], (word, output)


def _tiny_demo(out, cache):
    "A finished demo in `out`, as the job writes it, on a tinier model than the command's."
    from gpt2_edu.cli.demo import demo_job

    demo_job(
        str(out),
        steps=2,
        cache_dir=str(cache),
        file=io.StringIO(),
        progress=False,
        vocab_size=300,
        model=dict(n_layer=1, n_embd=32, n_head=2, n_positions=32),
        train=dict(batch_size=4, block_size=32, eval_batches=2),
    )


def test_demo_keeps_a_users_tokenizer_folder(tmp_path):
    "A second `gpt2-edu demo` never deletes a tokenizer/ the user made in the demo's folder (which a run would read)."
    demo = tmp_path / "demo"
    _tiny_demo(demo, tmp_path / "cache")
    (demo / "tokenizer").mkdir()
    (demo / "tokenizer" / "vocab.json").write_text('{"mine": 0}')
    code, output = _entry_point("demo", "--out", demo, "--steps", "1", "--cache-dir", tmp_path / "cache")
    _one_line_refusal(code, output, "tokenizer/", "did not write", "--out")
    assert (demo / "tokenizer" / "vocab.json").read_text() == '{"mine": 0}'
    assert (demo / "checkpoint" / "manifest.json").is_file() and (demo / "report.md").is_file()  # nothing removed


def test_demo_replaces_its_own_files_only_and_says_so(tmp_path, capsys):
    demo = tmp_path / "demo"
    _tiny_demo(demo, tmp_path / "cache")
    (demo / "report.md").write_text("my own report")  # the demo's report, now edited by the user: theirs
    code, out, err = run(capsys, "demo", "--out", demo, "--steps", "1", "--cache-dir", tmp_path / "cache")
    assert code == 2 and "report.md" in err and (demo / "report.md").read_text() == "my own report", err


def test_tokenize_never_writes_into_a_runs_checkpoint(place, tmp_path):
    from gpt2_edu.train.checkpoints import verify_checkpoint

    run_dir = tmp_path / "run"
    shutil.copytree(place / "run", run_dir)
    before = {p.name: p.read_bytes() for p in (run_dir / "checkpoint").iterdir()}
    code, output = _entry_point(
        "tokenize", "--vocab-size", "300", "--max-chars", "20000", "--out", run_dir / "checkpoint"
    )
    _one_line_refusal(code, output, "checkpoint", "only training writes there", "--out")
    assert {p.name: p.read_bytes() for p in (run_dir / "checkpoint").iterdir()} == before
    verify_checkpoint(run_dir / "checkpoint")  # the run is not corrupt
    code, output = _entry_point(
        "tokenize", "--vocab-size", "300", "--max-chars", "20000", "--out", run_dir / "checkpoint" / "tok"
    )
    _one_line_refusal(code, output, "inside a run's checkpoint")


def test_tokenize_keeps_a_users_vocab_and_replaces_its_own(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "vocab.json").write_text('{"mine": 0}')
    argv = ["tokenize", "--vocab-size", "300", "--max-chars", "20000", "--out"]
    code, output = _entry_point(*argv, mine)
    _one_line_refusal(code, output, "vocab.json", "did not write")
    assert (mine / "vocab.json").read_text() == '{"mine": 0}' and sorted(p.name for p in mine.iterdir()) == [
        "vocab.json"
    ]
    for _ in range(2):  # its own files: written, then replaced
        code, output = _entry_point(*argv, tmp_path / "ours")
        assert code == 0, output
    assert json.loads((tmp_path / "ours" / "vocab.json").read_text())["<|endoftext|>"] == 299


def test_eval_keeps_a_users_report_and_replaces_its_own(place, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "eval.md").write_text("my notes")
    (mine / "eval.json").write_text("{}")
    argv = ["eval", "--run", place / "run", "--tasks", "shakespeare_cn", "--limit", "2", "--device", "cpu", "--out"]
    code, output = _entry_point(*argv, mine)
    _one_line_refusal(code, output, "eval.md", "eval.json", "did not write", "--out")
    assert (mine / "eval.md").read_text() == "my notes" and (mine / "eval.json").read_text() == "{}"
    for _ in range(2):
        code, output = _entry_point(*argv, tmp_path / "reports")
        assert code == 0, output
    assert json.loads((tmp_path / "reports" / "eval.json").read_text())["tasks"][0]["task"] == "shakespeare_cn"


# Issue 22, small things: the help says each default once, 0 included, in the words of the command line.


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare words


def test_help_shows_a_default_of_zero_and_never_an_empty_or_repeated_one(capsys):
    text = _help("sample", capsys)
    assert "--seed INT" in text and "(default: 0)" in text
    assert "(default: )" not in text and text.count("an unconditional sample") == 1
    options = text[text.index("options:") :]
    prompt_help = options[options.index("--prompt") : options.index("--", options.index("--prompt") + 2)]
    assert prompt_help.count("default") == 1, prompt_help


def test_every_job_names_the_same_token_cache_and_speaks_of_flags(capsys):
    for command in ("train", "demo", "scaling"):
        text = _help(command, capsys)
        assert "~/.cache/gpt2_edu/tokens" in text and "else ~/.cache)" not in text, command
        assert "return" not in text.split("options:")[0], command  # the description speaks to a user, not a caller


def test_the_demo_help_says_what_its_time_depends_on(capsys):
    text = _help("demo", capsys)
    assert "a few CPU minutes" not in text and "3 min on 2 idle CPU cores, more on a busy one" in text


def test_messages_name_switches_as_flags():
    from gpt2_edu.cli.main import as_flags

    message = "resume it: resume=True with lr=0.0005"
    assert as_flags(message, ["resume", "lr"]) == "resume it: --resume with --lr 0.0005"


def test_the_article_before_a_vocabulary_size(place, tmp_path, capsys):
    assert main(["tokenize", "--vocab-size", "300", "--max-chars", "20000", "--corpus", "shakespeare"]) == 0
    assert "Training a 300-token byte-level BPE" in capsys.readouterr().out
    from gpt2_edu.cli.jobs import _a

    assert [_a(n) for n in (8, 11, 18, 80, 800, 8192, 11000, 18000, 300, 2048, 1, 100_000)] == ["an"] * 8 + ["a"] * 4


def test_train_takes_the_korean_corpus_by_name(place, capsys):
    "`--corpus korean` trains on the embedded constitution, and the run records the name, not a path."
    out = place / "korean-run"
    code, printed, err = run(capsys, "train", "--corpus", "korean", "--out", out, *TINY)
    assert code == 0, err
    assert "tokens of korean" in printed
    assert json.loads((out / "run.json").read_text())["info"]["corpus"] == "korean"
