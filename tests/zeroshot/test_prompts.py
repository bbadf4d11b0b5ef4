"Prompt sensitivity (gpt2_edu.prompt_sensitivity): the phrasings, the two engines, the spread and its figure."

import pytest

from gpt2_edu.corpus import join_documents, load_corpus
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.zeroshot.cloze import GAP, Cloze, make_cloze
from gpt2_edu.zeroshot.prompts import (
    PHRASINGS,
    PhrasedCloze,
    PhrasedClozeWriting,
    first_word,
    plot_sensitivity,
    sensitivity,
    spread,
)
from gpt2_edu.zeroshot.task import complete_all


@pytest.fixture(scope="module")
def questions():
    return make_cloze("CN", n=12, seed=3)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(join_documents(load_corpus("shakespeare", "train"))[:100_000], vocab_size=300)


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=128, noise=0.3)


def test_the_script_phrasing_is_the_cloze_task(model, tok, questions):
    "Posed in the play's layout, the question is exactly chapter 07b's Cloze request, and scores as it does."
    assert PhrasedCloze(questions).requests() == Cloze(questions).requests()
    assert PhrasedCloze(questions).evaluate(model, tok)["acc"] == Cloze(questions).evaluate(model, tok)["acc"]


def test_every_phrasing_keeps_the_question_and_hides_its_answer(questions):
    for phrasing in PHRASINGS:
        task = PhrasedCloze(questions, phrasing)
        pairs = task.requests()
        assert len(pairs) == sum(len(q.candidates) for q in questions)
        for i, q in enumerate(questions):
            context = pairs[10 * i][0]
            before, after = q.query.split(GAP, 1)
            assert before.strip() in context or before.strip() == ""
            assert [continuation for _, continuation in pairs[10 * i : 10 * i + 10]] == [
                phrasing.choice(q, candidate) for candidate in q.candidates
            ]
            if phrasing.examples:  # solved: the two questions before; this one: open
                solved = [questions[i - 2], questions[i - 1]]
                assert context.count("Answer:") == 3 and context.endswith("Answer:")
                assert [f"Answer: {e.answer}\n\n" in context for e in solved] == [True, True]
                assert f'"{solved[1].query.replace(GAP, "___")}"' in context
    question = PHRASINGS[3].context(questions[0], [])
    assert question.endswith(f'which word fills the blank in "{questions[0].query.replace(GAP, "___")}"?\nAnswer:')
    assert PHRASINGS[1].context(questions[0], []).count("\n") == 4  # 4 lines of context, then the query line
    assert "\n\n" not in PHRASINGS[2].context(questions[0], [])


def test_writing_reads_the_first_word(model, tok, questions):
    task = PhrasedClozeWriting(questions[:3])
    assert all(not prompt.endswith(" ") for prompt in task.requests())
    assert first_word(" lord, I pray") == "lord" and first_word("\n") == "" and first_word(" 'tis") == "'tis"
    right = [" " + questions[0].answer.upper() + " of", " nothing", ""]
    assert task.score(right) == {"acc": 1 / 3}
    written = complete_all(model, tok, task.requests(), **task.decoding())
    assert task.evaluate(model, tok) == task.score(written)


def test_sensitivity_spread_and_figure(model, tok, questions):
    results = sensitivity(model, tok, questions, batch_size=8)
    assert list(results) == [p.name for p in PHRASINGS]
    for row, phrasing in zip(results.values(), PHRASINGS):
        assert row["likelihood"] == PhrasedCloze(questions, phrasing).evaluate(model, tok)["acc"]
    values = [row["likelihood"] for row in results.values()]
    assert spread(results, "likelihood") == max(values) - min(values)
    by_hand = {"a": {"likelihood": 0.30, "writing": 0.00}, "b": {"likelihood": 0.10, "writing": 0.05}}
    assert spread(by_hand, "likelihood") == pytest.approx(0.20) and spread(by_hand, "writing") == pytest.approx(0.05)
    figure = plot_sensitivity(results, {"chance": 0.1, "unigram": 0.2}, "Test.")
    axes = figure.axes[0]
    assert len(axes.patches) == 2 * len(PHRASINGS) and len(axes.lines) == 2
    assert axes.get_title().startswith("Test. Spread: likelihood")
