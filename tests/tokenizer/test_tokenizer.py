"""The `Tokenizer` (`gpt2_edu.tokenizer.tokenizer`): id for id equal to tiktoken and Hugging Face on varied text, and
every refusal."""

import json
import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt2_edu.corpus import join_documents, shakespeare
from gpt2_edu.tokenizer.bpe import ENDOFTEXT, GPT2_PATTERN, pretokenize
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer, reference_gpt2_encoding
from tests.varied_text import KOREAN_SENTENCES, stdlib_code, varied_sections, without_spaces

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def fast(n):
    "A hypothesis budget of `n` examples, reproducible (derandomized, no example database)."
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def ref():
    return reference_gpt2_encoding()


@pytest.fixture(scope="module")
def gpt2():
    return {"tiktoken": gpt2_tokenizer(backend="tiktoken"), "python": gpt2_tokenizer(backend="python")}


@pytest.fixture(scope="module")
def sections():
    return varied_sections(seed=0)


@pytest.fixture(scope="module", params=["tiktoken", "python"])
def backend(request):
    return request.param


def first_difference(a, b):
    "Index of the first differing id (for readable failure messages)."
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def assert_same_ids(ours, theirs, text, tok, who="reference"):
    if ours != theirs:
        i = first_difference(ours, theirs)
        raise AssertionError(
            f"ids differ from {who} at token {i}: ours {ours[i : i + 5]} {tok.decode(ours[i : i + 5])!r} "
            f"vs {theirs[i : i + 5]} {tok.decode(theirs[i : i + 5])!r} (text starts {text[:40]!r})"
        )


# Python 3.11's tables for "assigned": the `regex` module and tiktoken's Rust regex disagree only on
# unassigned code points.
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))


NO_SURROGATES = st.characters(exclude_categories=("Cs",))


# Pieces that exercise every branch of GPT-2's pre-tokenization regex.
REGEX_PIECES = [
    " ",
    "  ",
    "   ",
    "     ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    " \n",
    "\n ",
    "\r",
    "\u00a0",
    "\u3000",
    "\x0b",
    "\x85",
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "'LL",
    "''",
    "'",
    "’s",
    "0",
    "7",
    "12",
    "345",
    "2024",
    "3.14",
    "١٢٣",
    "½",
    "Ⅻ",
    ".",
    ",",
    "!",
    "?!",
    "...",
    "—",
    "(",
    ")",
    "#",
    "<|",
    "|>",
    "@@",
    "a",
    "I",
    "The",
    "the",
    "don",
    "we",
    "naïve",
    "é",
    "e\u0301",
    "ß",
    "한국어",
    "안녕하세요",
    "ㅋㅋ",
    "Ωμέγα",
    "Мир",
    "日本語",
    "שלום",
    "مرحبا",
    "नमस्ते",
    "ภาษา",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👍🏽",
    "🇰🇷",
    "🇯🇵",
    "😀",
    "\u200d",
    "\ufe0f",
    "\u200b",
]


PIECED = st.lists(st.one_of(st.sampled_from(REGEX_PIECES), st.text(ASSIGNED, max_size=3)), max_size=25).map("".join)


TEXTS = st.one_of(st.text(ASSIGNED, max_size=60), PIECED)


WITH_SPECIAL = st.lists(
    st.one_of(TEXTS, st.sampled_from(["<|", "|>", "endoftext", "<|endoftext", "<|endoftext|"])), min_size=2, max_size=5
).map(ENDOFTEXT.join)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    text = join_documents(shakespeare("train"))[:600_000]
    tok = Tokenizer.train(text, 1500)
    folder = tok.save(tmp_path_factory.mktemp("trained_tok"))
    return tok, folder


@pytest.fixture(scope="module")
def trained_tiktoken(trained):
    import tiktoken
    import tiktoken.load

    tok, folder = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files directly, copy nothing into a cache
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(folder / "vocab.bpe"), encoder_json_file=str(folder / "encoder.json")
        )
    return tiktoken.Encoding(
        "trained", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: tok.eot_id}
    )


@pytest.fixture(scope="module")
def trained_hf(trained):
    "Hugging Face loaders of the saved files: transformers' GPT2TokenizerFast and three `tokenizers` constructions."
    from tokenizers import ByteLevelBPETokenizer, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import GPT2TokenizerFast

    _, folder = trained
    enc, bpe = str(folder / "encoder.json"), str(folder / "vocab.bpe")
    raw = HFTokenizer(models.BPE.from_file(enc, bpe))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    raw.decoder = decoders.ByteLevel()
    return {
        "transformers": GPT2TokenizerFast(vocab=enc, merges=bpe),  # NOT vocab_file=/merges_file= (ignored in v5)
        "tokenizers": raw,
        "bytelevel": ByteLevelBPETokenizer.from_file(enc, bpe),
        "from_str": HFTokenizer.from_str(raw.to_str()),
    }


def hf_ids(name, hf, text):
    return hf(text)["input_ids"] if name == "transformers" else hf.encode(text).ids


@pytest.fixture(scope="module")
def heldout_texts():
    valid = join_documents(shakespeare("valid"))
    return {
        "valid": valid,
        "code": stdlib_code(60_000, skip=1),
        "korean": "\n".join(KOREAN_SENTENCES),
        "mixed": varied_sections(seed=3, scale=0.2)["mixed"],
    }


LATIN1_KOREAN = st.one_of(
    st.characters(max_codepoint=0xFF, exclude_categories=("Cs", "Cn")),
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),
    st.characters(min_codepoint=0x3131, max_codepoint=0x318E, exclude_categories=("Cn",)),
    st.sampled_from(list(" \n\t'aeiousthlr")),
)


TRAINED_TEXTS = st.one_of(
    st.text(LATIN1_KOREAN, max_size=80),
    st.lists(
        st.sampled_from(
            [p for p in REGEX_PIECES if max(map(ord, p)) < 0x100]
            + ["thee", " thou", " hath", "'tis", "한국어", " 안녕"]
        ),
        max_size=25,
    ).map("".join),
)


@pytest.fixture(scope="module")
def small():
    return {
        b: Tokenizer.train("the cat sat on the mat; the dog sat on the log", 270, backend=b)
        for b in ("tiktoken", "python")
    }


def test_varied_text_is_big_and_varied(sections):
    total = sum(len(t.encode("utf-8")) for t in sections.values())
    assert total >= 1_000_000, total
    text = "".join(sections.values())
    for needle in [
        "\r\n",
        "\t",
        "  " * 8,
        "'ll",
        "'s",
        "2024",
        "한국어",
        "👨‍👩‍👧‍👦",
        "🏳️‍🌈",
        "👍🏽",
        "🇰🇷",
        "def ",
        "import ",
        "Ω",
        "Привет",
        "العربية",
        "भाषा",
        "ภาษา",
        "東京",
        "עברית",
    ]:
        assert needle in text, needle
    assert varied_sections(seed=0)["mixed"] == sections["mixed"]  # deterministic


def test_gpt2_basics(gpt2, ref):
    for tok in gpt2.values():
        assert tok.vocab_size == ref.n_vocab == 50257
        assert tok.eot_id == ref.eot_token == 50256
        assert len(tok.merges) == 50_000


@pytest.mark.parametrize("section", ["prose", "code", "korean", "scripts", "emoji", "whitespace", "mixed"])
def test_varied_text_matches_tiktoken(gpt2, ref, sections, backend, section):
    tok, text = gpt2[backend], sections[section]
    expected = ref.encode_ordinary(text)
    ids = tok.encode_ordinary(text)
    assert_same_ids(ids, expected, text, tok)
    assert tok.encode(text) == expected  # no special-token strings in the text: same ids
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_encode_batch_equals_encode(gpt2, sections, backend):
    tok = gpt2[backend]
    rng = random.Random(1)
    pieces = []
    for text in sections.values():
        at = 0
        while at < len(text):
            n = rng.randint(0, 3000)
            pieces.append(text[at : at + n])
            at += n
    pieces = pieces[::7] + ["", " ", "\n"]
    assert tok.encode_batch(pieces) == [tok.encode(p) for p in pieces]
    assert tok.encode_batch([]) == []
    assert tok.encode_ordinary_batch(pieces) == [tok.encode_ordinary(p) for p in pieces]
    assert tok.encode_ordinary_batch([]) == []


def test_with_backend_switches_encoder(gpt2, sections):
    tt = gpt2["python"].with_backend("tiktoken")
    assert tt.backend == "tiktoken" and gpt2["tiktoken"].with_backend("python").backend == "python"
    assert tt.encode(sections["mixed"]) == gpt2["python"].encode(sections["mixed"])


@fast(500)
@given(text=st.text(NO_SURROGATES, max_size=60))
def test_roundtrip_any_text(gpt2, text):
    for tok in gpt2.values():
        assert tok.decode(tok.encode_ordinary(text)) == text


@fast(1000)
@given(text=TEXTS)
def test_backends_agree_with_tiktoken(gpt2, ref, text):
    expected = ref.encode_ordinary(text)
    py, tt = gpt2["python"].encode_ordinary(text), gpt2["tiktoken"].encode_ordinary(text)
    assert py == tt == expected
    assert gpt2["python"].decode(py) == text


@fast(150)
@given(
    parts=st.lists(
        st.one_of(
            st.text(ASSIGNED, max_size=10),
            st.characters(categories=("Cs",)),
            st.sampled_from(["\ud83d\ude00", "\ud800", "\udfff", " ", "a"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_lone_surrogates_match_tiktoken(gpt2, ref, parts):
    text = "".join(parts)
    expected = ref.encode_ordinary(text)  # tiktoken replaces lone surrogates with U+FFFD
    for tok in gpt2.values():
        assert tok.encode_ordinary(text) == expected
        assert tok.encode(text) == ref.encode(text)
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert gpt2["python"].decode(expected) == fixed


def test_lone_surrogate_examples(gpt2, ref):
    for text in ["a\ud800b", "\udfff", "x \ud83d", "\ud83d\ude00 pair", "\ud800\ud800"]:
        for tok in gpt2.values():
            assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    assert gpt2["python"].encode_ordinary("a\ud800b") == gpt2["python"].encode_ordinary("a\ufffdb")


@fast(250)
@given(text=WITH_SPECIAL)
def test_special_tokens(gpt2, ref, text):
    assert ENDOFTEXT in text
    expected = ref.encode(text, allowed_special="all")
    for tok in gpt2.values():
        with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
            tok.encode(text)
        with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
            tok.encode_batch(["ok", text])
        assert tok.encode(text, allowed_special="all") == expected
        assert tok.encode(text, allowed_special={ENDOFTEXT}) == expected
        assert tok.encode_batch([text], allowed_special="all") == [expected]
        assert (
            tok.encode(text, disallowed_special=())
            == ref.encode(text, disallowed_special=())
            == tok.encode_ordinary(text)
            == ref.encode_ordinary(text)
        )
        assert tok.decode(expected) == text
    with pytest.raises(ValueError):
        ref.encode(text)  # tiktoken refuses it too


def test_special_token_ids(gpt2):
    for tok in gpt2.values():
        assert tok.encode("a<|endoftext|>b", allowed_special="all") == [64, 50256, 65]
        assert tok.encode_ordinary("<|endoftext|>") != [50256]


def test_trained_tokenizer_roundtrips_through_files(trained):
    tok, folder = trained
    assert tok.vocab_size == 1500 and tok.eot_id == 1499 and len(tok.merges) == 1500 - 257
    for backend in ("python", "tiktoken"):
        again = Tokenizer.load(folder, backend=backend)
        assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
        assert again.backend == backend and again.vocab_size == 1500
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    assert len(encoder) == 1500 and encoder[ENDOFTEXT] == 1499
    assert (folder / "vocab.bpe").read_text(encoding="utf-8").startswith("#version")


@pytest.mark.parametrize("name", ["valid", "code", "korean", "mixed"])
def test_trained_matches_tiktoken_and_hf(trained, trained_tiktoken, trained_hf, heldout_texts, name):
    tok, folder = trained
    text = heldout_texts[name]
    ours = tok.encode_ordinary(text)
    assert_same_ids(tok.with_backend("python").encode_ordinary(text), ours, text, tok, "our tiktoken backend")
    assert_same_ids(trained_tiktoken.encode_ordinary(text), ours, text, tok, "tiktoken's loader")
    for hf_name, hf in trained_hf.items():
        assert_same_ids(hf_ids(hf_name, hf, text), ours, text, tok, f"Hugging Face ({hf_name})")
    assert trained_hf["transformers"].decode(ours) == text == tok.decode(ours)


def test_trained_special_token_in_hf(trained, trained_tiktoken, trained_hf):
    tok, _ = trained
    text = "Exeunt.<|endoftext|>ACT II <|endoftext|>"
    ours = tok.encode(text, allowed_special="all")
    assert ours.count(tok.eot_id) == 2
    assert ours == trained_tiktoken.encode(text, allowed_special="all")
    assert ours == trained_hf["transformers"](text)["input_ids"]  # GPT2TokenizerFast treats it as special


@fast(600)
@given(text=TRAINED_TEXTS)
def test_trained_property_hf_tiktoken(trained, trained_tiktoken, trained_hf, text):
    tok, _ = trained
    ours = tok.encode_ordinary(text)
    assert tok.with_backend("python").encode_ordinary(text) == ours
    assert trained_tiktoken.encode_ordinary(text) == ours
    assert trained_hf["tokenizers"].encode(text).ids == ours
    assert trained_hf["transformers"](text)["input_ids"] == ours
    assert tok.decode(ours) == text


@pytest.mark.parametrize("bad", [123, None, 1.5, ["text"]])
def test_non_str_text(small, backend, bad):
    tok = small[backend]
    name = type(bad).__name__
    with pytest.raises(TypeError, match=f"expected text as str, got {name}"):
        tok.encode(bad)
    with pytest.raises(TypeError, match=f"expected text as str, got {name}"):
        tok.encode_ordinary(bad)
    with pytest.raises(TypeError, match=f"expected text as str, got {name}"):
        tok.encode_batch(["ok", bad])


def test_bytes_text_hints_decoding(small, backend):
    for encode in (small[backend].encode, small[backend].encode_ordinary):
        with pytest.raises(TypeError, match=r"got bytes \(decode bytes first, e\.g\. data\.decode\('utf-8'\)\)"):
            encode(b"abc")


def test_empty_text_encodes_to_no_ids(small, backend):
    assert small[backend].encode_ordinary("") == []


def test_encode_batch_needs_a_list(small, backend):
    with pytest.raises(TypeError, match=r"a batch must be a list of str; for one text use encode"):
        small[backend].encode_batch("one text")


def test_train_needs_str():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        Tokenizer.train(b"abc", 300)
    with pytest.raises(TypeError, match="text must be a str, got list"):
        Tokenizer.train(["abc"], 300)


def test_disallowed_special_message(small, backend):
    with pytest.raises(ValueError) as e:
        small[backend].encode("hi <|endoftext|> there")
    msg = str(e.value)
    for fragment in [
        "'<|endoftext|>'",
        "at character 3",
        "not allowed",
        "allowed_special=",
        "encode_ordinary",
        "disallowed_special=()",
    ]:
        assert fragment in msg, (fragment, msg)


def test_unknown_allowed_special(small, backend):
    with pytest.raises(ValueError, match=r"unknown special tokens \['<\|fim\|>'\]"):
        small[backend].encode("x", allowed_special={"<|fim|>"})


@pytest.mark.parametrize("ids", [[-1], [0, 270], [10**9], [5, -7, 3]])
def test_decode_out_of_range(small, backend, ids):
    tok = small[backend]
    assert tok.vocab_size == 270
    for fn in (tok.decode, tok.decode_bytes):
        with pytest.raises(ValueError, match=r"out of range for a vocabulary of 270 \(valid ids: 0\.\.269\)"):
            fn(ids)


def test_decode_out_of_range_gpt2(gpt2):
    with pytest.raises(ValueError, match=r"\[50257\] out of range.*0\.\.50256"):
        gpt2["python"].decode([50257])


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match=r"vocab_size=256 is too small.*256 byte tokens \+ 1 special token\(s\) = 257"):
        Tokenizer.train("abc", 256)
    with pytest.raises(ValueError, match=r"= 258"):
        Tokenizer.train("abc", 257, special_tokens=("<|a|>", "<|b|>"))
    with pytest.raises(ValueError, match=r"vocab_size=300.0 is too small"):
        Tokenizer.train("abc", 300.0)
    assert Tokenizer.train("abc", 256, special_tokens=()).vocab_size == 256
    with pytest.raises(ValueError, match="duplicate special tokens"):
        Tokenizer.train("abc", 300, special_tokens=(ENDOFTEXT, ENDOFTEXT))


def test_a_merge_of_tokens_no_earlier_merge_made_is_refused():
    with pytest.raises(ValueError, match=r"merge 0 \(b'ab', b'c'\) uses a token that no earlier merge made"):
        Tokenizer([(b"ab", b"c")])


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'rust'; choose one of \('tiktoken', 'python'\)"):
        Tokenizer([], backend="rust")


def test_special_tokens_must_look_special():
    with pytest.raises(ValueError, match=r"special token 'hello' must be written <\|name\|>"):
        Tokenizer([], {"hello": 256})
    with pytest.raises(ValueError, match=r"must be written <\|name\|>"):
        Tokenizer.train("abc", 300, special_tokens=("[PAD]",))


def test_special_token_ids_bounded_not_allocated():
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"has id 1000000000: .*at most MAX_TOKEN_ID = 16,777,215"):
        Tokenizer([], {ENDOFTEXT: 10**9})
    assert time.perf_counter() - started < 5
    with pytest.raises(ValueError, match=r"share id 300"):
        Tokenizer([], {"<|a|>": 300, "<|b|>": 300})
    with pytest.raises(ValueError, match=r"has id 3: special ids must be ints at least 256"):
        Tokenizer([], {ENDOFTEXT: 3})
    sparse = Tokenizer([], {ENDOFTEXT: 1_280}, backend="python")  # a small gap is allowed and costs no memory
    assert sparse.vocab_size == 1_281 and len(sparse._id_to_bytes) == 257
    assert sparse.decode(sparse.encode("h") + [1_280]) == "h" + ENDOFTEXT
    with pytest.raises(ValueError, match="out of range"):
        sparse.decode([300])


def test_long_chunk_encoding_is_fast_and_matches_tiktoken(gpt2, ref):
    text = without_spaces(300_000)
    tok = gpt2_tokenizer(backend="python")  # a fresh chunk cache
    started = time.perf_counter()
    ids = tok.encode_ordinary(text)
    seconds = time.perf_counter() - started
    assert seconds < 30, seconds
    assert_same_ids(ids, ref.encode_ordinary(text), text, tok, "tiktoken")
    assert tok.decode(ids) == text


def test_long_korean_chunk_matches_tiktoken(gpt2, ref):
    text = without_spaces(100_000, "korean")  # 300 KB of UTF-8 in one chunk
    assert len(pretokenize(text)) == 1
    ids = gpt2_tokenizer(backend="python").encode_ordinary(text)
    assert_same_ids(ids, ref.encode_ordinary(text), text, gpt2["python"], "tiktoken")


@pytest.mark.parametrize(
    "bad, kind", [(1.5, "float"), (2.0, "float"), ("3", "str"), (True, "bool"), (None, "NoneType"), (b"a", "bytes")]
)
def test_decode_refuses_non_integer_ids(small, backend, bad, kind):
    tok = small[backend]
    for fn in (tok.decode, tok.decode_bytes):
        with pytest.raises(ValueError, match=rf"at position 1 is a {kind}, not an integer"):
            fn([104, bad])


def test_decode_refuses_a_single_id(small):
    with pytest.raises(ValueError, match=r"sequence of token ids, got int 5; for a single id use decode\(\[id\]\)"):
        small["python"].decode(5)


def test_decode_accepts_integer_arrays(small):
    import numpy as np
    import torch

    tok = small["python"]
    ids = tok.encode("the cat sat")
    expected = tok.decode(ids)
    assert tok.decode(tuple(ids)) == expected
    assert tok.decode(np.array(ids, dtype=np.int64)) == expected
    assert tok.decode([np.int32(i) for i in ids]) == expected
    assert tok.decode(torch.tensor(ids)) == expected
    assert tok.decode(torch.tensor(ids, dtype=torch.int16)) == expected
    with pytest.raises(ValueError, match="is a float"):
        tok.decode(torch.tensor(ids, dtype=torch.float32))
    with pytest.raises(ValueError, match="is a float"):
        tok.decode(np.array(ids, dtype=np.float64))


@pytest.mark.parametrize(
    "text", [" " * 1_000_000, "\n" * 1_000_000, " \n\t" * 333_334], ids=["spaces", "newlines", "mixed"]
)
def test_a_million_whitespace_characters_encode_as_tiktokens_own_gpt2(gpt2, ref, backend, text):
    "encoder.py's regex overflows the Rust engine's stack here (a PanicException); the tiktoken form does not."
    assert gpt2[backend].encode(text) == ref.encode(text)


# --- raw bytes and character offsets, as tiktoken's own tests check them ---


def test_encode_bytes_examples_equal_tiktoken(gpt2, ref, backend):
    for data in [b" \xec\x8b\xa4\xed", b"hello \xec\x8b\xa4\xed", b"abc\x80", b"\xff\xfe", b"a\xc3", b" \n \x80", b""]:
        assert gpt2[backend].encode_bytes(data) == ref._encode_bytes(data), data
    for i in range(10):
        data = b"\x80" * i
        assert gpt2[backend].decode_bytes(gpt2[backend].encode_bytes(data)) == data


@given(data=st.binary(max_size=300))
@settings(max_examples=300, deadline=None, database=None)
def test_encode_bytes_roundtrips_and_equals_tiktoken(gpt2, ref, data):
    ours = gpt2["python"].encode_bytes(data)
    assert gpt2["python"].decode_bytes(ours) == data
    assert ours == ref._encode_bytes(data) == gpt2["tiktoken"].encode_bytes(data)


def test_encode_bytes_of_valid_text_is_encode_ordinary(gpt2, sections, backend):
    text = sections["korean"][:5000] + sections["code"][:5000]
    assert gpt2[backend].encode_bytes(text.encode("utf-8")) == gpt2[backend].encode_ordinary(text)


def test_encode_bytes_refuses_text(gpt2):
    with pytest.raises(TypeError, match="encode_bytes takes bytes, got str"):
        gpt2["python"].encode_bytes("text")


@given(text=st.text(max_size=200))
@settings(max_examples=300, deadline=None, database=None)
def test_decode_with_offsets_equals_tiktoken(gpt2, ref, text):
    ids = ref.encode_ordinary(text)  # lone surrogates become U+FFFD here, as tiktoken encodes them
    assert gpt2["python"].decode_with_offsets(ids) == ref.decode_with_offsets(ids)


def test_decode_with_offsets_on_varied_text(gpt2, ref, sections):
    for name, text in sections.items():
        ids = ref.encode_ordinary(text[:20_000])
        assert gpt2["python"].decode_with_offsets(ids) == ref.decode_with_offsets(ids), name
