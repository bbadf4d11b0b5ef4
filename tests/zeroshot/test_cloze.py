"""Cloze tests (gpt2_edu.cloze): the Children's Book Test's format and errors, the paper's scoring, the in-domain
generator."""

from collections import Counter
from pathlib import Path

import pytest

from gpt2_edu.corpus import Document, load_corpus
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.zeroshot.cloze import (
    GAP,
    Cloze,
    ClozeExample,
    last_word_task,
    make_cloze,
    make_last_word,
    random_baseline,
    read_cbt,
    unigram_baseline,
    word_counts,
)
from gpt2_edu.zeroshot.engine import loglikelihood
from gpt2_edu.zeroshot.task import TaskFormatError

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "zeroshot"
NE_FILE = FIXTURES / "cbtest_NE_test_sample.txt"
CN_FILE = FIXTURES / "cbtest_CN_test_sample.txt"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(NE_FILE.read_text() + CN_FILE.read_text(), vocab_size=400)


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=64, noise=0.3, n_embd=16)


def test_reads_both_fixtures():
    ne = read_cbt(NE_FILE)
    cn = read_cbt(CN_FILE)
    assert [len(ne), len(cn)] == [2, 2]
    first = ne[0]
    assert first.answer == "Rosamund" and first.answer in first.candidates and len(first.candidates) == 10
    assert first.query.startswith("`` Quick , before the giant wakes") and first.query.count(GAP) == 1
    assert first.context.startswith("Once upon a time") and first.context.endswith("above the door . ")
    assert "20 Rosamund" not in first.context  # the line numbers are not part of the text
    assert cn[1].answer == "milk" and cn[1].filled("milk") == "She set the jug of milk on the table beside the bread ."


def write_question(tmp_path, query_line=None, n_lines=20, tail="\n"):
    "A one-question CBT file: `n_lines` context lines and `query_line` (default: a good one)."
    lines = [f"{i} Sentence number {i} about Tom and Ann ." for i in range(1, n_lines + 1)]
    if query_line is None:
        query_line = "21 Then XXXXX went home .\tTom\t\t" + "|".join(["Tom", "Ann"] + [f"N{i}" for i in range(8)])
    lines.append(query_line)
    path = tmp_path / "cbtest_NE_test_2500ex.txt"
    path.write_text("\n".join(lines) + tail)
    return path


CANDIDATES = "|".join(["Tom", "Ann"] + [f"N{i}" for i in range(8)])


@pytest.mark.parametrize(
    "query_line, line, message",
    [
        ("21 Then XXXXX went home .\tTom", 21, "tab-separated fields, not 3"),  # no candidates
        ("21 Then XXXXX went home .", 21, "tab-separated fields, not 3"),  # no tabs at all
        (f"21 Then XXXXX went home .\tBob\t\t{CANDIDATES}", 21, "'Bob' is not among the candidates"),
        ("21 Then XXXXX went home .\tTom\t\tTom|Ann|Bob", 21, "3 candidates"),
        (f"21 Then XXXXX went home .\tTom\t\t{CANDIDATES}|N9", 21, "11 candidates"),
        ("21 Then XXXXX went home .\tTom\t\tTom||N1|N2|N3|N4|N5|N6|N7|N8", 21, "not 10 non-empty"),
        (f"21 Then Tom went home .\tTom\t\t{CANDIDATES}", 21, "0 gaps"),
        (f"21 XXXXX and XXXXX went .\tTom\t\t{CANDIDATES}", 21, "2 gaps"),
        (f"22 Then XXXXX went home .\tTom\t\t{CANDIDATES}", 21, "expected line 21"),
        (f"Then XXXXX went home .\tTom\t\t{CANDIDATES}", 21, "expected line 21"),
    ],
)
def test_bad_query_lines_name_the_file_and_line(tmp_path, query_line, line, message):
    path = write_question(tmp_path, query_line)
    with pytest.raises(TaskFormatError, match=message) as error:
        read_cbt(path)
    assert f"{path}, line {line}:" in str(error.value)


def test_bad_structure_is_reported(tmp_path):
    path = write_question(tmp_path, n_lines=15, query_line="")  # blank line after 15 context lines
    with pytest.raises(TaskFormatError, match=r"line 16: the question ends after 15 lines"):
        read_cbt(path)
    path.write_text("1 One .\n3 Three .\n")  # a number skipped
    with pytest.raises(TaskFormatError, match=r"line 2: expected line 2 of a question"):
        read_cbt(path)
    path.write_text("".join(f"{i} Line .\n" for i in range(1, 8)))  # the question stops at a blank line
    with pytest.raises(TaskFormatError, match="line 8: the question ends after 7 lines"):
        read_cbt(path)
    path.write_text("\n".join(f"{i} Line ." for i in range(1, 8)))  # the file stops mid-question
    with pytest.raises(TaskFormatError, match="ends in the middle of a question"):
        read_cbt(path)
    path.write_text("\n\n")
    with pytest.raises(TaskFormatError, match="holds no CBT question"):
        read_cbt(path)
    path.write_bytes(b"1 caf\xe9\n")
    with pytest.raises(TaskFormatError, match="line 1: bytes that are not UTF-8"):
        read_cbt(path)
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        read_cbt(tmp_path / "missing.txt")


def test_a_good_question_parses_with_or_without_a_final_newline(tmp_path):
    assert read_cbt(write_question(tmp_path, tail=""))[0].answer == "Tom"
    assert read_cbt(write_question(tmp_path, tail="\n\n\n"))[0].candidates[:2] == ("Tom", "Ann")


def test_requests_are_context_plus_query_prefix_and_candidate_plus_rest():
    example = read_cbt(NE_FILE)[0]
    requests = Cloze([example]).requests()
    before, after = example.query.split(GAP)
    assert requests == [(example.context + before, candidate + after) for candidate in example.candidates]
    assert requests[0][1] == "Peter , and together they ran down the stair ."


def test_cbt_scoring_equals_brute_force_per_candidate(model, tok):
    for path in (NE_FILE, CN_FILE):
        task = Cloze.load(path)
        results = loglikelihood(model, tok, task.requests())
        right = 0
        for example in task.examples:
            before, after = example.query.split(GAP)
            one_by_one = [
                loglikelihood(model, tok, [(example.context + before, candidate + after)])[0][0]
                for candidate in example.candidates
            ]
            shared = [logprob for logprob, _ in results[: len(example.candidates)]]
            results = results[len(example.candidates) :]
            assert shared == pytest.approx(one_by_one, abs=1e-4)
            best = max(range(10), key=one_by_one.__getitem__)
            right += example.candidates[best] == example.answer
        assert task.evaluate(model, tok)["acc"] == right / len(task.examples)


def test_score_picks_the_most_probable_candidate_and_normalises_by_length():
    examples = [ClozeExample("c ", "a XXXXX b", "yy", ("x", "yy")), ClozeExample("c ", "XXXXX", "p", ("p", "qqqq"))]
    task = Cloze(examples)
    # continuations: "x b" (3 chars), "yy b" (4), "p" (1), "qqqq" (4)
    results = [(-3.0, False), (-3.2, False), (-2.0, False), (-9.0, False)]
    assert task.score(results) == {"acc": 0.5, "acc_norm": 1.0}  # per character: -1 vs -0.8, -2 vs -2.25


def test_baselines_on_a_hand_example():
    examples = [
        ClozeExample("", "the XXXXX sat", "cat", ("cat", "dog")),
        ClozeExample("", "a XXXXX ran", "dog", ("cat", "dog", "emu")),
        ClozeExample("", "XXXXX!", "Emu", ("Emu", "gnu")),
    ]
    counts = word_counts([Document("a", "The cat, the CAT and the cat; a dog.")])
    assert counts == Counter({"the": 3, "cat": 3, "and": 1, "a": 1, "dog": 1})
    assert random_baseline(examples) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert unigram_baseline(examples, counts) == pytest.approx((1 + 0 + 1 / 2) / 3)
    assert unigram_baseline(examples, Counter({"gnu": 1, "dog": 5})) == pytest.approx((0 + 1 + 0) / 3)


@pytest.fixture(scope="module")
def generated():
    return {"NE": make_cloze("NE", 30, seed=1), "CN": make_cloze("CN", 30, seed=1), "last": make_last_word(30, seed=1)}


def test_in_domain_questions_are_deterministic_and_well_formed(generated):
    assert make_cloze("NE", 30, seed=1) == generated["NE"]
    assert make_cloze("CN", 30, seed=1) == generated["CN"]
    assert make_last_word(30, seed=1) == generated["last"]
    assert make_cloze("NE", 30, seed=2) != generated["NE"]
    for kind in ("NE", "CN"):
        for example in generated[kind]:
            assert len(example.candidates) == 10 and len(set(example.candidates)) == 10
            assert example.answer in example.candidates and example.query.count(GAP) == 1
    assert all(example.answer[0].isupper() for example in generated["NE"])
    assert all(example.answer.islower() for example in generated["CN"])
    for example in generated["last"]:
        assert example.answer in example.candidates and example.query.endswith(GAP)
        assert example.answer in example.context
    texts = last_word_task(generated["last"]).texts
    assert texts[0].endswith(" " + generated["last"][0].answer)


def test_in_domain_questions_come_from_the_test_plays_only(generated):
    test_text = "\n".join(doc.text for doc in load_corpus("shakespeare", "test"))
    train_names = {doc.name for doc in load_corpus("shakespeare", "train")}
    assert not train_names & {doc.name for doc in load_corpus("shakespeare", "test")}
    for examples in generated.values():
        for example in examples:
            assert example.context in test_text
            assert example.filled(example.answer) in test_text


def test_generator_uses_the_plays_it_is_given_and_fails_clearly():
    play = Document(
        "toy",
        "SCENE I. A room.\n\n"
        + "\n".join(
            f"ALICE:\nI saw the cat and the dog, Bob.\nBOB:\nAlice, the hat of the mat of the rat line {i}."
            for i in range(20)
        ),
    )
    with pytest.raises(ValueError, match="fewer than n=5"):
        make_cloze("CN", 5, docs=[play])  # only a few distinct nouns: no 10 candidates
    with pytest.raises(ValueError, match="choose 'NE'"):
        make_cloze("verbs", 5)
    with pytest.raises(ValueError, match="last-word questions, fewer than n=10000"):
        make_last_word(10_000)


def test_cbt_logprobs_equal_lm_evaluation_harness(tmp_path, lively_gpt, hflm):
    "Per candidate, our log-probabilities equal those of lm-evaluation-harness 0.4.13's HF model on the same weights."
    lm_eval = pytest.importorskip("lm_eval")  # in the dev extra: present wherever the suite runs
    assert lm_eval.__version__ == "0.4.13"
    from lm_eval.api.instance import Instance

    from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer

    tok = gpt2_tokenizer()
    model = lively_gpt(tok.vocab_size, n_positions=32, noise=0.05)
    harness = hflm(model, tok, tmp_path)
    requests = Cloze.load(NE_FILE).requests() + Cloze.load(CN_FILE).requests()
    ours = loglikelihood(model, tok, requests)
    theirs = harness.loglikelihood(
        [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(requests)], disable_tqdm=True
    )
    assert [logprob for logprob, _ in ours] == pytest.approx([logprob for logprob, _ in theirs], abs=1e-4)
