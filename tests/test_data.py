"Token files and batches beyond the chapter: Hugging Face sources, several processes, a killed build, resuming from disk."
import json, os, signal, subprocess, sys, textwrap, time, warnings
from pathlib import Path

import datasets   # in the `datasets` and `dev` extras
import numpy as np
import pytest
import torch

from gpt2_edu.corpus import CorpusError, Document, shakespeare
from gpt2_edu.data import (Batches, corpus_source, eval_batches, hf_documents, load_tokens, token_file,
                           token_file_problem)
from gpt2_edu.tokenizer import ENDOFTEXT, Tokenizer, gpt2_tokenizer

ROWS = [{"text": "Once upon a time, a tokenizer met a model.", "id": 1}, {"text": "", "id": 2},
        {"text": "It read <|endoftext|> as plain text.\n", "id": 3}, {"text": "The end.\n", "id": 4}]


@pytest.fixture(scope="module")
def gpt2(): return gpt2_tokenizer()


def _expected(tok, texts): return [i for t in texts for i in [tok.eot_id, *tok.encode_ordinary(t)]]


def _write_rows(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder / "train.jsonl"


# --- Hugging Face datasets, offline ---------------------------------------------------------------------------------

def test_hf_documents_from_local_json(tmp_path, gpt2):
    path = _write_rows(tmp_path / "ds")
    docs = hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    assert [d.text for d in docs] == [r["text"] for r in ROWS if r["text"]]      # empty rows are not documents
    assert [d.name for d in docs] == ["json[0]", "json[2]", "json[3]"]
    tokens = load_tokens(docs, gpt2, None, tmp_path / "cache", progress=False)
    assert tokens.tolist() == _expected(gpt2, [d.text for d in docs])
    assert int((tokens == gpt2.eot_id).sum()) == 3                             # the forged one stays plain text


def test_hf_source_string_with_a_local_dataset_folder(tmp_path, gpt2):
    folder = tmp_path / "tiny_stories"
    _write_rows(folder)
    source = f"hf:{folder}"
    label, docs, carved = corpus_source(source, "train")
    assert label.startswith("hf-") and label.endswith("tiny_stories") and carved
    path = token_file(source, gpt2, "train", tmp_path / "cache", progress=False)
    assert path.name.startswith("hf-") and token_file_problem(path, {}) is None
    whole = load_tokens(source, gpt2, None, tmp_path / "cache")
    train, valid = (load_tokens(source, gpt2, s, tmp_path / "cache", valid_fraction=0.2) for s in ("train", "valid"))
    assert whole.tolist() == _expected(gpt2, [r["text"] for r in ROWS if r["text"]])
    assert train.tolist() + valid.tolist() == whole.tolist()
    assert len(valid) == round(0.2 * len(whole))
    with pytest.raises(CorpusError, match="has only 'train', 'valid'"): load_tokens(source, gpt2, "test", tmp_path)


def test_hf_errors(tmp_path, monkeypatch):
    path = _write_rows(tmp_path / "ds", [{"story": "no text column"}])
    with pytest.raises(CorpusError, match=r"no column 'text'; its columns are \['story'\]"):
        hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    path = _write_rows(tmp_path / "ds2", [{"text": ""}, {"text": ""}])
    with pytest.raises(CorpusError, match="no non-empty text"):
        hf_documents("json", data_files=str(path), cache_dir=str(tmp_path / "hf"))
    with pytest.raises(CorpusError, match="could not load the Hugging Face dataset 'no-such-owner/no-such-data'"):
        hf_documents("no-such-owner/no-such-data")                              # offline (conftest): fails, clearly
    monkeypatch.setitem(sys.modules, "datasets", None)                          # as if the extra were not installed
    with pytest.raises(CorpusError, match=r"pip install 'gpt2_edu\[datasets\]'"): load_tokens("hf:anything")


# --- sources, splits and bad input through load_tokens --------------------------------------------------------------

def test_user_corpus_split_and_bad_input(tmp_path, gpt2):
    corpus = tmp_path / "corpus"; corpus.mkdir()
    (corpus / "a.txt").write_text("To be, or not to be: that is the question.\n" * 20, encoding="utf-8")
    (corpus / "b.txt").write_text("A page about GPT-2 quoting <|endoftext|> in its text.\n", encoding="utf-8")
    whole = load_tokens(corpus, gpt2, None, tmp_path / "cache", progress=False)
    assert whole.tolist() == _expected(gpt2, [(corpus / n).read_text() for n in ("a.txt", "b.txt")])
    train, valid = load_tokens(corpus, gpt2, "train", tmp_path / "cache"), load_tokens(corpus, gpt2, "valid", tmp_path / "cache")
    assert np.array_equal(np.concatenate([train, valid]), whole) and len(valid) == round(0.1 * len(whole))
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 1                 # one file; the splits are slices of it

    (corpus / "c.txt").write_bytes("ok\ncaf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"c\.txt' is not valid UTF-8: byte 0xe9 at offset 6 \(line 2\)"):
        load_tokens(corpus, gpt2, cache_dir=tmp_path / "cache")
    (corpus / "c.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"c\.txt' is empty"): load_tokens(corpus, gpt2, cache_dir=tmp_path / "cache")
    with pytest.raises(CorpusError, match="unknown corpus source 'no/such/path'"): load_tokens("no/such/path", gpt2)
    with pytest.raises(CorpusError, match="unknown corpus source 42"): load_tokens(42, gpt2)
    with pytest.raises(ValueError, match="too short: 2 tokens, but one window of block_size=256 needs 257"):
        Batches(load_tokens([Document("x", "hi")], gpt2, None, tmp_path / "cache"), 256, 8)


def test_cache_location_tokenizer_folder_and_wide_vocabulary(tmp_path, monkeypatch, gpt2):
    monkeypatch.setenv("GPT2_EDU_CACHE", str(tmp_path / "env_cache"))
    docs = [Document("a", "Hello world\n")]
    assert token_file(docs, gpt2, None, progress=False).parent == tmp_path / "env_cache" / "tokens"

    tok = Tokenizer.train("the cat sat on the mat " * 50, 265)
    tok.save(tmp_path / "tok")
    assert token_file(docs, tmp_path / "tok", None, tmp_path / "c") == token_file(docs, tok, None, tmp_path / "c")

    wide = Tokenizer([], {ENDOFTEXT: 70_000})                                  # ids beyond uint16
    tokens = load_tokens(docs, wide, None, tmp_path / "c")
    assert tokens.dtype == np.uint32 and tokens[0] == 70_000 and tokens.tolist()[1:] == wide.encode("Hello world\n")
    with pytest.raises(TypeError, match="expected a Tokenizer"): token_file(docs, object(), None, tmp_path / "c")


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, gpt2):
    docs = [Document("a", "Now is the winter of our discontent\n")]
    path = token_file(docs, gpt2, None, tmp_path, progress=False)
    good = path.read_bytes()
    for damage in (lambda: path.write_bytes(good[:-2]),                            # truncated
                   lambda: path.with_suffix(".json").unlink(),                    # interrupted before the sidecar
                   lambda: path.with_suffix(".json").write_text('{"num_tokens": "many"}')):
        damage()
        with pytest.warns(UserWarning, match="cannot be used: .*; rebuilding it"):
            assert token_file(docs, gpt2, None, tmp_path, progress=False) == path
        assert path.read_bytes() == good and token_file_problem(path, {}) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                            # a healthy cache: silent
        token_file(docs, gpt2, None, tmp_path, progress=False)


# --- several processes ------------------------------------------------------------------------------------------------

def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_two_processes_build_the_same_file_at_once(tmp_path):
    code = f"""
        from gpt2_edu.data import token_file
        print(token_file("shakespeare", split="valid", cache_dir={str(tmp_path)!r}, progress=False))
    """
    procs = [_python(code) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert token_file_problem(path, {}) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.with_suffix(".json").name]   # no temporaries
    ref = np.fromfile(path, dtype=np.uint16).tolist()
    assert ref == _expected(gpt2_tokenizer(), [d.text for d in shakespeare("valid")])


def test_a_killed_build_leaves_no_token_file(tmp_path):
    # the child encodes its first batch of plays, then hangs inside the next one until it is killed
    code = f"""
        import time
        from gpt2_edu.data import token_file
        from gpt2_edu.tokenizer import gpt2_tokenizer
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
    try: assert proc.stdout.readline().strip() == "mid-way", proc.stderr.read()
    finally: os.kill(proc.pid, signal.SIGKILL); proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".shakespeare-train-") and left[0].endswith(".tmp")   # only the temporary
    path = token_file("shakespeare", None, "train", tmp_path, progress=False)        # the next run builds it whole
    assert token_file_problem(path, {}) is None
    assert len(np.fromfile(path, dtype=np.uint16)) == json.loads(path.with_suffix(".json").read_text())["num_tokens"]


# --- resuming from a checkpoint on disk -------------------------------------------------------------------------------

def test_batches_resume_exactly_through_torch_save(tmp_path, gpt2):
    tokens = load_tokens("shakespeare", gpt2, "valid", tmp_path, progress=False)
    run = Batches(tokens, block_size=64, batch_size=4, seed=1234)
    for _ in range(5): next(run)
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
    assert x.flatten().tolist() == np.asarray(tokens[:n * 1024]).tolist()
    assert y.flatten().tolist() == np.asarray(tokens[1:n * 1024 + 1]).tolist()
    again = [x for x, _ in eval_batches(tokens, 1024, 16, max_batches=2)]
    assert len(again) == 2 and torch.equal(torch.cat(again), x[:32])
