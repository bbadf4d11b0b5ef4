"""BPE (`gpt2_edu.tokenizer.bpe`): the fast trainer and encoder equal to the naive ones of the chapter."""

import os
import random
import time

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt2_edu.corpus import join_documents, shakespeare
from gpt2_edu.tokenizer.bpe import (
    GPT2_PATTERN_ORIGINAL,
    encode_chunk,
    encode_chunk_naive,
    pretokenize,
    train_bpe,
    train_bpe_naive,
    vocab_from_merges,
)
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer
from tests.varied_text import KOREAN_SENTENCES, mixed_text, stdlib_code, varied_sections, without_spaces

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
def gpt2():
    return {"tiktoken": gpt2_tokenizer(backend="tiktoken"), "python": gpt2_tokenizer(backend="python")}


TRAIN_SAMPLES = {
    "ties": ("aaaa bbbb aaaa bbbb ab ba abab baba aaaaaaaa bbbbbbbb a b aa bb aaa bbb " * 3 + "ab cd ef gh", 40),
    "all_distinct": ("ab cd ef gh ij kl mn op", 12),
    "korean": (" ".join(KOREAN_SENTENCES) * 2, 80),
    "code": (stdlib_code(1)[:6000], 80),
    "prose": (join_documents(shakespeare("valid"))[:6000], 80),
    "mixed": (mixed_text(random.Random(7), 3000), 60),
}


def test_pretokenize_loses_nothing():
    text = "any text at all\t\r\n 한국어 👍"
    assert "".join(pretokenize(text)) == text


@pytest.mark.parametrize("name", TRAIN_SAMPLES)
def test_train_bpe_equals_naive(name):
    text, n = TRAIN_SAMPLES[name]
    merges = train_bpe(text, n)
    assert merges == train_bpe_naive(text, n)
    Tokenizer(merges)  # a valid merge list (no unknown parts, no duplicate tokens)


@fast(120)
@given(text=st.text(st.sampled_from(list("aab  b'1\nc한")), max_size=50), n=st.integers(0, 15))
def test_train_bpe_equals_naive_property(text, n):
    assert train_bpe(text, n) == train_bpe_naive(text, n)


def test_train_bpe_stops_when_no_pair_is_left():
    assert train_bpe("ab", 100) == [(b"a", b"b")]  # stops early rather than inventing merges


def test_train_runs_out_of_merges_warns():
    with pytest.warns(UserWarning, match="only supports"):
        tok = Tokenizer.train("ab ab", 300)
    assert tok.vocab_size == 256 + len(tok.merges) + 1 and tok.decode(tok.encode("ab ab")) == "ab ab"


def test_long_chunk_training_is_fast():
    text = without_spaces(1_000_000)
    assert len(pretokenize(text)) == 1
    started = time.perf_counter()
    merges = train_bpe(text, 300)
    seconds = time.perf_counter() - started
    assert len(merges) == 300 and seconds < 60, seconds
    Tokenizer(merges)  # a valid merge list


@pytest.mark.parametrize("script", ["latin", "korean"])
def test_long_chunk_training_equals_naive(script):
    text = without_spaces(4000, script)
    assert train_bpe(text, 60) == train_bpe_naive(text, 60)


@fast(300)
@given(text=st.text(st.sampled_from(list("aaabbt hé한")), max_size=200))
def test_encode_chunk_equals_naive(gpt2, text):
    chunk = text.encode("utf-8")
    assert encode_chunk(chunk, gpt2["python"].ranks) == encode_chunk_naive(chunk, gpt2["python"].ranks)


def test_encode_chunk_equals_naive_on_a_trained_vocab():
    vocab = vocab_from_merges(train_bpe(without_spaces(5000), 200))
    ranks = {token: token_id for token_id, token in enumerate(vocab)}
    for text in [without_spaces(3000)[1000:], "aaaaaaaaaaaaa", "the" * 50, ""]:
        assert encode_chunk(text.encode(), ranks) == encode_chunk_naive(text.encode(), ranks)


ADVERSARIAL = {
    "a million spaces": " " * 1_000_000,
    "a million newlines": "\n" * 1_000_000,
    "mixed whitespace": " \t\n\r\x0b\x0c\u00a0\u2003" * 20_000,
    "whitespace before words": "".join(" " * n + "w" + "\n" * n for n in range(200)),
    "digits": "1234567890 " * 1000 + "9" * 100_000,
    "apostrophes": "'s 'll 've 're 'd 'm 't '' ''' 'S 'LL x's it's" * 2000,
    "trailing runs": "end   \n\n\t  ",
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_the_pattern_cuts_the_same_chunks_as_encoder_pys(name):
    "GPT2_PATTERN (tiktoken's form, no backtracking) equals OpenAI's original regex, chunk for chunk."
    text = ADVERSARIAL[name]
    assert pretokenize(text) == regex.findall(GPT2_PATTERN_ORIGINAL, text)


def test_the_pattern_cuts_the_same_chunks_on_varied_text():
    for name, text in varied_sections(scale=0.2).items():
        assert pretokenize(text) == regex.findall(GPT2_PATTERN_ORIGINAL, text), name
