"""Training data (`gpt2_edu.train.data`): windows, batches and the verified token cache."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from gpt2_edu.corpus import CorpusError, Document, load_corpus, shakespeare
from gpt2_edu.hub import corpus_source, hf_documents
from gpt2_edu.tokenizer.bpe import ENDOFTEXT
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer
from gpt2_edu.train.data import (
    Batches,
    CacheError,
    _document_batches,
    check_windows,
    corpus_key,
    default_cache_dir,
    encode_documents,
    eval_batches,
    load_tokens,
    to_device,
    token_dtype,
    token_file,
    token_file_problem,
    tokenizer_key,
    write_token_file,
)
from tests.helpers import run_without_root_privileges

ROWS = [
    {"text": "Once upon a time, a tokenizer met a model.", "id": 1},
    {"text": "", "id": 2},
    {"text": "It read <|endoftext|> as plain text.\n", "id": 3},
    {"text": "The end.\n", "id": 4},
]


TWO = [Document("a", "hi"), Document("b", "yo<|endoftext|>")]  # the second one quotes <|endoftext|> as text


COUNTING = np.arange(100, dtype=np.uint16)  # token ids that show where each window starts


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def byte_tok():
    "A tokenizer with no merges: one token per byte, <|endoftext|> is 256."
    return Tokenizer([], {ENDOFTEXT: 256})


def _expected(tok, texts):
    return [i for t in texts for i in [tok.eot_id, *tok.encode_ordinary(t)]]


def _write_rows(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder / "train.jsonl"


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def test_hf_documents_from_local_json(tmp_path, gpt2):
    path = _write_rows(tmp_path / "ds")
    docs = hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    assert [d.text for d in docs] == [r["text"] for r in ROWS if r["text"]]  # empty rows are not documents
    assert [d.name for d in docs] == ["json[0]", "json[2]", "json[3]"]
    tokens = load_tokens(docs, gpt2, None, tmp_path / "cache", progress=False)
    assert tokens.tolist() == _expected(gpt2, [d.text for d in docs])
    assert int((tokens == gpt2.eot_id).sum()) == 3  # the forged one stays plain text


def test_hf_source_string_with_a_local_dataset_folder(tmp_path, gpt2):
    folder = tmp_path / "tiny_stories"
    rows = [{"text": f"Story number {number}.\n"} for number in range(40)]
    _write_rows(folder, rows)
    source = f"hf:{folder}"
    label, docs = corpus_source(source, "valid")
    assert label.startswith("hf-") and label.endswith("tiny_stories-valid")
    assert [doc.text for doc in docs] == ["Story number 18.\n", "Story number 38.\n"]  # whole rows: every 20th
    path = token_file(source, gpt2, "valid", tmp_path / "cache", progress=False)
    assert path.name.startswith("hf-") and token_file_problem(path, {}) is None
    whole = load_tokens(source, gpt2, None, tmp_path / "cache")
    assert whole.tolist() == _expected(gpt2, [row["text"] for row in rows])
    for split in ("train", "valid", "test"):  # each split: exactly its documents
        expected = _expected(gpt2, [doc.text for doc in load_corpus(hf_documents(str(folder)), split)])
        assert load_tokens(source, gpt2, split, tmp_path / "cache").tolist() == expected
    with pytest.raises(CorpusError, match="unknown split 'dev'"):
        load_tokens(source, gpt2, "dev", tmp_path)


def test_hf_progress_bar_counts_rows_against_a_real_total(tmp_path, capsys):
    path = _write_rows(tmp_path / "ds")
    hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"), progress=True)
    shown = capsys.readouterr().err
    assert "Generating train split" not in shown  # datasets' bar, whose total was 0
    assert "4/4" in shown  # ours: 4 rows of 4
    assert not datasets.are_progress_bars_disabled()  # datasets' bars are back on


def test_hf_errors(tmp_path, monkeypatch):
    path = _write_rows(tmp_path / "ds", [{"story": "no text column"}])
    with pytest.raises(CorpusError, match=r"no column 'text'; its columns are \['story'\]"):
        hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    path = _write_rows(tmp_path / "ds2", [{"text": ""}, {"text": ""}])
    with pytest.raises(CorpusError, match="no non-empty text"):
        hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    with pytest.raises(CorpusError, match="could not load the Hugging Face dataset 'no-such-owner/no-such-data'"):
        hf_documents("no-such-owner/no-such-data")  # offline (conftest): fails, clearly
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the extra were not installed
    with pytest.raises(CorpusError, match=r"pip install 'gpt2_edu\[datasets\]'"):
        load_tokens("hf:anything")


def test_user_corpus_splits_are_tokenized_from_exactly_their_documents(tmp_path, gpt2):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("".join(f"To be, or not to be, line {n}.\n" for n in range(40)), encoding="utf-8")
    (corpus / "b.txt").write_text("A page about GPT-2 quoting <|endoftext|> in its text.\n", encoding="utf-8")
    whole = load_tokens(corpus, gpt2, None, tmp_path / "cache", progress=False)
    assert whole.tolist() == _expected(gpt2, [(corpus / name).read_text() for name in ("a.txt", "b.txt")])
    for split in ("train", "valid", "test"):
        expected = _expected(gpt2, [doc.text for doc in load_corpus(corpus, split)])
        assert load_tokens(corpus, gpt2, split, tmp_path / "cache").tolist() == expected
    assert len(list((tmp_path / "cache").glob("corpus-*.bin"))) == 4  # all, train, valid, test


def test_bad_sources(tmp_path, gpt2):
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    (corpus / "a.txt").write_text("fine\n", encoding="utf-8")
    (corpus / "c.txt").write_bytes("ok\ncaf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"c\.txt' is not valid UTF-8: byte 0xe9 at offset 6 \(line 2\)"):
        load_tokens(corpus, gpt2, cache_dir=tmp_path / "cache")
    (corpus / "c.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"c\.txt' is empty"):
        load_tokens(corpus, gpt2, cache_dir=tmp_path / "cache")
    with pytest.raises(CorpusError, match="unknown corpus source 'no/such/path'"):
        load_tokens("no/such/path", gpt2)
    with pytest.raises(CorpusError, match="unknown corpus source 42"):
        load_tokens(42, gpt2)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(CorpusError, match="cannot be read: Too many levels of symbolic links"):
        load_tokens(loop, gpt2, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="has 2 tokens, but one window needs 257"):
        Batches(load_tokens([Document("x", "hi")], gpt2, None, tmp_path / "cache"), 256, 8)


def test_the_short_corpus_hint_fits_every_split(tmp_path, gpt2):
    poem = tmp_path / "poem.txt"
    poem.write_text("".join(f"Line {n} of a short poem, with a few more words.\n" for n in range(40)), encoding="utf-8")
    train, valid = (load_tokens(poem, gpt2, split, tmp_path / "cache", progress=False) for split in ("train", "valid"))
    assert len(valid) < 64 < len(train)
    with pytest.raises(ValueError, match=r"its valid split has \d+ tokens") as caught:
        check_windows(64, {"train": train, "valid": valid}, f"the corpus '{poem}'")
    suggested = int(re.search(r"use block_size=(\d+) or less", str(caught.value))[1])
    check_windows(suggested, {"train": train, "valid": valid})  # following the hint works...
    next(Batches(train, suggested, 4))
    assert len(list(eval_batches(valid, suggested, 4))) == 1  # ...for both splits
    with pytest.raises(ValueError):
        check_windows(suggested + 1, {"train": train, "valid": valid})  # and it is the largest that does


def test_to_device_copies_ids_as_int64():
    ids = np.array([[1, 2], [3, 65535]], dtype=np.uint16)
    moved = to_device(ids, "cpu")
    assert moved.dtype == torch.int64 and moved.tolist() == ids.tolist()
    tensor = torch.arange(3)
    assert to_device(tensor, torch.device("cpu")) is tensor  # already there: no copy


def test_encode_documents_needs_an_endoftext_token():
    with pytest.raises(ValueError, match=r"the tokenizer has no <\|endoftext\|> token to separate documents"):
        list(encode_documents(TWO, Tokenizer([])))


def test_documents_are_encoded_in_batches_of_at_most_batch_bytes():
    "A document bigger than a batch forms a batch of its own."
    assert list(_document_batches([5, 5, 20, 1], batch_bytes=10)) == [(0, 2), (2, 3), (3, 4)]


@pytest.mark.parametrize(
    "block_size, splits, error, message",
    [
        (
            8,
            {"train": np.arange(1)},
            ValueError,
            "its train split has 1 tokens, but one window needs 9 (the inputs plus the one token after them); "
            "use more text",
        ),
        (
            4,
            {"train": np.zeros((2, 50), dtype=np.int64)},
            TypeError,
            "the train split must be a 1-D array of token ids",
        ),
        (0, {"train": np.arange(9)}, ValueError, "block_size=0 must be an int >= 1"),
    ],
    ids=["one token", "2-D", "block_size=0"],
)
def test_check_windows_refusals(block_size, splits, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_windows(block_size, splits)


def test_batches_are_int64_windows_of_consecutive_tokens_drawn_by_the_seed():
    x, y = next(Batches(COUNTING, 8, 4, seed=0))
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 7, dtype=torch.long))
    assert torch.equal(next(Batches(COUNTING, 8, 4, seed=0))[0], x)  # same seed, same batch
    assert not torch.equal(next(Batches(COUNTING, 8, 4, seed=1))[0], x)


@pytest.mark.parametrize("loader", [Batches, eval_batches])
def test_a_batch_size_of_zero_is_refused(loader):
    with pytest.raises(ValueError, match=re.escape("batch_size=0 must be an int >= 1")):
        loader(COUNTING, 8, 0)


def test_a_loaded_state_restores_the_count_and_strict_false_accepts_other_shapes():
    run = Batches(COUNTING, 8, 4, seed=42)
    for _ in range(3):
        next(run)
    saved = run.state_dict()
    resumed = Batches(COUNTING, 8, 4, seed=0)
    resumed.load_state_dict(saved)
    assert resumed.drawn == 3
    wider = Batches(COUNTING, 16, 4)
    with pytest.raises(ValueError, match="block_size was 8, now 16"):
        wider.load_state_dict(saved)
    wider.load_state_dict(saved, strict=False)
    assert wider.drawn == 3


def test_eval_batches_with_max_batches_above_the_count_gives_every_batch():
    assert len(list(eval_batches(COUNTING, 8, 5, max_batches=10))) == 3  # 12 windows: 5 + 5 + 2


def test_eval_batches_on_a_short_array_suggests_a_block_size():
    with pytest.raises(ValueError, match=re.escape("use block_size=1 or less, which fits every split")):
        eval_batches(np.arange(2), 64, 4)


def test_cache_location_tokenizer_folder_and_wide_vocabulary(tmp_path, monkeypatch, gpt2):
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "env_cache"))
    docs = [Document("a", "Hello world\n")]
    assert token_file(docs, gpt2, None, progress=False).parent == tmp_path / "env_cache" / "tokens"

    tok = Tokenizer.train("the cat sat on the mat " * 50, 265)
    tok.save(tmp_path / "tok")
    assert token_file(docs, tmp_path / "tok", None, tmp_path / "c") == token_file(docs, tok, None, tmp_path / "c")

    pairs = [(bytes([a]), bytes([b])) for a in range(256) for b in range(256)]  # 65,536 merges: ids beyond uint16
    wide = Tokenizer(pairs, {ENDOFTEXT: 256 + len(pairs)})
    tokens = load_tokens(docs, wide, None, tmp_path / "c")
    assert tokens.dtype == np.uint32 and tokens[0] == 65_792 and tokens.tolist()[1:] == wide.encode("Hello world\n")
    with pytest.raises(TypeError, match="expected a Tokenizer"):
        token_file(docs, object(), None, tmp_path / "c")


def test_token_dtype_of_gpt2_is_uint16():
    assert token_dtype(50257) == np.uint16


def test_corpus_key_ignores_names_but_not_order():
    assert corpus_key(TWO) == corpus_key([Document("renamed", "hi"), Document("b", "yo<|endoftext|>")])
    assert corpus_key(TWO) != corpus_key(TWO[::-1])


def test_tokenizer_key_ignores_the_backend_but_not_special_ids(byte_tok):
    assert tokenizer_key(byte_tok) == tokenizer_key(Tokenizer([], {ENDOFTEXT: 256}, backend="python"))  # same ids
    assert tokenizer_key(byte_tok) != tokenizer_key(Tokenizer([], {ENDOFTEXT: 257}))


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[2] ^= 1  # one bit of one token, size unchanged
    path.write_bytes(bytes(data))
    return path


def _truncate(path):
    with open(path, "r+b") as file:
        file.truncate(10)
    return path


def _half_a_sidecar(path):
    path.with_suffix(".json").write_text("{ half a sidecar")
    return path


def _no_sidecar(path):
    path.with_suffix(".json").unlink()
    return path


@pytest.mark.parametrize(
    "damage, expected, reason",
    [
        (lambda path: path.with_name("nope.bin"), {}, "it does not exist"),
        (_flip_a_bit, {}, "its bytes no longer match the SHA-256 its sidecar recorded"),
        (lambda path: path, {"corpus_sha256": "0" * 64}, "its sidecar has corpus_sha256='"),  # another corpus
        (_truncate, {}, "it holds 10 bytes, but its sidecar says 38 (a truncated or damaged copy?)"),
        (_half_a_sidecar, {}, "its sidecar is not valid JSON"),
        (_no_sidecar, {}, "its sidecar two.json is missing"),
    ],
    ids=["missing", "overwritten", "another corpus", "truncated", "bad sidecar", "no sidecar"],
)
def test_token_file_problem_names_the_reason(tmp_path, byte_tok, damage, expected, reason):
    path = tmp_path / "two.bin"
    write_token_file(path, TWO, byte_tok)
    good = {"corpus_sha256": corpus_key(TWO), "tokenizer_sha256": tokenizer_key(byte_tok)}
    assert reason in token_file_problem(damage(path), {**good, **expected})


def test_default_cache_dir_follows_xdg_cache_home(monkeypatch):
    monkeypatch.delenv("GPT2_EDU_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert default_cache_dir() == Path("/xdg/gpt2_edu/tokens")


def test_corpus_source_labels_a_list_and_a_folder(tmp_path):
    assert corpus_source(TWO, None) == ("documents-all", TWO)
    (tmp_path / "my poems").mkdir()
    (tmp_path / "my poems" / "a.txt").write_text("verse\n", encoding="utf-8")
    assert corpus_source(tmp_path / "my poems") == ("my_poems-train", [Document("a.txt", "verse\n")])


def test_the_embedded_corpora_are_sources_by_name():
    label, docs = corpus_source("korean", "test")
    assert label == "korean-test" and docs == load_corpus("korean", "test")
    assert "대한민국" in "".join(doc.text for doc in corpus_source("korean", None)[1])


def test_another_tokenizer_or_other_text_gets_its_own_token_file(tmp_path, byte_tok):
    hello = [Document("a", "Hello world\n"), Document("b", "Good night\n")]
    files = {
        token_file(hello, byte_tok, None, tmp_path, progress=False),
        token_file(hello, Tokenizer([(b"l", b"l")], {ENDOFTEXT: 257}), None, tmp_path, progress=False),
        token_file(hello[:1] + [Document("b", "Good night!\n")], byte_tok, None, tmp_path, progress=False),
    }
    assert len(files) == 3


def test_a_cached_file_is_verified_and_reused_without_tokenizing_again(tmp_path, gpt2, monkeypatch):
    path = token_file("shakespeare", gpt2, "valid", tmp_path, progress=False)
    import gpt2_edu.train.data as data

    monkeypatch.setattr(data, "encode_documents", lambda *args, **kwargs: pytest.fail("the corpus was tokenized again"))
    assert token_file("shakespeare", gpt2, "valid", tmp_path, progress=False) == path


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, gpt2):
    docs = [Document("a", "Now is the winter of our discontent\n")]
    path = token_file(docs, gpt2, None, tmp_path, progress=False)
    good = path.read_bytes()
    same_size = bytes([good[0] ^ 1]) + good[1:]
    for damage in (
        lambda: path.write_bytes(good[:-2]),  # truncated
        lambda: path.write_bytes(same_size),  # overwritten in place, same size
        lambda: path.with_suffix(".json").unlink(),  # interrupted before the sidecar
        lambda: path.with_suffix(".json").write_text('{"num_tokens": "many"}'),
    ):
        damage()
        with pytest.warns(UserWarning, match="cannot be used: .*; rebuilding it"):
            assert token_file(docs, gpt2, None, tmp_path, progress=False) == path
        assert path.read_bytes() == good and token_file_problem(path, {}) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy cache: silent
        token_file(docs, gpt2, None, tmp_path, progress=False)


def test_a_cache_folder_that_is_a_file_is_one_clear_error(tmp_path, monkeypatch, gpt2):
    docs = [Document("a", "Hello world\n")]
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    fix = "choose another folder with --cache-dir (cache_dir=... in Python) or the environment variable GPT2_EDU_CACHE"
    with pytest.raises(
        CacheError, match=re.escape(f"cannot use the token cache in '{a_file}': it is a file, not a folder; {fix}")
    ):
        token_file(docs, gpt2, None, a_file, progress=False)
    monkeypatch.setenv("GPT2_EDU_CACHE", str(a_file))  # the default folder, through the variable
    with pytest.raises(CacheError, match=re.escape(f"'{a_file / 'tokens'}': '{a_file}' in its path is a file")):
        load_tokens(docs, gpt2, None, progress=False)
    assert issubclass(CacheError, OSError)


def test_a_read_only_cache_folder_is_one_clear_error_and_a_complete_one_still_works(tmp_path):
    docs_code = "[Document('a', 'Hello world\\n')]"
    ready = tmp_path / "ready"
    locked = tmp_path / "locked"
    locked.mkdir()
    sealed = tmp_path / "sealed"
    sealed.mkdir()
    token_file(eval(docs_code), Tokenizer([], {ENDOFTEXT: 256}), None, ready, progress=False)
    locked.chmod(0o555)  # may list it, may not write in it
    ready.chmod(0o555)
    sealed.chmod(0)  # may not even look inside
    try:
        result = run_without_root_privileges(f"""
            from gpt2_edu.corpus import Document
            from gpt2_edu.train.data import CacheError, load_tokens
            from gpt2_edu.tokenizer.bpe import ENDOFTEXT
            from gpt2_edu.tokenizer.tokenizer import Tokenizer
            tok = Tokenizer([], {{ENDOFTEXT: 256}})
            print(len(load_tokens({docs_code}, tok, None, {str(ready)!r}, progress=False)))
            for folder in ({str(locked)!r}, {str(sealed)!r}):
                try:
                    load_tokens({docs_code}, tok, None, folder, progress=False)
                except CacheError as error:
                    print(f"CacheError: {{error}}")
        """)
    finally:
        for folder in (locked, ready, sealed):
            folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    reused, refused, refused_to_look = result.stdout.splitlines()
    assert reused == "13"  # <|endoftext|> + 12 bytes, read only
    assert refused == (
        f"CacheError: [Errno 13] cannot use the token cache in '{locked}': permission denied; choose "
        "another folder with --cache-dir (cache_dir=... in Python) or the environment variable "
        "GPT2_EDU_CACHE"
    )
    assert refused_to_look.startswith(
        f"CacheError: [Errno 13] cannot use the token cache in '{sealed}': permission denied"
    )
    assert list(locked.iterdir()) == [] and list(sealed.iterdir()) == []  # no temporary left behind


def test_two_processes_build_the_same_file_at_once(tmp_path):
    code = f"""
        from gpt2_edu.train.data import token_file
        print(token_file("shakespeare", split="valid", cache_dir={str(tmp_path)!r}, progress=False))
    """
    procs = [_python(code) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert token_file_problem(path, {}) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.with_suffix(".json").name]  # no temporaries
    ref = np.fromfile(path, dtype=np.uint16).tolist()
    assert ref == _expected(gpt2_tokenizer(), [d.text for d in shakespeare("valid")])


def test_a_killed_build_leaves_no_token_file(tmp_path):
    # the child encodes its first batch of plays, then hangs inside the next one until it is killed
    code = f"""
        import time
        from gpt2_edu.train.data import token_file
        from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
        tok, calls = gpt2_tokenizer(), []
        encode_batch = tok.encode_ordinary_batch
        def hang_on_second_batch(texts, *args, **kwargs):
            calls.append(len(texts))
            if len(calls) == 2: print("mid-way", flush=True); time.sleep(600)
            return encode_batch(texts, *args, **kwargs)
        tok.encode_ordinary_batch = hang_on_second_batch
        token_file("shakespeare", tok, "train", {str(tmp_path)!r}, progress=False)
    """
    proc = _python(code, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "mid-way", proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert (
        len(left) == 1 and left[0].startswith(".shakespeare-train-") and left[0].endswith(".tmp")
    )  # only the temporary
    path = token_file("shakespeare", None, "train", tmp_path, progress=False)  # the next run builds it whole
    assert token_file_problem(path, {}) is None
    assert len(np.fromfile(path, dtype=np.uint16)) == json.loads(path.with_suffix(".json").read_text())["num_tokens"]


def test_batches_resume_exactly_through_torch_save(tmp_path, gpt2):
    tokens = load_tokens("shakespeare", gpt2, "valid", tmp_path, progress=False)
    run = Batches(tokens, block_size=64, batch_size=4, seed=1234)
    for _ in range(5):
        next(run)
    torch.save({"data": run.state_dict()}, tmp_path / "ckpt.pt")
    rest = [next(run) for _ in range(3)]
    resumed = Batches(load_tokens("shakespeare", gpt2, "valid", tmp_path), 64, 4, seed=0)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["data"])
    for (x1, y1), (x2, y2) in zip(rest, [next(resumed) for _ in range(3)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(ValueError, match="num_tokens was"):
        Batches(load_tokens("shakespeare", gpt2, "test", tmp_path), 64, 4).load_state_dict(run.state_dict())


def test_eval_batches_cover_the_split_once(tmp_path, gpt2):
    tokens = load_tokens("shakespeare", gpt2, "test", tmp_path, progress=False)
    xs, ys = zip(*eval_batches(tokens, block_size=1024, batch_size=16))
    x, y = torch.cat(xs), torch.cat(ys)
    n = (len(tokens) - 1) // 1024
    assert x.shape == (n, 1024) and x.dtype == torch.long
    assert x.flatten().tolist() == np.asarray(tokens[: n * 1024]).tolist()
    assert y.flatten().tolist() == np.asarray(tokens[1 : n * 1024 + 1]).tolist()
    again = [x for x, _ in eval_batches(tokens, 1024, 16, max_batches=2)]
    assert len(again) == 2 and torch.equal(torch.cat(again), x[:32])


def test_check_tokens_catches_a_file_changed_under_its_memory_map(tmp_path):
    "Issue 22.5: a token file overwritten in place after `load_tokens` opened it is caught; one rewritten alike is not."
    from gpt2_edu.train.data import TokenFileChanged, check_tokens

    tok = Tokenizer([], {ENDOFTEXT: 256})
    docs = [Document("a", "Fair is foul, and foul is fair. " * 50)]
    tokens = load_tokens(docs, tok, None, tmp_path)
    check_tokens(tokens)
    path = Path(tokens.filename)
    same = path.read_bytes()
    path.write_bytes(same)  # written again, with the same bytes: nothing changed for the run
    check_tokens(tokens)
    with open(path, "r+b") as f:
        f.write(bytes(100))
    with pytest.raises(TokenFileChanged, match=r"the training split: the token file .* changed after it was opened"):
        check_tokens(tokens, "the training split")
    with pytest.warns(UserWarning, match="rebuilding it"):
        rebuilt = load_tokens(docs, tok, None, tmp_path, progress=False)
    assert rebuilt[:5].tolist() != [0] * 5
