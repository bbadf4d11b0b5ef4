"""The 8-gram Bloom filter: no false negatives, the false-positive rate it was designed for, and overlap = the exact
answer."""

import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from gpt2_edu.studies.memorization import (
    BloomFilter,
    bloom_size,
    ngram_filter,
    ngrams,
    normalise,
    overlap,
    split_overlap,
)

WORDS = [f"w{i}" for i in range(5000)]


def _strings(n, seed, length=8):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(length)) for _ in range(n)]


def _texts(n, seed, length=60):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS[:300]) for _ in range(length)) for _ in range(n)]


@pytest.mark.parametrize("fp_rate", [1e-8, 0.01])
def test_no_false_negatives(fp_rate):
    added = _strings(30_000, seed=1)
    seen = BloomFilter(len(added), fp_rate)
    seen.add(added[:10_000])
    seen.add(added[10_000:])  # added in two goes, as a corpus may be
    assert seen.contains(added).all()
    assert all(item in seen for item in added[:200])


@pytest.mark.parametrize("fp_rate", [0.05, 0.01, 0.001])
def test_measured_false_positive_rate_is_within_2x_of_the_design(fp_rate):
    added = set(_strings(20_000, seed=2))
    seen = BloomFilter(len(added), fp_rate)
    seen.add(sorted(added))
    others = [item for item in _strings(300_000, seed=3) if item not in added]
    measured = seen.contains(others).mean()
    assert fp_rate / 2 <= measured <= 2 * fp_rate, (fp_rate, measured)
    assert seen.expected_fp_rate() == pytest.approx(fp_rate, rel=0.2)


def test_sizing_follows_the_formula():
    bits, hashes = bloom_size(1000, 1e-8)
    assert bits == int(np.ceil(-1000 * np.log(1e-8) / np.log(2) ** 2)) and hashes == 27
    with pytest.raises(ValueError, match="between 0 and 1"):
        bloom_size(10, 1.5)
    with pytest.raises(ValueError, match="at least 1 string"):
        bloom_size(0, 0.01)


def test_overfilling_is_refused():
    seen = BloomFilter(2, 0.01)
    seen.add(["a b", "c d"])
    with pytest.raises(ValueError, match="capacity of 2"):
        seen.add(["e f"])


def _exact_shares(texts, training, n=8):
    "An independent computation: sets of word tuples."

    def grams(text):
        words = re.findall(r"[^\W_]+", text.lower())
        return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]

    train = {gram for text in training for gram in grams(text)}
    return [sum(gram in train for gram in grams(text)) / len(grams(text)) for text in texts]


def test_overlap_equals_the_exact_set_computation():
    training = _texts(40, seed=4)
    rng = random.Random(5)
    tests = []
    for text in _texts(30, seed=6):  # test texts with pieces of training text pasted in
        words = text.split()
        piece = rng.choice(training).split()[: rng.randrange(0, 30)]
        tests.append(" ".join(words[:20] + [w.upper() for w in piece] + words[20:]))  # case must not matter
    exact_set = {gram for text in training for gram in ngrams(normalise(text))}
    expected = _exact_shares(tests, training)
    assert overlap(tests, exact_set) == pytest.approx(expected)
    assert overlap(tests, ngram_filter(training)) == pytest.approx(expected)  # at 1e-8: no false positive here
    assert any(0 < share < 1 for share in expected)  # the test data exercises both
    pooled = overlap(tests, exact_set, pooled=True)
    counts = [len(ngrams(normalise(text))) for text in tests]
    assert pooled == pytest.approx(sum(share * count for share, count in zip(expected, counts)) / sum(counts))
    assert np.isnan(overlap(["too short"], exact_set)[0])


def test_normalisation_is_the_papers():
    assert normalise("O Romeo, ROMEO!  wherefore\nart thou_Romeo?") == [
        "o",
        "romeo",
        "romeo",
        "wherefore",
        "art",
        "thou",
        "romeo",
    ]
    assert ngrams(["a", "b", "c"], 2) == ["a b", "b c"] and ngrams(["a"], 2) == []


def test_the_filter_is_the_same_in_every_process():
    "Bit positions come from BLAKE2b, not Python's salted hash(): two processes build identical filters."
    code = (
        "from gpt2_edu.studies.memorization import ngram_filter; import hashlib; "
        "print(hashlib.sha256(ngram_filter(['to be or not to be that is the question whether tis nobler']).array"
        ".tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_split_overlap_on_a_corpus_of_your_own(tmp_path):
    shared = "the quality of mercy is not strained it droppeth as the gentle rain from heaven"
    for i in range(24):  # 20+ documents: whole documents are held out
        text = " ".join(_texts(1, seed=100 + i)[0].split()[:40]) + f" {shared}"  # every document quotes it
        (tmp_path / f"doc{i:02}.txt").write_text(text)
    result = split_overlap(tmp_path)
    for split in ("valid", "test"):
        docs = result[split]["documents"]
        assert docs and all(0 <= share <= 1 for share in docs.values())
    shares = [share for split in ("valid", "test") for share in result[split]["documents"].values()]
    assert max(shares) > 0  # a held-out document that quotes the shared line is found
