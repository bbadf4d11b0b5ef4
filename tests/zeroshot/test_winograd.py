"""WSC273 (gpt2_edu.winograd): both public formats, the substitution, full and partial scoring, bad input, and
lm-evaluation-harness 0.4.13's own `wsc273` task run offline on the same fixture and model."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from gpt2_edu.corpus import CorpusError
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.engine import loglikelihood, loglikelihood_rolling
from gpt2_edu.zeroshot.task import TaskFormatError
from gpt2_edu.zeroshot.winograd import (
    Winograd,
    WinogradSchema,
    read_wsc_jsonl,
    read_wsc_xml,
    wsc_from_hf,
    wsc_from_rows,
)

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "wsc273"
XML = FIXTURES / "WSCollection.xml"
JSONL = FIXTURES / "wsc273_test.jsonl"


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=64, noise=0.05)


def test_both_formats_give_the_same_schemas():
    schemas = read_wsc_xml(XML)
    assert len(schemas) == 8
    assert read_wsc_jsonl(JSONL) == schemas
    assert schemas[0] == WinogradSchema(
        "The city councilmen refused the demonstrators a permit because they feared violence.",
        "they",
        63,
        ("The city councilmen", "The demonstrators"),
        0,
    )
    assert [s.label for s in schemas] == [0, 1, 1, 0, 1, 0, 0, 1]  # "A", "B", "A. ", " B " all read
    assert schemas[4].text == "Maria lent her umbrella to Sophie because she was going out into the rain."
    assert read_wsc_xml(XML, n=3) == schemas[:3]  # WSC273 = the first 273 of 285


def test_hf_rows_offline_and_without_the_extra(tmp_path, monkeypatch):
    rows = wsc_from_hf("json", None, "train", data_files=str(JSONL), cache_dir=str(tmp_path))
    assert rows == read_wsc_xml(XML)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the extra were not installed
    with pytest.raises(CorpusError, match=r"pip install 'gpt2_edu\[datasets\]'"):
        wsc_from_hf()


def test_requests_are_the_paper_substitution_verbatim():
    task = Winograd.load(XML)
    partial = task.requests()
    assert partial[1] == (
        "The city councilmen refused the demonstrators a permit because the demonstrators",
        " feared violence.",
    )
    assert task.sentences()[1] == (
        "The city councilmen refused the demonstrators a permit because the demonstrators feared violence."
    )
    assert partial[12] == ("The boy could not lift the suitcase onto the shelf. The boy's", " arms were too weak.")
    assert partial[8] == ("Maria lent her umbrella to Sophie because Maria", " was going out into the rain.")
    assert len(partial) == len(task.sentences()) == 2 * len(task.schemas)


def test_both_scorings_are_hand_computed_sums_of_token_logprobs(model, tok):
    "Partial: log P(rest | sentence up to the candidate); full: log P(sentence | <|endoftext|>), token by token."
    task = Winograd.load(XML)
    results = loglikelihood(model, tok, task.requests()) + [
        (lp, False) for lp in loglikelihood_rolling(model, tok, task.sentences())
    ]
    requests = task.requests() + [("", sentence) for sentence in task.sentences()]
    for (context, continuation), (logprob, _) in zip(requests, results):
        if context:
            context_ids = tok.encode_ordinary(context)
            continuation_ids = tok.encode_ordinary(context + continuation)[len(context_ids) :]
        else:  # full scoring: the sentence after <|endoftext|>
            context_ids = [tok.eot_id]
            continuation_ids = tok.encode_ordinary(continuation)
        ids = context_ids + continuation_ids
        with torch.no_grad():
            log_probs = model(torch.tensor([ids]))[0][0].log_softmax(-1)  # (T, vocab)
        by_hand = sum(log_probs[p - 1, ids[p]].item() for p in range(len(context_ids), len(ids)))
        assert math.isclose(logprob, by_hand, abs_tol=1e-4), (context, continuation)


def test_accuracy_counts_the_right_candidate_for_each_scoring():
    task = Winograd(read_wsc_xml(XML)[:2])  # labels 0 and 1
    partial = [(-1.0, False), (-2.0, False), (-5.0, False), (-3.0, False)]  # both right (labels 0, 1)
    full = [(-1.0, False), (-2.0, False), (-1.0, False), (-2.0, False)]  # first right, second wrong
    assert task.score(partial + full) == {"acc": 1.0, "acc_full": 0.5}


def row(**changes):
    base = json.loads(JSONL.read_text().splitlines()[0])
    return {**base, **changes}


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(pronoun="she"), "the pronoun 'she' is not in the sentence"),
        (dict(pronoun_loc=10), "the pronoun 'they' is not at pronoun_loc (pronoun_loc=10 points at 'ounc'"),
        (dict(label=2), "label 2 is not the index of one of its 2 candidates"),
        (dict(options=["The city councilmen"]), "1 candidates"),
        (
            dict(text="The city councilmen refused the demonstrators a permit because they"),
            "nothing follows the pronoun",
        ),
        (dict(pronoun_loc=None), "row 1: TypeError"),
        (dict(options=[1, 2]), "options must be a list of strings, got [1, 2]"),
        (dict(options="The city councilmen"), "options must be a list of strings"),
        (dict(label=0.5), "label and pronoun_loc must be integers, got 0.5"),
        (dict(label=True), "label and pronoun_loc must be integers, got True"),
        (dict(text=3), "text and pronoun must be strings"),
    ],
)
def test_bad_rows_name_the_row_and_the_fix(changes, message):
    with pytest.raises(TaskFormatError, match="rows.jsonl, row 1: ") as error:
        wsc_from_rows([row(**changes)], "rows.jsonl")
    assert message in str(error.value)


def test_bad_files(tmp_path):
    bad = tmp_path / "WSCollection.xml"
    bad.write_text("<collection>\n<schema><text><txt1>A</txt1>\n</collection>\n")
    with pytest.raises(TaskFormatError, match="line 3: not well-formed XML"):
        read_wsc_xml(bad)
    bad.write_text(
        "<collection><schema><text><txt1>Tom met Ann and</txt1><pron>she</pron><txt2>smiled.</txt2>"
        "</text><answers><answer>Tom</answer><answer>Ann</answer></answers></schema></collection>"
    )
    with pytest.raises(TaskFormatError, match="schema 1: expected <text>"):  # no <correctAnswer>
        read_wsc_xml(bad)
    bad.write_text("<collection></collection>")
    with pytest.raises(TaskFormatError, match="holds no <schema>"):
        read_wsc_xml(bad)
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        read_wsc_xml(tmp_path / "missing.xml")
    lines = tmp_path / "wsc.jsonl"
    lines.write_text(json.dumps(row(pronoun="he")) + "\n")
    with pytest.raises(TaskFormatError, match="wsc.jsonl, row 1: the pronoun 'he'"):
        Winograd.load(lines)


WSC_YAML_FROM = "dataset_path: lighteval/winograd_wsc\ndataset_name: wsc273\n"


def test_the_harness_wsc273_task_on_the_same_fixture(model, tok, tmp_path, hflm):
    """lm-evaluation-harness's own `wsc273` (its YAML, its option normalisation, its templates) on our rows.

    Its contexts equal ours; its continuations carry one extra space (its target delimiter before a text that
    starts with a space). Our engine on its requests gives its log-likelihoods, and its accuracy is what our
    scoring gives on them."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    assert lm_eval.__version__ == "0.4.13"
    harness_dir = Path(lm_eval.__file__).parent / "tasks" / "wsc273"
    yaml = (harness_dir / "default.yaml").read_text()
    assert WSC_YAML_FROM in yaml
    yaml = yaml.replace(WSC_YAML_FROM, f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {JSONL}\n")
    (tmp_path / "wsc.yaml").write_text(yaml.replace("task: wsc273", "task: wsc273_gpt2_edu_fixture"))
    shutil.copy(harness_dir / "utils.py", tmp_path / "utils.py")
    harness = hflm(model, tok, tmp_path / "model")
    out = lm_eval.simple_evaluate(
        model=harness,
        tasks=["wsc273_gpt2_edu_fixture"],
        log_samples=True,
        task_manager=TaskManager(include_path=str(tmp_path)),
        bootstrap_iters=0,
    )
    samples = sorted(out["samples"]["wsc273_gpt2_edu_fixture"], key=lambda s: s["doc_id"])
    task = Winograd.load(JSONL)
    ours = task.requests()
    theirs = [tuple(argument) for sample in samples for argument in sample["arguments"]]
    assert [context for context, _ in theirs] == [context for context, _ in ours]
    assert [continuation for _, continuation in theirs] == [" " + continuation for _, continuation in ours]
    their_logprobs = [resp[0][0] for sample in samples for resp in sample["resps"]]
    our_logprobs = [logprob for logprob, _ in loglikelihood(model, tok, theirs)]
    assert our_logprobs == pytest.approx(their_logprobs, abs=1e-3)
    harness_acc = out["results"]["wsc273_gpt2_edu_fixture"]["acc,none"]
    assert task._accuracy(our_logprobs) == pytest.approx(harness_acc)
