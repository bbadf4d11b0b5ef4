"""`gpt2-edu prepare` (`gpt2_edu.train.prepare`): bounded memory, SIGKILL and resume, the ids of one process.

Every run here is a real process on a real corpus: JSON Lines files of generated text, tens of megabytes, tokenized
by GPT-2's tokenizer in worker processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.train.prepare import encode_texts, prepare_shards, read_manifest

# One `gpt2-edu prepare` process; it prints its peak resident memory (main process, and the largest worker) at the end.
PREPARE = """
import json, resource, sys
from gpt2_edu.cli.main import main
status = main(sys.argv[1:])
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"status": status, "main_kib": me, "worker_kib": workers}))
sys.exit(status)
"""

WORDS = np.array("the of and to in a is that for it as with was on be by this are from or at which an not".split())


def write_corpus(path: Path, megabytes: int, seed: int = 0) -> Path:
    "A JSON Lines corpus of about `megabytes` MB: documents of 200 to 3,000 generated words, a line each."
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as file:
        written = 0
        while written < megabytes * 1_000_000:
            words = WORDS[rng.integers(0, len(WORDS), rng.integers(200, 3000))]
            line = json.dumps({"text": " ".join(words) + f". Document {written}.\n", "id": written}) + "\n"
            file.write(line)
            written += len(line)
    return path


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TIKTOKEN_CACHE_DIR": "", "PYTHONPATH": str(Path.cwd())}


def _command(source: Path, out: Path, *extra) -> list[str]:
    argv = ["prepare", "--source", source, "--out", out, "--workers", 2, "--shard-tokens", 1_000_000]
    return [sys.executable, "-c", PREPARE, *map(str, argv + ["--val-tokens", 100_000, *extra])]


def _prepare(tmp_path, source, out, *extra) -> dict:
    done = subprocess.run(
        _command(source, out, *extra), env=_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shards(out: Path) -> dict[str, str]:
    "Each shard of a finished folder and its SHA-256, as its manifest records them."
    manifest = read_manifest(out)
    assert manifest["complete"]
    return {record["file"]: record["sha256"] for record in [manifest["val"], *manifest["shards"]]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    "A 12 MB corpus and its uninterrupted shards (the reference for the resumed runs)."
    folder = tmp_path_factory.mktemp("prepare")
    source = write_corpus(folder / "corpus.jsonl", 12)
    _prepare(folder, source, folder / "whole")
    return folder, source


def test_peak_memory_does_not_grow_with_the_corpus(tmp_path, corpus):
    small = write_corpus(tmp_path / "small.jsonl", 15, seed=1)
    large = write_corpus(tmp_path / "large.jsonl", 30, seed=2)
    one = _prepare(tmp_path, small, tmp_path / "small")
    two = _prepare(tmp_path, large, tmp_path / "large")
    tokens = [read_manifest(tmp_path / name)["tokens"] for name in ("small", "large")]
    assert tokens[1] > 1.9 * tokens[0]  # twice the text, twice the tokens
    # the main process holds a few batches, never the corpus: 30 MB more text costs no more than 20 MiB of memory
    assert two["main_kib"] - one["main_kib"] < 20 * 1024, (one, two)
    assert two["worker_kib"] - one["worker_kib"] < 20 * 1024, (one, two)


def test_the_ids_are_those_of_one_process(corpus):
    folder, source = corpus
    manifest = read_manifest(folder / "whole")
    files = [manifest["val"]["file"]] + [record["file"] for record in manifest["shards"]]
    ours = np.concatenate([np.fromfile(folder / "whole" / name, dtype=np.uint16) for name in files])
    texts = [json.loads(line)["text"] for line in source.read_text(encoding="utf-8").splitlines()]
    expected, _ = encode_texts(texts, gpt2_tokenizer())  # one process, one batch, no shards
    assert ours.tolist() == expected.tolist()
    assert manifest["documents"] == len(texts) and manifest["tokens"] + manifest["val"]["tokens"] == len(expected)


def _kill_when(tmp_path, source, out, ready) -> None:
    "Start a prepare run, SIGKILL it (workers and all) as soon as `ready(out)` holds."
    process = subprocess.Popen(
        _command(source, out),
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ready(out):
        assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _shards_done(out: Path) -> int:
    manifest = read_manifest(out)  # never half a manifest: it is replaced atomically
    return 0 if manifest is None else len(manifest["shards"])


@pytest.mark.parametrize(
    "moment",
    [
        "after the first shard",  # the manifest records one shard
        "inside a shard",  # a temporary file of the second shard exists
    ],
)
def test_killed_and_rerun_gives_the_same_shards(tmp_path, corpus, moment):
    folder, source = corpus
    out = tmp_path / "shards"
    if moment == "after the first shard":
        _kill_when(tmp_path, source, out, lambda out: _shards_done(out) >= 1)
    else:
        _kill_when(tmp_path, source, out, lambda out: _shards_done(out) >= 1 and any(out.glob(".train_000001.bin.*")))
    assert not read_manifest(out)["complete"]
    _prepare(tmp_path, source, out)
    assert _shards(out) == _shards(folder / "whole")
    assert sorted(path.name for path in out.iterdir()) == sorted(["manifest.json", *_shards(folder / "whole")])


def test_a_rerun_with_another_tokenizer_or_source_is_one_line(tmp_path, corpus):
    folder, source = corpus
    out = tmp_path / "shards"
    _prepare(tmp_path, source, out)
    before = _shards(out)
    done = subprocess.run(
        _command(source, out, "--tokenizer", "bytes"), env=_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "another tokenizer" in done.stderr, done.stderr
    other = write_corpus(tmp_path / "other.jsonl", 1, seed=5)
    done = subprocess.run(_command(other, out), env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 2 and "another source" in done.stderr, done.stderr
    assert _shards(out) == before  # nothing was written


def test_a_folder_of_something_else_is_never_taken_over(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no manifest.json of prepared shards"):
        prepare_shards("shakespeare", out, workers=1, progress=False)
    assert [path.name for path in out.iterdir()] == ["notes.txt"]


def test_the_korean_corpus_is_a_source_by_name(tmp_path, capsys):
    "`gpt2-edu prepare --source korean` tokenizes the embedded constitution: every article, each ended by EOT."
    from gpt2_edu.cli.main import main
    from gpt2_edu.corpus import embedded_documents

    out = tmp_path / "korean"
    argv = ["prepare", "--source", "korean", "--out", str(out), "--workers", "1", "--shard-tokens", "20000"]
    assert main(argv + ["--val-tokens", "1000"]) == 0, capsys.readouterr()
    manifest = read_manifest(out)
    tok = gpt2_tokenizer()
    expected = sum(len(tok.encode_ordinary(doc.text)) + 1 for doc in embedded_documents("korean"))
    written = manifest["val"]["tokens"] + sum(shard["tokens"] for shard in manifest["shards"])
    assert manifest["source"] == {"source": "korean"} and manifest["complete"]
    assert written == expected
    tokens = np.concatenate([np.fromfile(out / shard["file"], dtype=np.uint16) for shard in manifest["shards"]])
    assert "대한민국" in tok.decode(tokens[:400].tolist())
