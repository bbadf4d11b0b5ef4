"""Generation, CoQA and Natural Questions (gpt2_edu.reading_qa): the engine's batching, truncation and stopping; the
answer metrics against the official CoQA script; loaders and prompts on fixtures in the public formats; bad input;
and lm-evaluation-harness 0.4.13's own `coqa` and `nq_open` tasks run offline on the same fixtures and model."""

import json
import re
import shutil
import string
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2_edu.model.generate import complete
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.reading_qa import (
    CoQA,
    NaturalQuestions,
    Question,
    answer_f1,
    coqa_turn_scores,
    coqa_turns,
    exact_match,
    most_confident_accuracy,
    normalize_answer,
    nq_from_rows,
    read_coqa,
)
from gpt2_edu.zeroshot.task import TaskFormatError, complete_all

FIXTURES = Path(__file__).parents[2] / "nbs" / "data"
COQA_JSON = FIXTURES / "coqa" / "coqa-dev-v1.0.json"
COQA_ROWS = FIXTURES / "coqa" / "coqa_validation.jsonl"
NQ = FIXTURES / "nq_open" / "NQ-open.dev.jsonl"


# --- the official CoQA evaluation script (evaluate-v1.0.py, CoQAEvaluator), its scoring functions as published ---


class OfficialCoQA:
    @staticmethod
    def normalize_answer(s):
        def remove_articles(text):
            regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
            return re.sub(regex, " ", text)

        def white_space_fix(text):
            return " ".join(text.split())

        def remove_punc(text):
            exclude = set(string.punctuation)
            return "".join(ch for ch in text if ch not in exclude)

        def lower(text):
            return text.lower()

        return white_space_fix(remove_articles(remove_punc(lower(s))))

    @staticmethod
    def get_tokens(s):
        if not s:
            return []
        return OfficialCoQA.normalize_answer(s).split()

    @staticmethod
    def compute_exact(a_gold, a_pred):
        return int(OfficialCoQA.normalize_answer(a_gold) == OfficialCoQA.normalize_answer(a_pred))

    @staticmethod
    def compute_f1(a_gold, a_pred):
        gold_toks = OfficialCoQA.get_tokens(a_gold)
        pred_toks = OfficialCoQA.get_tokens(a_pred)
        common = Counter(gold_toks) & Counter(pred_toks)
        num_same = sum(common.values())
        if len(gold_toks) == 0 or len(pred_toks) == 0:
            return int(gold_toks == pred_toks)
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(pred_toks)
        recall = 1.0 * num_same / len(gold_toks)
        return (2 * precision * recall) / (precision + recall)

    @staticmethod
    def _compute_turn_score(a_gold_list, a_pred):
        f1_sum = 0.0
        em_sum = 0.0
        if len(a_gold_list) > 1:
            for i in range(len(a_gold_list)):
                gold_answers = a_gold_list[0:i] + a_gold_list[i + 1 :]
                em_sum += max(OfficialCoQA.compute_exact(a, a_pred) for a in gold_answers)
                f1_sum += max(OfficialCoQA.compute_f1(a, a_pred) for a in gold_answers)
        else:
            em_sum += max(OfficialCoQA.compute_exact(a, a_pred) for a in a_gold_list)
            f1_sum += max(OfficialCoQA.compute_f1(a, a_pred) for a in a_gold_list)
        return {"em": em_sum / max(1, len(a_gold_list)), "f1": f1_sum / max(1, len(a_gold_list))}

    @staticmethod
    def gold_answers(path):
        "The official `gold_answers_to_dict`: (story id, turn id) -> every reference answer."
        gold = {}
        for story in json.loads(Path(path).read_text())["data"]:
            multiple_answers = [story["answers"]] + list(story["additional_answers"].values())
            for i, qa in enumerate(story["questions"]):
                gold[(story["id"], qa["turn_id"])] = [answers[i]["input_text"] for answers in multiple_answers]
        return gold


TRICKY = [  # (gold, prediction, exact match, F1), worked out by hand
    ("The Beatles", "beatles", 1, 1.0),  # case and a leading article
    ("an apple", "Apple!", 1, 1.0),  # article and punctuation
    ("U.S.", "US", 1, 1.0),  # dots inside a word
    ("Paris, France", "paris france", 1, 1.0),
    ("the the", "", 1, 1.0),  # only articles: both normalise to nothing
    ("", "", 1, 1.0),
    ("a", "nothing", 0, 0.0),  # gold empty after normalisation, prediction not
    ("theatre", "atre", 0, 0.0),  # "the" inside a word stays
    ("in 1846", "1846", 0, 2 / 3),  # precision 1, recall 1/2
    ("Neil  Armstrong", "neil armstrong.", 1, 1.0),  # inner whitespace collapsed
    ("dog dog cat", "dog cat cat", 0, 2 / 3),  # bags of words: 2 shared of 3
    ("l'hôpital", "lhôpital", 1, 1.0),  # ASCII punctuation only; accents stay
    ("Ann's", "anns", 1, 1.0),
]


@pytest.mark.parametrize("gold, prediction, em, f1", TRICKY)
def test_answer_metrics_on_tricky_strings(gold, prediction, em, f1):
    assert exact_match(gold, prediction) == em == OfficialCoQA.compute_exact(gold, prediction)
    assert answer_f1(gold, prediction) == pytest.approx(f1)
    assert answer_f1(gold, prediction) == pytest.approx(OfficialCoQA.compute_f1(gold, prediction))


ANSWERISH = st.lists(
    st.sampled_from(list("aAnNtTheEbé ,.'!-\t") + ["the ", "The ", "an ", " a ", "THE"]), max_size=12
).map("".join)  # strings dense in articles, case, punctuation and whitespace


@settings(max_examples=300, deadline=None)
@given(ANSWERISH, ANSWERISH, st.lists(ANSWERISH, min_size=1, max_size=4))
def test_answer_metrics_equal_the_official_script(gold, prediction, golds):
    assert normalize_answer(gold) == OfficialCoQA.normalize_answer(gold)
    assert exact_match(gold, prediction) == OfficialCoQA.compute_exact(gold, prediction)
    assert answer_f1(gold, prediction) == pytest.approx(OfficialCoQA.compute_f1(gold, prediction))
    assert coqa_turn_scores(tuple(golds), prediction) == pytest.approx(
        OfficialCoQA._compute_turn_score(golds, prediction)
    )


# --- CoQA ---


def test_coqa_both_formats_and_the_official_gold_answers():
    turns = read_coqa(COQA_JSON)
    assert read_coqa(COQA_ROWS) == turns
    assert len(turns) == 9 and [t.last for t in turns].count(True) == 2
    official = OfficialCoQA.gold_answers(COQA_JSON)
    turn_ids = [i + 1 for story in (5, 4) for i in range(story)]
    assert [list(t.answers) for t in turns] == [official[(t.story_id, n)] for t, n in zip(turns, turn_ids)]
    assert turns[1].answers == ("Owen Price", "Owen Price.", "Owen", "a shipwright, Owen Price")


def test_coqa_prompt_is_story_history_and_a_final_answer_token():
    turn = read_coqa(COQA_JSON)[6]  # the second story's second question
    assert turn.prompt() == (
        turn.story + "\n\nQ: What color was the bicycle?\n\nA: red\n\nQ: Where did the chain break?\n\nA:"
    )
    assert turn.story.startswith("Tom had a red bicycle")


def test_coqa_score_is_the_official_evaluation():
    task = CoQA.load(COQA_JSON)
    predictions = [
        "1846",
        "Owen Price the shipwright",
        "unknown",
        "Ellen",
        "92 steps",
        "red",
        "the hill",
        "Amir and Tom",
        "before it got dark",
    ]
    official = [OfficialCoQA._compute_turn_score(list(turn.answers), p) for turn, p in zip(task.turns, predictions)]
    scores = task.score([" " + p + "\n\nQ: next?" for p in predictions])  # as generated: a space, more lines
    assert scores["f1"] == pytest.approx(100 * sum(s["f1"] for s in official) / len(official))
    assert scores["em"] == pytest.approx(100 * sum(s["em"] for s in official) / len(official))
    assert 0 < scores["em"] < scores["f1"] < 100


def coqa_story(**changes):
    story = json.loads(COQA_JSON.read_text())["data"][1]
    story.update(changes)
    return story


def test_coqa_bad_input():
    story = coqa_story()
    story["answers"] = story["answers"][:3]  # the fourth question has no answer
    with pytest.raises(TaskFormatError, match=r"story 3azh\w+: question turn 4 \('When did they finish\?'\) has no"):
        coqa_turns([story], "coqa.json")
    story = coqa_story()
    for answer in story["answers"]:
        del answer["turn_id"]  # no turn ids: the counts still catch it
    story["answers"] = story["answers"][:3]
    with pytest.raises(TaskFormatError, match=r"4 questions but 3 answers: question 4 \('When did they finish\?'\)"):
        coqa_turns([story], "coqa.json")
    with pytest.raises(TaskFormatError, match="no 'story' text"):
        coqa_turns([coqa_story(story="  ")], "coqa.json")
    story = coqa_story()
    story["additional_answers"]["1"] = story["additional_answers"]["1"][:2]
    with pytest.raises(TaskFormatError, match="additional answer set '1' has 2 answers for 4 questions"):
        coqa_turns([story], "coqa.json")
    story = coqa_story()  # the train split's placeholder sets are skipped
    story["additional_answers"] = {
        "0": [{"span_start": -1, "span_end": -1, "span_text": "", "input_text": "", "turn_id": -1}]
    }
    assert [t.answers for t in coqa_turns([story], "coqa.json")] == [(a["input_text"],) for a in story["answers"]]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("additional_answers", [1, 2], "'additional_answers' holds list, not the official object of answer sets"),
        ("additional_answers", {"0": "in 1846"}, "additional answer set '0': expected a list of turns"),
        ("story", 42, "no 'story' text"),
        ("questions", "When was it built?", "'questions': expected a list of turns (or HF's columns), got str"),
        ("answers", {"input_text": "in 1846"}, "'answers': 'input_text' holds str, not a list"),
    ],
)
def test_coqa_fields_of_the_wrong_type_name_the_story_and_the_field(field, value, message):
    with pytest.raises(TaskFormatError, match=re.escape(message)):
        coqa_turns([coqa_story(**{field: value})], "coqa.json")


def test_coqa_bad_files(tmp_path):
    bad = tmp_path / "coqa-dev-v1.0.json"
    bad.write_text('{"version": "1.0",\n "data": [\n')
    with pytest.raises(TaskFormatError, match="line 3: not valid JSON"):
        read_coqa(bad)
    bad.write_text('{"version": "1.0", "data": []}')
    with pytest.raises(TaskFormatError, match="CoQA's official layout"):
        read_coqa(bad)
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        read_coqa(tmp_path / "missing.json")


def test_coqa_from_hf_offline(tmp_path):
    task = CoQA.from_hf("json", split="train", data_files=str(COQA_ROWS), cache_dir=str(tmp_path))
    assert task.turns == read_coqa(COQA_JSON)


# --- Natural Questions ---


def test_nq_prompts_and_scores():
    task = NaturalQuestions.load(NQ, n_shots=2)
    assert len(task.shots) == 2 and len(task.questions) == 10
    assert task.requests()[0] == (
        "Q: who wrote the play romeo and juliet?\nA: William Shakespeare\n"
        "Q: what is the capital city of france?\nA: Paris\n"
        "Q: how many legs does a spider have?\nA:"
    )
    answers = [
        " 8",
        " Neil Armstrong",
        " jupiter.",
        " 1912",
        " AU",
        " da Vinci",
        " Portuguese",
        " Indian ocean",
        " 100 degrees",
        "",
    ]
    confidence = [-9.0, -0.5, -1.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, float("-inf")]
    right = [1, 1, 1, 1, 1, 0, 1, 1, 0, 0]  # "AU" = "Au"; "da Vinci" is not "Leonardo da Vinci"
    assert task.score(list(zip(answers, confidence))) == {"acc": 0.7, "acc_top1pct": 1.0}
    assert most_confident_accuracy(right, confidence, share=0.3) == 2 / 3  # the 3 surest: 2 right, "100 degrees"


def test_nq_bad_input(tmp_path):
    with pytest.raises(TaskFormatError, match=r"nq.jsonl, record 2 \('who'\): 'answer' must be a non-empty list"):
        nq_from_rows([{"question": "what", "answer": ["x"]}, {"question": "who", "answer": "Ann"}], "nq.jsonl")
    with pytest.raises(TaskFormatError, match="non-empty list"):
        nq_from_rows([{"question": "what", "answer": []}], "nq.jsonl")
    with pytest.raises(TaskFormatError, match="holds 12 questions: none is left to ask after 12 examples"):
        NaturalQuestions.load(NQ, n_shots=12)
    task = NaturalQuestions.from_hf("json", split="train", n_shots=2, data_files=str(NQ), cache_dir=str(tmp_path))
    assert task.questions[0] == Question("how many legs does a spider have", ("eight", "8"))


# --- the generation engine ---


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=256, noise=0.05)


def test_complete_takes_one_stop_string_whole(model, tok):
    "A str `until` is one stop string (as lm-evaluation-harness normalises it), not a set of characters."
    prompt = "The cat sat on"
    whole = complete(model, tok, prompt, until="Q: x", max_new_tokens=24)
    assert whole == complete(model, tok, prompt, until=("Q: x",), max_new_tokens=24)
    assert whole == complete(model, tok, prompt, until=(), max_new_tokens=24)  # "Q: x" never came
    assert whole != complete(model, tok, prompt, until=("Q", ":", " ", "x"), max_new_tokens=24)


def test_complete_all_is_complete_for_every_prompt(model, tok):
    prompts = ["The cat sat on", "A dog ran to", "Once upon a time there", "The cat sat on"]
    answers = complete_all(model, tok, prompts, until=(" ", ","), max_new_tokens=12)
    assert answers == [complete(model, tok, p, until=(" ", ","), max_new_tokens=12) for p in prompts]
    assert answers[0] == answers[3] and all(" " not in a and "," not in a for a in answers)
    whole = complete_all(model, tok, prompts[2:3], until=(), max_new_tokens=12)[0]
    ids = model.generate(torch.tensor([tok.encode_ordinary(prompts[2])]), 12, temperature=0)[0, -12:].tolist()
    assert whole == tok.decode(ids)  # greedy: generate's own tokens
    assert whole.startswith(complete_all(model, tok, prompts[2:3], until=(" ",), max_new_tokens=12)[0])


def test_complete_all_samples_each_prompt_with_its_own_seed(model, tok):
    prompts = ["The weather today is"] * 3
    first = complete_all(model, tok, prompts, until=(), max_new_tokens=10, temperature=1.0, top_k=50, seed=3)
    assert first == [
        complete(model, tok, prompts[0], until=(), max_new_tokens=10, temperature=1.0, top_k=50, seed=s)
        for s in (3, 4, 5)
    ]  # prompt i: seed + i, whatever else is asked
    assert len(set(first)) > 1
    assert (
        complete_all(model, tok, prompts[1:], until=(), max_new_tokens=10, temperature=1.0, top_k=50, seed=4)
        == first[1:]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=256), "max_new_tokens=256 must be an integer from 1 to 255"),
        (dict(max_new_tokens=0), "max_new_tokens=0"),
        (dict(prompts="one prompt"), "wrap it as [prompt]"),
        (dict(prompts=["fine", 3]), "prompt 1 must be a str"),
    ],
)
def test_complete_all_bad_arguments(model, tok, kwargs, message):
    prompts = kwargs.pop("prompts", ["fine"])
    with pytest.raises(ValueError, match=re.escape(message)):
        complete_all(model, tok, prompts, **kwargs)


# --- lm-evaluation-harness's own tasks on the same fixtures ---


@pytest.fixture(scope="module")
def harness(model, tok, tmp_path_factory, hflm):
    import lm_eval

    assert lm_eval.__version__ == "0.4.13"
    return hflm(model, tok, tmp_path_factory.mktemp("model"), batch_size=1)


def harness_yaml(task: str, replace: dict[str, str], tmp_path: Path) -> Path:
    "The harness's own YAML and utils for `task`, pointed at local files (each `replace` key must be found)."
    import lm_eval

    source = Path(lm_eval.__file__).parent / "tasks" / task
    name = "default.yaml" if task == "coqa" else f"{task}.yaml"
    yaml = (source / name).read_text()
    for old, new in replace.items():
        assert old in yaml, old
        yaml = yaml.replace(old, new)
    if (source / "utils.py").exists():
        shutil.copy(source / "utils.py", tmp_path / "utils.py")
    (tmp_path / f"{task}_fixture.yaml").write_text(yaml.replace(f"task: {task}\n", f"task: {task}_gpt2_edu\n"))
    return tmp_path


def official_squad_metrics() -> types.ModuleType:
    "`transformers.data.metrics.squad_metrics` (gone in transformers 5), rebuilt from the official script."
    module = types.ModuleType("transformers.data.metrics.squad_metrics")
    for name in ("normalize_answer", "get_tokens", "compute_exact", "compute_f1"):
        setattr(module, name, getattr(OfficialCoQA, name))
    return module


def test_the_harness_coqa_task(model, tok, harness, tmp_path, monkeypatch):
    """The harness asks each story's last question: its prompts, its greedy answers and its per-question F1/EM
    equal ours; its metric code, given the same predictions, equals our scoring."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.setitem(sys.modules, "transformers.data.metrics", types.ModuleType("transformers.data.metrics"))
    monkeypatch.setitem(sys.modules, "transformers.data.metrics.squad_metrics", official_squad_metrics())
    files = f"dataset_kwargs:\n  data_files:\n    train: {COQA_ROWS}\n    validation: {COQA_ROWS}\n"
    folder = harness_yaml(
        "coqa",
        {
            "dataset_path: EleutherAI/coqa\n": f"dataset_path: json\n{files}",
            '    - "\\nQ:"\n': '    - "\\nQ:"\n  max_gen_toks: 32\n',
        },
        tmp_path,
    )
    out = lm_eval.simple_evaluate(
        model=harness,
        tasks=["coqa_gpt2_edu"],
        log_samples=True,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(folder)),
    )
    samples = sorted(out["samples"]["coqa_gpt2_edu"], key=lambda s: s["doc_id"])
    task = CoQA([turn for turn in read_coqa(COQA_ROWS) if turn.last])
    assert [s["arguments"][0][0] for s in samples] == task.requests()
    ours = complete_all(model, tok, task.requests(), **task.decoding())
    assert [s["resps"][0][0] for s in samples] == ours
    for turn, sample, answer in zip(task.turns, samples, ours):
        scores = coqa_turn_scores(turn.answers, answer.strip().split("\n")[0])
        assert sample["f1"] == pytest.approx(scores["f1"]) and sample["em"] == pytest.approx(scores["em"])
    from lm_eval.tasks.coqa import utils  # the harness's CoQA metric code (importable with the module above)

    docs = [json.loads(line) for line in COQA_ROWS.read_text().splitlines()]
    for doc, turn in zip(docs, task.turns):
        for prediction in ("ninety-two steps", "Ninety two", "92", "before dark", "it got dark", "Amir", ""):
            theirs = utils.process_results(doc, [prediction])
            assert theirs == pytest.approx(coqa_turn_scores(turn.answers, prediction)), prediction


NQ_STOP = ("\n", ".", ",")


def test_the_harness_nq_open_task(model, tok, harness, tmp_path):
    """Few-shot `nq_open` (its first_n sampler over our examples, no description): its prompts and greedy answers
    equal ours with its stop strings; its exact match agrees with ours on answers both normalisations accept."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    ours = NaturalQuestions.load(NQ, n_shots=3)
    ours.until = NQ_STOP
    rows = [json.loads(line) for line in NQ.read_text().splitlines()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:3]))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[3:]))
    files = (
        f"dataset_kwargs:\n  data_files:\n    train: {tmp_path / 'train.jsonl'}\n"
        f"    validation: {tmp_path / 'validation.jsonl'}\n"
    )
    folder = harness_yaml(
        "nq_open",
        {
            "dataset_path: google-research-datasets/nq_open\n": f"dataset_path: json\n{files}",
            'description: "Answer these questions:\\n\\n"\n': 'description: ""\nfewshot_config:\n  sampler: first_n\n',
            "  do_sample: false\n": "  do_sample: false\n  max_gen_toks: 16\n",
        },
        tmp_path,
    )
    out = lm_eval.simple_evaluate(
        model=harness,
        tasks=["nq_open_gpt2_edu"],
        num_fewshot=3,
        log_samples=True,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(folder)),
    )
    samples = sorted(out["samples"]["nq_open_gpt2_edu"], key=lambda s: s["doc_id"])
    assert [s["arguments"][0][0] for s in samples] == ours.requests()
    answers = complete_all(model, tok, ours.requests(), **ours.decoding())
    assert [s["resps"][0][0] for s in samples] == answers
    assert [s["exact_match"] for s in samples] == [
        max(exact_match(g, a) for g in q.answers) for q, a in zip(ours.questions, answers)
    ]


def test_nq_exact_match_beside_the_harness_normalisation():
    "Where the harness's `nq_open` exact match agrees with the official normalisation, and the cases where not."
    from lm_eval.api.metrics import exact_match_hf_evaluate

    articles = ["\\b(?:The |the |An |A |The |a |an )"]

    def harness(gold, prediction):
        return exact_match_hf_evaluate(
            [prediction], [gold], regexes_to_ignore=articles, ignore_case=True, ignore_punctuation=True
        )["exact_match"]

    agree = [
        ("Neil Armstrong", "neil armstrong"),
        ("the Indian Ocean", "Indian Ocean."),
        ("Au", "AU"),
        ("Paris", "London"),
        ("A Tale of Two Cities", "tale of two cities!"),
        ("1912", "April 1912"),
    ]
    for gold, prediction in agree:
        assert harness(gold, prediction) == exact_match(gold, prediction), (gold, prediction)
    differ = [
        ("Neil Armstrong", "Neil  Armstrong"),  # inner whitespace: we collapse it
        ("THE Beatles", "Beatles"),  # upper-case article: the harness keeps it
        ("Leonardo", "Leonardo the"),
    ]  # article at the end: no space after it
    for gold, prediction in differ:
        assert exact_match(gold, prediction) == 1 and harness(gold, prediction) == 0, (gold, prediction)


def test_coqa_bytes_that_are_not_utf8_name_their_line(tmp_path):
    bad = tmp_path / "coqa-dev-v1.0.json"
    bad.write_bytes(b'{"version": "1.0",\n "data": ["\xff"]}')
    with pytest.raises(TaskFormatError, match=r"coqa-dev-v1\.0\.json, line 2: bytes that are not UTF-8"):
        read_coqa(bad)
