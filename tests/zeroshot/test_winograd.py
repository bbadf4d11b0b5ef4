"""WSC273 (gpt2_edu.winograd): both public formats, the substitution, full and partial scoring, bad input, and
lm-evaluation-harness 0.4.13's own `wsc273` task run offline on the same fixture and model."""

import json
import math
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from gpt2_edu.corpus import CorpusError
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.engine import loglikelihood, loglikelihood_rolling
from gpt2_edu.zeroshot.task import TaskFormatError
from gpt2_edu.zeroshot.winograd import (
    Winograd,
    WinogradHarness,
    WinogradSchema,
    harness_request,
    read_wsc_jsonl,
    read_wsc_xml,
    wsc_from_hf,
    wsc_from_rows,
)

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "wsc273"
XML = FIXTURES / "WSCollection.xml"
JSONL = FIXTURES / "wsc273_test.jsonl"
RELEASE = Path(__file__).parents[2] / "nbs" / "data" / "releases" / "wsc273" / "WSCollection.xml"  # 62 real schemas


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


@pytest.fixture(scope="module")
def harness(model, tok, hflm, tmp_path_factory):
    "lm-evaluation-harness's HFLM on the module's model."
    return hflm(model, tok, tmp_path_factory.mktemp("hflm") / "model")


def run_harness_wsc273(harness, rows_file: Path, folder: Path):
    """lm-evaluation-harness 0.4.13's own `wsc273` (its YAML, its `utils.py`) on a JSON Lines file of `winograd_wsc`
    rows: its samples in document order, and its accuracy."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    assert lm_eval.__version__ == "0.4.13"
    harness_dir = Path(lm_eval.__file__).parent / "tasks" / "wsc273"
    yaml = (harness_dir / "default.yaml").read_text()
    assert WSC_YAML_FROM in yaml
    yaml = yaml.replace(WSC_YAML_FROM, f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {rows_file}\n")
    folder.mkdir()
    (folder / "wsc.yaml").write_text(yaml.replace("task: wsc273", "task: wsc273_gpt2_edu_fixture"))
    shutil.copy(harness_dir / "utils.py", folder / "utils.py")
    out = lm_eval.simple_evaluate(
        model=harness,
        tasks=["wsc273_gpt2_edu_fixture"],
        log_samples=True,
        task_manager=TaskManager(include_path=str(folder)),
        bootstrap_iters=0,
    )
    samples = sorted(out["samples"]["wsc273_gpt2_edu_fixture"], key=lambda s: s["doc_id"])
    return samples, out["results"]["wsc273_gpt2_edu_fixture"]["acc,none"]


def test_the_harness_wsc273_task_on_the_same_fixture(model, tok, tmp_path, harness):
    """lm-evaluation-harness's own `wsc273` (its YAML, its option normalisation, its templates) on our rows.

    Its contexts equal ours; its continuations carry one extra space (its target delimiter before a text that
    starts with a space). Our engine on its requests gives its log-likelihoods, and its accuracy is what our
    scoring gives on them."""
    samples, harness_acc = run_harness_wsc273(harness, JSONL, tmp_path / "task")
    task = Winograd.load(JSONL)
    ours = task.requests()
    theirs = [tuple(argument) for sample in samples for argument in sample["arguments"]]
    assert [context for context, _ in theirs] == [context for context, _ in ours]
    assert [continuation for _, continuation in theirs] == [" " + continuation for _, continuation in ours]
    their_logprobs = [resp[0][0] for sample in samples for resp in sample["resps"]]
    our_logprobs = [logprob for logprob, _ in loglikelihood(model, tok, theirs)]
    assert our_logprobs == pytest.approx(their_logprobs, abs=1e-3)
    assert task._accuracy(our_logprobs) == pytest.approx(harness_acc)


def builder_rows(path: Path) -> list[dict]:
    "The `winograd_wsc` (wsc273) rows of Davis's XML, built field by field as the Hugging Face builder builds them."

    def clean(text):
        return " ".join((text or "").split())

    rows = []
    for element in list(ET.parse(path).getroot())[:273]:
        text, quote = element.find("text"), element.find("quote")
        left, pronoun, right = (clean(text.findtext(tag)) for tag in ("txt1", "pron", "txt2"))
        quote_left, quote_right = clean(quote.findtext("quote1")), clean(quote.findtext("quote2"))
        location = len(left) + 1 if left else 0
        rows.append(
            {
                "text": " ".join([left, pronoun, right]).strip(),
                "pronoun": pronoun,
                "pronoun_loc": location,
                "quote": " ".join([quote_left, pronoun, quote_right]).strip(),
                "quote_loc": location - (len(quote_left) + 1 if quote_left else 0),
                "options": [clean(answer.text) for answer in element.find("answers").findall("answer")],
                "label": int("B" in clean(element.findtext("correctAnswer"))),  # the builder's " A. " / " B " rule
                "source": clean(element.findtext("source")),
            }
        )
    return rows


def write_rows(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_real_release_excerpt_reads_as_the_hugging_face_rows_of_it():
    "Our XML reader gives, on the real file's schemas, what the rows the harness reads give."
    schemas = read_wsc_xml(RELEASE)
    assert len(schemas) == 62
    assert wsc_from_rows(builder_rows(RELEASE), "rows") == schemas
    assert schemas[40].text == "The older students were bullying the younger ones, so we punished them ."
    assert schemas[-1].options == ("Pam's parents", "her having sex with her boyfriend, Paul")


def test_wsc273_harness_poses_the_harness_requests_on_the_real_release(model, tok, tmp_path, harness):
    """On the real WSCollection.xml excerpt, schema for schema: `WinogradHarness`'s requests are the harness's own
    `wsc273` requests string for string, our engine gives its log-likelihoods, and its accuracy."""
    samples, harness_acc = run_harness_wsc273(
        harness, write_rows(builder_rows(RELEASE), tmp_path / "rows.jsonl"), tmp_path / "task"
    )
    task = WinogradHarness.load(RELEASE)
    assert [sample["doc_id"] for sample in samples] == list(range(62)) and len(task.schemas) == 62
    ours = task.requests()
    for i, sample in enumerate(samples):
        assert [tuple(pair) for pair in sample["arguments"]] == ours[2 * i : 2 * i + 2], task.schemas[i].text
    their_logprobs = [resp[0][0] for sample in samples for resp in sample["resps"]]
    our_logprobs = [logprob for logprob, _ in loglikelihood(model, tok, ours)]
    assert our_logprobs == pytest.approx(their_logprobs, abs=1e-3)
    assert task.evaluate(model, tok) == {"acc": pytest.approx(harness_acc)}


def test_wsc273_harness_differs_from_the_paper_protocol_by_the_one_space():
    "Same contexts, the same sentences for full scoring; each continuation has the harness's extra space."
    paper, variant = Winograd.load(RELEASE), WinogradHarness.load(RELEASE)
    assert variant.name == "wsc273_harness" and paper.name == "wsc273"
    assert [context for context, _ in variant.requests()] == [context for context, _ in paper.requests()]
    assert [rest for _, rest in variant.requests()] == [" " + rest for _, rest in paper.requests()]
    assert variant.requests()[1] == (
        "The city councilmen refused the demonstrators a permit because the demonstrators",
        "  feared violence.",
    )
    assert variant.sentences() == paper.sentences()  # the substituted sentence itself is unchanged
    assert variant.score([(-1.0, False), (-2.0, False)] * 62) == {
        "acc": sum(s.label == 0 for s in variant.schemas) / 62
    }


QUIRKS = [  # (row changes, the harness's request for the first candidate): where its utils.py and ours part
    (  # a "!" does not end a sentence for it: the candidate is lowered
        dict(text="Look! There is a duck! It had better swim away.", pronoun="It", pronoun_loc=23),
        ("Look! There is a duck! the city councilmen", "  had better swim away."),
    ),
    (  # the pronoun first: it looks two characters before 0, at the end of the text
        dict(text="They refused the permit, and the demonstrators left.", pronoun="They", pronoun_loc=0),
        ("the city councilmen", "  refused the permit, and the demonstrators left."),
    ),
    (  # "its" takes no 's
        dict(text="The city councilmen refused the demonstrators its permit.", pronoun="its", pronoun_loc=46),
        ("The city councilmen refused the demonstrators the city councilmen", "  permit."),
    ),
    (  # every occurrence of the first word is lowered
        dict(
            text="The city councilmen refused the demonstrators a permit because they feared violence.",
            options=["The The", "The demonstrators"],
        ),
        ("The city councilmen refused the demonstrators a permit because the the", "  feared violence."),
    ),
    (  # a double space is collapsed, pronoun_loc is not moved
        dict(
            text="The city  councilmen refused the demonstrators a permit because they feared violence.",
            pronoun_loc=64,
        ),
        ("The city councilmen refused the demonstrators a permit because tthe city councilmen", " feared violence."),
    ),
]


def test_wsc273_harness_follows_the_harness_where_its_normalisation_is_not_ours(model, tok, tmp_path, harness):
    "Rows the real file does not hold, where the harness's utils.py and our substitution disagree: its way is kept."
    rows = [row(**changes) for changes, _ in QUIRKS]
    samples, harness_acc = run_harness_wsc273(harness, write_rows(rows, tmp_path / "rows.jsonl"), tmp_path / "task")
    task = WinogradHarness(wsc_from_rows(rows, "quirks"))
    theirs = [tuple(pair) for sample in samples for pair in sample["arguments"]]
    assert theirs == task.requests()
    assert [theirs[2 * i] for i in range(len(QUIRKS))] == [request for _, request in QUIRKS]
    assert all(pair[0] != schema.substituted(schema.options[0])[0] for pair, schema in zip(theirs[::2], task.schemas))
    their_logprobs = [resp[0][0] for sample in samples for resp in sample["resps"]]
    assert [lp for lp, _ in loglikelihood(model, tok, theirs)] == pytest.approx(their_logprobs, abs=1e-3)
    assert task.evaluate(model, tok)["acc"] == pytest.approx(harness_acc)


def test_wsc273_harness_needs_two_candidates_per_schema():
    three = WinogradSchema("A or B or C? It is.", "It", 13, ("A", "B", "C"), 0)
    with pytest.raises(
        TaskFormatError, match="schema 1: 3 candidates; the harness's wsc273 template poses exactly two"
    ):
        WinogradHarness([three])
    assert harness_request(three, "The A") == ("A or B or C? the A", "  is.")  # a "?" does not end a sentence for it
