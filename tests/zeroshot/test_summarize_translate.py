"""CNN/Daily Mail and WMT-14 (gpt2_edu.summarize_translate): the releases' formats, the prompts, the paper's decoding,
ROUGE and BLEU equal to `rouge-score` and `sacrebleu` on the same strings, bad input; and every task of §3.4-3.8
through `gpt2-edu eval`, its numbers equal to the tasks' own."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.dataset.fake_sgml import FakeSGMLDataset

from gpt2_edu.cli.main import main
from gpt2_edu.model.gpt import GPT
from gpt2_edu.paper import PAPER_TABLE3
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.reading_qa import CoQA, NaturalQuestions
from gpt2_edu.zeroshot.registry import TASKS
from gpt2_edu.zeroshot.summarize_translate import (
    RandomSentences,
    Summarization,
    Translation,
    articles_from_rows,
    corpus_bleu,
    parse_story,
    random_sentences,
    read_parallel,
    read_segments,
    read_stories,
    reference_file,
    rouge_scores,
    sentences,
)
from gpt2_edu.zeroshot.task import TaskFormatError, read_jsonl
from gpt2_edu.zeroshot.winograd import Winograd

FIXTURES = Path(__file__).parents[2] / "nbs" / "data"
CNN_DM = FIXTURES / "cnn_dailymail"
TEST_LIST = CNN_DM / "url_lists" / "all_test.txt"
WMT = FIXTURES / "wmt14"


# --- CNN/Daily Mail ---


def test_stories_of_the_test_list_equal_the_hf_rows():
    articles = read_stories(CNN_DM, TEST_LIST)
    urls = TEST_LIST.read_text().split()
    assert [a.id for a in articles] == [hashlib.sha1(url.encode()).hexdigest() for url in urls]  # the list's order
    assert articles == articles_from_rows(read_jsonl(CNN_DM / "test.jsonl", ("article", "highlights")), "rows")
    assert Summarization.load(TEST_LIST).articles == articles == Summarization.load(CNN_DM / "test.jsonl").articles
    assert (
        articles[1].highlights[0] == "Margaret Ellis, 67, walked 1,100 miles from coast to coast ."
    )  # full stop added
    assert articles[1].article.startswith("By . Daily Mail Reporter . A retired teacher")
    assert len(read_stories(CNN_DM / "cnn" / "stories")) == 2  # a whole folder: every story in it


def test_cnn_dailymail_from_hf_offline(tmp_path):
    task = Summarization.from_hf(
        "json", None, "train", hint="", data_files=str(CNN_DM / "test.jsonl"), cache_dir=str(tmp_path)
    )
    assert task.articles == read_stories(CNN_DM, TEST_LIST) and task.requests()[0] == task.articles[0].article


def test_story_bad_input(tmp_path):
    with pytest.raises(TaskFormatError, match="story empty: the article is empty"):
        parse_story("\n@highlight\n\nSomething happened\n", "empty")
    with pytest.raises(TaskFormatError, match="story bare: no @highlight"):
        parse_story("Some article text.\n", "bare")
    with pytest.raises(TaskFormatError, match="the article is empty"):
        articles_from_rows([{"article": "  ", "highlights": "A summary .", "id": "x"}], "rows")
    with pytest.raises(TaskFormatError, match="rows, row 2: 'highlights' is empty"):
        articles_from_rows(
            [{"article": "A text.", "highlights": "A summary ."}, {"article": "A text.", "highlights": "\n "}], "rows"
        )
    (tmp_path / "url_lists").mkdir()
    (tmp_path / "url_lists" / "all_test.txt").write_text("http://example.com/missing.html\n")
    with pytest.raises(TaskFormatError, match=r"1 of its 1 URLs have no story"):
        read_stories(tmp_path, tmp_path / "url_lists" / "all_test.txt")
    with pytest.raises(TaskFormatError, match="holds no .story file"):
        read_stories(tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder"):
        read_stories(tmp_path / "nowhere")


def test_sentences_and_the_random_baseline():
    assert sentences("One. Two!  Three?\nFour\n\nFive. ") == ["One.", "Two!", "Three?", "Four", "Five."]
    assert sentences("Mr. Smith went home.") == ["Mr.", "Smith went home."]  # a rule, not a model of English
    article = read_stories(CNN_DM, TEST_LIST)[0].article
    picked = random_sentences(article, 3, seed=5)
    assert len(picked) == 3 and all(sentence in sentences(article) for sentence in picked)
    assert picked == random_sentences(article, 3, seed=5)
    order = [sentences(article).index(sentence) for sentence in picked]
    assert order == sorted(order)  # in the article's order
    assert random_sentences("Only one.", 3) == ["Only one."]


SUMMARIES = [
    (
        ["The museum reopened after restoration.", "Visitors climbed the stairs."],
        ("Dunmore's lighthouse museum reopens after a two-year restoration .", "Visitors can climb the steps again ."),
    ),
    (
        ["Floods cut Kelby off.", "Firefighters pumped water from homes and the schools closed."],
        ("Floods cut off the village of Kelby for most of Tuesday .", "Firefighters pumped water; the school closed."),
    ),
    ([], ("A reference nobody matched .",)),
    (["running runners ran"], ("The runner runs .",)),  # stemming: run/running/runs
]


def test_rouge_equals_rouge_score_on_the_same_strings():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    ours = rouge_scores([s for s, _ in SUMMARIES], [r for _, r in SUMMARIES])
    direct = [scorer.score("\n".join(r), "\n".join(s)) for s, r in SUMMARIES]
    for kind in ("rouge1", "rouge2", "rougeLsum"):
        assert ours[kind] == pytest.approx(100 * sum(d[kind].fmeasure for d in direct) / len(direct), abs=1e-12)
    assert ours["rouge_avg"] == pytest.approx((ours["rouge1"] + ours["rouge2"] + ours["rougeLsum"]) / 3)
    assert 0 < ours["rouge2"] < ours["rouge1"] < 100


def test_summarization_prompts_and_scoring(tok):
    articles = read_stories(CNN_DM, TEST_LIST)
    task = Summarization(articles)
    assert task.requests()[0] == articles[0].article + "\nTL;DR:"
    assert Summarization(articles, hint="").requests()[0] == articles[0].article
    assert task.decoding() == dict(until=(), max_new_tokens=100, temperature=1.0, top_k=2, seed=0)
    room = 160 - 100 - len(tok.encode_ordinary("\nTL;DR:"))  # the window, less the summary and the hint
    prompts = task.prompts(tok, 160)
    assert prompts[0] == tok.decode(tok.encode_ordinary(articles[0].article)[:room]) + "\nTL;DR:"
    assert prompts[0].startswith("(CNN) -- A small museum")
    with pytest.raises(ValueError, match="leaves no room for the article"):
        task.prompts(tok, 100)
    written = [" The museum reopened. It is old! Visitors climb. A fourth sentence.", " Ellen walked.\nFar."]
    expected = rouge_scores(
        [["The museum reopened.", "It is old!", "Visitors climb."], ["Ellen walked.", "Far."]],
        [a.highlights for a in articles],
    )
    assert task.score(written) == expected  # the first 3 sentences of each continuation
    baseline = RandomSentences(articles).evaluate()
    assert baseline == rouge_scores(
        [random_sentences(a.article, 3, i) for i, a in enumerate(articles)], [a.highlights for a in articles]
    )


# --- WMT-14 ---


def test_sgm_reading_is_sacrebleus(tmp_path):
    for name in ("newstest2014-fren-src.en.sgm", "newstest2014-fren-ref.fr.sgm"):
        converted = tmp_path / f"{name}.txt"
        object.__new__(FakeSGMLDataset)._convert_format(str(WMT / "test" / name), str(converted))
        assert read_segments(WMT / "test" / name) == converted.read_text().splitlines()
    sgm = read_parallel(WMT / "test" / "newstest2014-fren-src.en.sgm", WMT / "test" / "newstest2014-fren-ref.fr.sgm")
    assert read_parallel(WMT / "newstest2014.en", WMT / "newstest2014.fr") == sgm
    assert sgm[3] == (
        "My sister lives in Paris with her two children.",
        "Ma sœur habite à Paris avec ses deux enfants.",
    )
    rows = Translation.from_hf(
        "en",
        "fr",
        "json",
        None,
        "train",
        n_shots=2,
        data_files=str(WMT / "wmt14_fr-en_test.jsonl"),
        cache_dir=str(tmp_path / "hf"),
    )
    assert rows.shots + rows.pairs == sgm and rows.name == "wmt14_en_fr"


def test_translation_bad_input(tmp_path):
    source = tmp_path / "newstest2014.en"
    target = tmp_path / "newstest2014.fr"
    source.write_text("One.\nTwo.\nThree.\n")
    target.write_text("Un.\nDeux.\n")
    with pytest.raises(TaskFormatError, match="has 3 sentences but .*newstest2014.fr has 2"):
        read_parallel(source, target)
    target.write_text("Un.\n\nTrois.\n")
    with pytest.raises(TaskFormatError, match="sentence 2 is empty on one side"):
        read_parallel(source, target)
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        read_parallel(source, tmp_path / "missing.fr")
    target.write_text("Un.\nDeux.\nTrois.\n")
    with pytest.raises(TaskFormatError, match="none is left to translate after 3 examples"):
        Translation.load(source, target, n_shots=3)
    assert reference_file(WMT / "test" / "newstest2014-fren-src.fr.sgm", "en").name == "newstest2014-fren-ref.en.sgm"
    assert reference_file(source, "fr") == target


def test_translation_prompt_and_bleu():
    task = Translation.load(
        WMT / "test" / "newstest2014-fren-src.fr.sgm",
        WMT / "test" / "newstest2014-fren-ref.en.sgm",
        n_shots=1,
        name="wmt14_fr_en",
    )
    assert task.requests()[0] == (
        "La maison est petite mais très propre. = The house is small but very clean.\n"
        "Je voudrais une tasse de café, s'il vous plaît. ="
    )
    assert len(task.pairs) == 9 and task.decoding()["until"] == ("\n",) and task.decoding()["temperature"] == 0
    written = [
        " I would like a cup of tea please.",
        " The train leaves at eight tomorrow.",
        "",
        " My sister lives",
        " The government announced measures.",
        " It rained all day.",
        " The museum is closed on Monday.",
        " He works at the bank.",
        " Prices rose by 3 % last year.",
    ]
    references = [target for _, target in task.pairs]
    assert task.score(written)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu([w.strip() for w in written], [references]).score, abs=1e-12
    )
    assert 0 < task.score(written)["bleu"] < 100
    assert corpus_bleu(references, references) == pytest.approx(100.0)


# --- every task of §3.4-3.8 through `gpt2-edu eval` ---


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def hf_folder(tok, tmp_path_factory, lively_gpt):
    "A small random GPT-2-vocabulary model with a 256-token window, saved as a Hugging Face folder."
    model = lively_gpt(tok.vocab_size, n_positions=256, noise=0.05)
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder)
    tok.save(folder)
    return folder


NEW_TASKS = [
    "wsc273",
    "coqa",
    "cnn_dailymail",
    "cnn_dailymail_no_hint",
    "cnn_dailymail_random3",
    "wmt14_en_fr",
    "wmt14_fr_en",
    "nq_open",
]


def test_cli_eval_runs_every_new_task_with_the_tasks_own_numbers(hf_folder, tok, tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "--hf",
                str(hf_folder),
                "--tasks",
                ",".join(NEW_TASKS),
                "--data",
                str(FIXTURES),
                "--limit",
                "2",
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    shown = capsys.readouterr().out
    summary = json.loads((tmp_path / "eval.json").read_text())
    records = {record["task"]: record for record in summary["tasks"]}
    assert list(records) == NEW_TASKS
    model = GPT.from_pretrained(hf_folder).eval()
    articles = read_stories(CNN_DM, TEST_LIST)[:2]
    direct = {
        "wsc273": Winograd(Winograd.load(FIXTURES / "wsc273" / "WSCollection.xml").schemas[:2]).evaluate(model, tok),
        "coqa": CoQA(CoQA.load(FIXTURES / "coqa" / "coqa-dev-v1.0.json").turns[:2]).evaluate(model, tok),
        "cnn_dailymail": Summarization(articles).evaluate(model, tok),
        "cnn_dailymail_no_hint": Summarization(articles, hint="").evaluate(model, tok),
        "cnn_dailymail_random3": RandomSentences(articles).evaluate(),
    }
    nq = NaturalQuestions.load(FIXTURES / "nq_open" / "NQ-open.dev.jsonl")
    nq.questions = nq.questions[:2]
    direct["nq_open"] = nq.evaluate(model, tok)
    for source, target in (("en", "fr"), ("fr", "en")):
        task = Translation.load(
            WMT / "test" / f"newstest2014-fren-src.{source}.sgm", WMT / "test" / f"newstest2014-fren-ref.{target}.sgm"
        )
        task.pairs = task.pairs[:2]
        direct[f"wmt14_{source}_{target}"] = task.evaluate(model, tok)
    for name, metrics in direct.items():
        assert records[name]["metrics"] == pytest.approx(metrics, abs=1e-9), name
    assert records["wsc273"]["chance"] == 0.5 and records["nq_open"]["chance"] == 0.0
    assert [records[name]["requests"] for name in ("wsc273", "coqa", "nq_open", "wmt14_en_fr")] == [4, 2, 2, 2]
    assert records["cnn_dailymail"]["file"].endswith("cnn_dailymail/url_lists/all_test.txt")
    assert "| wsc273 | acc |" in shown and "| 70.70% (1542M) |" in shown and "| 28.78 |" in shown
    assert "| coqa | f1 |" in shown and "| 55.00 (1542M) |" in shown


def test_paper_numbers_for_every_new_metric():
    for name in NEW_TASKS:
        for metric in TASKS[name].metrics:
            if metric not in ("acc_full", "em"):  # the paper reports no full-scoring WSC or CoQA EM
                assert PAPER_TABLE3[name][metric][-1] is not None, (name, metric)
    assert PAPER_TABLE3["cnn_dailymail"]["rouge_avg"][-1] - PAPER_TABLE3["cnn_dailymail_no_hint"]["rouge_avg"][
        -1
    ] == pytest.approx(6.37)  # "drops performance by 6.4 points on the aggregate metric"


def test_cli_eval_help_lists_every_task(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    shown = capsys.readouterr().out
    for name, spec in TASKS.items():
        assert f"  {name} " in shown and spec.about in shown


def test_cli_eval_one_line_failures(hf_folder, tmp_path, capsys):
    (tmp_path / "newstest2014.en").write_text("One.\nTwo.\n")  # no French side
    code = main(["eval", "--hf", str(hf_folder), "--tasks", "wmt14_en_fr", "--data", str(tmp_path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "newstest2014.fr" in err and len(err.strip().splitlines()) == 1
    shutil.copy(WMT / "newstest2014.en", tmp_path / "newstest2014.en")
    (tmp_path / "newstest2014.fr").write_text("Un.\n")
    code = main(["eval", "--hf", str(hf_folder), "--tasks", "wmt14_en_fr", "--data", str(tmp_path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "has 10 sentences but" in err and len(err.strip().splitlines()) == 1


def test_wmt_and_story_bytes_that_are_not_utf8_name_their_line(tmp_path):
    bad = tmp_path / "newstest2014.en"
    bad.write_bytes(b"A fine sentence.\n\xff not UTF-8\n")
    with pytest.raises(TaskFormatError, match=r"newstest2014\.en, line 2: bytes that are not UTF-8"):
        read_segments(bad)
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "a.story").write_bytes(b"Text.\n\n@highlight\n\n\xff\n")
    with pytest.raises(TaskFormatError, match=r"a\.story, line 5: bytes that are not UTF-8"):
        read_stories(stories)
