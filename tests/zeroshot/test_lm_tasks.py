"""Language-modelling tasks (`gpt2_edu.zeroshot.lm_tasks`): WikiText, PTB, 1BW, enwik8, text8: loaders, de-tokenizers,
metrics."""

import json
import math
import random
from pathlib import Path

import pytest
import torch

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.zeroshot.engine import loglikelihood_rolling
from gpt2_edu.zeroshot.lm_tasks import (
    Enwik8,
    OneBillionWord,
    PennTreebank,
    Text8,
    WikiText,
    onebw_detokenize,
    onebw_retokenize,
    ptb_detokenize,
    ptb_retokenize,
    wikitext_detokenize,
    wikitext_pages,
)
from gpt2_edu.zeroshot.task import TaskFormatError

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "zeroshot"


TEXT = (
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
    "arrows of outrageous fortune, or to take arms against a sea of troubles, and by opposing end them. "
) * 3


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(TEXT, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=16, noise=0.3, n_embd=16)


PTB = FIXTURES / "ptb.test.txt"


ONEBW = FIXTURES / "news.en.heldout-00000-of-00050"


ENWIK8 = FIXTURES / "enwik8"


TEXT8 = FIXTURES / "text8"


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.fixture(scope="module")
def tiny():
    text = PTB.read_text() + ONEBW.read_text() + TEXT8.read_text()
    tok = Tokenizer.train(text, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    return model.eval(), tok


def test_wikitext_pages_and_detokenizer():
    pages = wikitext_pages(FIXTURES / "wiki.test.raw")
    assert len(pages) == 3
    assert pages[0].split("\n")[0] == " = Harbour Lane Bridge = "
    assert " = = History = = " in pages[0] and " = = = Later repairs = = = " in pages[0]
    text = wikitext_detokenize(pages[0])
    assert "62.5 metres (205 ft) long" in text and "£ 14,200, nearly" in text
    assert "== History ==" in text and "=== Later repairs ===" in text
    assert "school-master" in wikitext_detokenize(pages[1]) and "father's books" in wikitext_detokenize(pages[1])


def test_wikitext_metrics_use_original_words(model, tok):
    task = WikiText.load(FIXTURES / "wiki.test.raw")
    logprobs = loglikelihood_rolling(model, tok, task.requests())
    metrics = task.score(logprobs)
    words = sum(len(page.split()) + 2 for page in task.pages)  # re.split(r"\s+") also counts the two ends
    assert metrics["word_perplexity"] == pytest.approx(math.exp(-sum(logprobs) / words))
    n_bytes = sum(len(page.encode()) for page in task.pages)
    assert metrics["bits_per_byte"] == pytest.approx(-sum(logprobs) / n_bytes / math.log(2))
    assert task.evaluate(model, tok) == pytest.approx(metrics)


def test_wikitext_jsonl_pages(tmp_path):
    pages = wikitext_pages(FIXTURES / "wiki.test.raw")
    path = tmp_path / "wikitext_test.jsonl"
    path.write_text("".join(json.dumps({"page": page}) + "\n" for page in pages))
    assert WikiText.load(path).pages == pages


def test_wikitext_malformed_files(tmp_path):
    path = tmp_path / "wiki.test.raw"
    path.write_text(" \n Some text before any title . \n = Title = \n")
    with pytest.raises(TaskFormatError, match="wiki.test.raw, line 2: text before the first ' = Title = ' heading"):
        WikiText.load(path)
    path.write_text(" \n = = Only a section = = \n text \n")
    with pytest.raises(TaskFormatError, match="line 2: text before the first"):
        WikiText.load(path)
    path.write_text(" \n \n")
    with pytest.raises(TaskFormatError, match="no ' = Title = ' heading"):
        WikiText.load(path)


def test_ptb_loads_the_fixture_and_counts_words_plus_one_eos_per_line():
    ptb = PennTreebank.load(PTB)
    lines = PTB.read_text().split("\n")[:-1]
    assert ptb.sentences == lines
    assert len(ptb.sentences) == 26
    words = sum(len(line.split()) for line in lines)
    assert words == 520  # `wc -w` of the fixture
    assert ptb.word_count() == words + 26
    assert PennTreebank.load(PTB, limit=2).word_count() == 6 + 1 + 37 + 1
    assert PennTreebank.load(PTB, detokenized=False).word_count() == ptb.word_count()  # the unit never changes


def test_ptb_request_is_one_text_of_detokenized_sentences():
    ptb = PennTreebank.load(PTB, limit=2)
    assert ptb.requests() == [
        "no it wasn't black monday\nbut while the new york stock exchange didn't fall apart "
        "friday as the dow jones industrial average plunged N points most of it in the final "
        "hour it barely managed to stay this side of chaos\n"
    ]
    raw = PennTreebank.load(PTB, limit=2, detokenized=False)
    assert raw.requests() == ["".join(line + "\n" for line in raw.sentences)]


def test_onebw_loads_the_fixture_one_request_per_sentence():
    onebw = OneBillionWord.load(ONEBW)
    assert len(onebw.sentences) == 20
    assert onebw.word_count() == 362 + 20  # `wc -w` of the fixture, plus one </S> per sentence
    assert len(onebw.requests()) == 20
    assert onebw.requests()[1] == (
        "\"We don't know yet whether the outbreak has peaked,\" said Dr. Anne Schuchat, the agency's deputy director.\n"
    )


def test_enwik8_takes_the_last_test_size_bytes_then_the_limit():
    data = ENWIK8.read_bytes()
    assert Enwik8.load(ENWIK8).text.encode("utf-8") == data  # shorter than 5M: the whole file
    assert Enwik8.load(ENWIK8, test_size=500).text.encode("utf-8") == data[-500:]
    assert Enwik8.load(ENWIK8, test_size=500, limit=100).text.encode("utf-8") == data[-500:-400]


def test_enwik8_drops_only_the_bytes_of_characters_cut_at_either_end(tmp_path):
    path = write(tmp_path, "enwik8", "aé°b".encode())  # a, é (2 bytes), ° (2 bytes), b
    assert Enwik8.load(path, limit=2).text == "a"  # é cut after its first byte
    assert Enwik8.load(path, test_size=4).text == "°b"  # é's second byte dropped at the start
    assert Enwik8.load(path, test_size=4).size() == 3
    assert Enwik8.load(path).size() == 6


def test_text8_takes_the_last_test_size_characters_then_the_limit():
    text = TEXT8.read_text()
    assert Text8.load(TEXT8).text == text
    assert Text8.load(TEXT8, test_size=300, limit=50).text == text[-300:-250]
    assert Text8.load(TEXT8, limit=10).size() == 10


@pytest.mark.parametrize(
    "content, message",
    [
        (" fine line \nno edge spaces\n", "line 2: no space at the start and end"),
        (" fine line \n The Capital \n", "line 2: the word 'The' has capitals"),
        (" fine line \n\n more \n", "line 2: an empty line"),
        ("", "is empty"),
        (b" ok \n caf\xe9 \n", "line 2: bytes that are not UTF-8"),
    ],
)
def test_ptb_bad_files(tmp_path, content, message):
    path = write(tmp_path, "ptb.test.txt", content)
    with pytest.raises(TaskFormatError, match=message) as error:
        PennTreebank.load(path)
    assert "ptb.test.txt" in str(error.value)


def test_ptb_numbers_and_unk_are_allowed(tmp_path):
    path = write(tmp_path, "ptb.test.txt", " it rose N N to $ N <unk> \n")
    assert PennTreebank.load(path).word_count() == 8 + 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("Fine .\n Leading space .\n", "line 2: spaces at the start or end"),
        ("Fine .\nA\ttab .\n", "line 2: a tab"),
        ("Fine .\n\nMore .\n", "line 2: an empty line"),
        ("\n\n", "is empty"),
    ],
)
def test_onebw_bad_files(tmp_path, content, message):
    path = write(tmp_path, "news.en.heldout-00000-of-00050", content)
    with pytest.raises(TaskFormatError, match=message) as error:
        OneBillionWord.load(path)
    assert "news.en.heldout-00000-of-00050" in str(error.value)


def test_enwik8_bytes_that_are_not_utf8_give_the_offset(tmp_path):
    path = write(tmp_path, "enwik8", b"<page>ok\xff\xfe rest</page>")
    with pytest.raises(TaskFormatError, match=r"enwik8, byte 8: not UTF-8"):
        Enwik8.load(path)
    with pytest.raises(TaskFormatError, match=r"enwik8, byte 8: not UTF-8"):  # the offset counts from the file's start
        Enwik8.load(path, test_size=16)
    with pytest.raises(TaskFormatError, match="is empty"):
        Enwik8.load(write(tmp_path, "empty", b""))


@pytest.mark.parametrize("content, offset", [("abc Def", 4), ("abc def\n", 7), ("abc  def", 3), ("abc 1", 4)])
def test_text8_characters_outside_a_z_give_the_offset(tmp_path, content, offset):
    path = write(tmp_path, "text8", content)
    with pytest.raises(TaskFormatError, match=rf"text8, character {offset}: .* only the letters a-z"):
        Text8.load(path)


def test_text8_empty_file(tmp_path):
    with pytest.raises(TaskFormatError, match="is empty"):
        Text8.load(write(tmp_path, "text8", ""))


@pytest.mark.parametrize("task", [PennTreebank, OneBillionWord, Enwik8, Text8])
def test_missing_file(tmp_path, task):
    with pytest.raises(FileNotFoundError, match="nothere"):
        task.load(tmp_path / "nothere")


def test_ptb_detokenizer_examples():
    assert ptb_detokenize(" no it was n't black monday ") == "no it wasn't black monday"
    assert ptb_detokenize(" standard & poor 's 500-stock index ") == "standard & poor's 500-stock index"
    assert ptb_detokenize(" a $ N billion buy-out ") == "a $N billion buy-out"
    assert ptb_detokenize(" capital cities\\/abc ") == "capital cities/abc"
    assert (
        ptb_detokenize(" they 're going and we 've got to who 'd seen ") == "they're going and we've got to who'd seen"
    )
    assert ptb_detokenize(" 's at the start ") == "'s at the start"


def test_ptb_detokenizer_is_invertible_on_every_fixture_line_and_on_random_lines():
    for line in PennTreebank.load(PTB).sentences:
        assert ptb_retokenize(ptb_detokenize(line)) == line
    words = [
        "the",
        "n't",
        "'s",
        "'re",
        "'ve",
        "'ll",
        "'d",
        "'m",
        "$",
        "N",
        "<unk>",
        "a\\/b",
        "ca",
        "do",
        "&",
        "500-stock",
        "o'brien",
        "u.s.",
        "'",
        "#",
    ]
    rng = random.Random(0)
    for _ in range(2000):
        line = " " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + " "
        assert ptb_retokenize(ptb_detokenize(line)) == line, line


def test_onebw_detokenizer_examples():
    assert onebw_detokenize('He said , " I do n\'t know . "') == 'He said, "I don\'t know."'
    assert (
        onebw_detokenize("The ministry ( which oversees it ) said so .") == "The ministry (which oversees it) said so."
    )
    assert onebw_detokenize("It cost $ 1.2 million , or 30 % more ; why ?") == "It cost $1.2 million, or 30% more; why?"
    assert onebw_detokenize('The bank \'s chief said : " real progress " .') == (
        'The bank\'s chief said: "real progress".'
    )


def test_onebw_detokenizer_is_invertible_on_every_fixture_line():
    for line in OneBillionWord.load(ONEBW).sentences:
        assert onebw_retokenize(onebw_detokenize(line)) == line


def test_onebw_detokenizer_is_not_invertible_for_a_final_abbreviation():
    "The documented limit: a word ending the sentence with its own dot comes back split."
    line = "He moved to the U.S."
    assert onebw_detokenize(line) == line
    assert onebw_retokenize(line) == "He moved to the U.S ."


def test_word_perplexity_by_hand():
    ptb = PennTreebank([" a b c ", " d e "])  # 5 words + 2 end-of-sentence = 7
    assert ptb.word_count() == 7
    scores = ptb.score([-14.0])
    assert scores["words"] == 7
    assert scores["word_perplexity"] == pytest.approx(math.exp(2.0))
    onebw = OneBillionWord(["A b .", "C ."])  # 3 + 2 words, 2 </S>
    assert onebw.score([-3.5, -3.5])["word_perplexity"] == pytest.approx(math.exp(1.0))


def test_bits_per_byte_and_character_by_hand():
    enwik8 = Enwik8("é!")  # 3 bytes, 2 characters
    assert enwik8.size() == 3
    assert enwik8.score([-3 * math.log(2)])["bits_per_byte"] == pytest.approx(1.0)
    text8 = Text8("ab cd")
    assert text8.score([-10 * math.log(2)]) == {"bits_per_character": pytest.approx(2.0), "characters": 5}


def test_metrics_equal_lm_evaluation_harness_aggregations():
    "The harness has none of these tasks; its aggregation functions are the same arithmetic as our metrics."
    metrics = pytest.importorskip("lm_eval.api.metrics")
    ptb = PennTreebank.load(PTB)
    assert ptb.score([-1234.5])["word_perplexity"] == pytest.approx(
        metrics.weighted_perplexity([(-1234.5, ptb.word_count())])
    )
    onebw = OneBillionWord.load(ONEBW, limit=3)
    results = [-50.0, -61.5, -40.25]
    counts = [len(line.split()) + 1 for line in onebw.sentences]
    assert onebw.score(results)["word_perplexity"] == pytest.approx(
        metrics.weighted_perplexity(list(zip(results, counts)))
    )
    enwik8 = Enwik8.load(ENWIK8)
    assert enwik8.score([-2000.0])["bits_per_byte"] == pytest.approx(metrics.bits_per_byte([(-2000.0, enwik8.size())]))


def test_lm_evaluation_harness_has_no_such_tasks():
    "If a later harness adds one of these tasks, this test says so: then cross-check against it."
    lm_eval = pytest.importorskip("lm_eval")
    names = {path.name for path in (Path(lm_eval.__file__).parent / "tasks").iterdir()}
    assert not names & {"ptb", "penn_treebank", "lm1b", "one_billion_word", "enwik8", "text8"}


@pytest.mark.parametrize(
    "task",
    [
        PennTreebank.load(PTB, limit=3),
        OneBillionWord.load(ONEBW, limit=3),
        Enwik8.load(ENWIK8, limit=300),
        Text8.load(TEXT8, limit=300),
    ],
)
def test_evaluate_is_score_of_the_engine_on_the_requests(tiny, task):
    model, tok = tiny
    expected = task.score(loglikelihood_rolling(model, tok, task.requests()))
    assert task.evaluate(model, tok, batch_size=4) == pytest.approx(expected, rel=1e-5)
    metric = next(iter(expected))
    assert 0 < expected[metric] < math.inf


def test_text8_offset_counts_from_the_file_start(tmp_path):
    path = write(tmp_path, "text8", "abc def ghi Jkl")
    with pytest.raises(TaskFormatError, match="text8, character 12: b'J'"):
        Text8.load(path, test_size=6)


@pytest.mark.parametrize("task, path", [(PennTreebank, PTB), (OneBillionWord, ONEBW), (Enwik8, ENWIK8), (Text8, TEXT8)])
@pytest.mark.parametrize("limit", [0, -3, 2.5])
def test_a_limit_that_leaves_nothing_is_refused(task, path, limit):
    with pytest.raises(ValueError, match=f"limit={limit!r} must be a positive integer"):
        task.load(path, limit=limit)


RELEASE_PAGES = Path(__file__).parents[2] / "nbs" / "data" / "releases" / "wikitext-2" / "wiki.test.tokens"


def test_real_wikitext_pages_read_and_detokenize_as_the_harness_does():
    preprocess = pytest.importorskip("lm_eval.tasks.wikitext.preprocess_wikitext")
    task = WikiText.load(RELEASE_PAGES)
    titles = [page.strip().splitlines()[0].strip() for page in task.pages]
    assert titles == [
        "= Robert <unk> =",
        "= Du Fu =",
        "= Kiss You ( One Direction song ) =",
        "= <unk> @-@ class battleship =",
    ]
    docs = [{"page": page} for page in task.pages]
    assert task.requests() == [preprocess.wikitext_detokenizer(doc) for doc in docs]
    their_words = sum(preprocess.process_results(doc, [0.0])["word_perplexity"][1] for doc in docs)
    total = -1000.0 * len(docs)
    assert task.score([-1000.0] * len(docs))["word_perplexity"] == pytest.approx(math.exp(-total / their_words))
