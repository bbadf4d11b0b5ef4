"""Cross-check of gpt2_edu.evaluate and gpt2_edu.tasks against lm-evaluation-harness 0.4.13 (offline, CPU, fp32).

A small gpt2_edu model with GPT-2's tokenizer is saved with `save_pretrained` and loaded by the harness's HF model
(`HFLM`). Per request, our `loglikelihood` and `loglikelihood_rolling` equal the harness's; the task metrics
(LAMBADA acc/perplexity, WikiText word perplexity) equal those of `simple_evaluate` running local YAML tasks
(`dataset_path: json`) on our fixture files, with the harness's own templates, detokenizer and metrics.
"""
import json
import math
from pathlib import Path

import pytest
import torch
import lm_eval
from lm_eval import utils as lm_utils
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

from gpt2_edu.evaluate import loglikelihood, loglikelihood_rolling, rolling_windows
from gpt2_edu.tasks import Lambada, WikiText, wikitext_detokenize, wikitext_pages
from gpt2_edu.tokenizer import gpt2_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "zeroshot"
assert lm_eval.__version__ == "0.4.13", "the cross-check is pinned to lm-evaluation-harness 0.4.13"


def close(ours: float, theirs: float) -> bool:
    "Equal to 1e-4 (fp32 sums over up to a few hundred tokens: 1e-6 relative where that is larger)."
    return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, lively_gpt, hflm):
    "Our model and tokenizer, and the harness's HFLM on the same weights (saved with save_pretrained)."
    tok = gpt2_tokenizer()
    model = lively_gpt(tok.vocab_size, n_positions=32, noise=0.05)
    harness = hflm(model, tok, tmp_path_factory.mktemp("gpt2_edu_model"))
    assert harness.max_length == model.config.n_positions
    return model, tok, harness


def greedy_requests(model, tok, contexts):
    "Requests whose continuation is the model's own greedy token (where it survives re-tokenization)."
    requests = []
    for context in contexts:
        with torch.no_grad():
            top = model(torch.tensor([tok.encode_ordinary(context)[-32:]]))[0][0, -1].argmax().item()
        continuation = tok.decode([top])
        if tok.encode_ordinary(context + continuation)[len(tok.encode_ordinary(context)):] == [top]:
            requests.append((context, continuation))
    return requests


def test_loglikelihood_per_request_equals_the_harness(setup):
    model, tok, harness = setup
    lambada = Lambada.load(FIXTURES / "lambada_test.jsonl").requests()
    choices = [("Question: Which is the largest planet? Answer:", choice)
               for choice in (" Jupiter", " Mars", " the Sun", " a small moon of Saturn")]
    choices += [("The river flows to the", choice) for choice in (" sea", " mountains")]
    edge = [("", "Hello world"), ("The cat sat on the ", "mat"), ("word " * 40, "end"), ("A", " b c d e f g")]
    greedy = greedy_requests(model, tok, ["The weather today is", "Once upon a", "In 1846 the bridge",
                                          "She opened the door and", "The results of the", "He said that"])
    requests = lambada + choices + edge + greedy
    ours = loglikelihood(model, tok, requests, batch_size=5)
    theirs = harness.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(requests)],
                                   disable_tqdm=True)
    for request, (our_logprob, our_greedy), (their_logprob, their_greedy) in zip(requests, ours, theirs):
        assert close(our_logprob, their_logprob), (request, our_logprob, their_logprob)
        assert our_greedy == their_greedy, request
    assert greedy and all(is_greedy for _, is_greedy in theirs[-len(greedy):])   # both flags were exercised


def test_loglikelihood_rolling_per_text_equals_the_harness(setup):
    model, tok, harness = setup
    texts = WikiText.load(FIXTURES / "wiki.test.raw").requests()
    texts += ["short", "x", Lambada.load(FIXTURES / "lambada_test.jsonl").texts[0]]
    assert max(len(tok.encode_ordinary(text)) for text in texts) > 3 * model.config.n_positions   # several windows
    ours = loglikelihood_rolling(model, tok, texts, batch_size=3)
    theirs = harness.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(texts)], disable_tqdm=True)
    for text, our_logprob, their_logprob in zip(texts, ours, theirs):
        assert close(our_logprob, their_logprob), (text[:40], our_logprob, their_logprob)


@pytest.mark.parametrize("length", [1, 5, 31, 32, 33, 64, 65, 100])
def test_rolling_windows_are_the_harness_windows(length):
    ids = list(range(1000, 1000 + length))
    theirs = [(context + continuation, len(continuation)) for context, continuation in map(
        lm_utils.make_disjoint_window,
        lm_utils.get_rolling_token_windows(token_list=ids, prefix_token=7, max_seq_len=32, context_len=1))]
    assert rolling_windows(ids, 32, prefix_id=7) == theirs


def test_wikitext_detokenizer_is_the_harness_detokenizer():
    for page in wikitext_pages(FIXTURES / "wiki.test.raw"):
        assert wikitext_detokenize(page) == wikitext_detokenizer({"page": page})


LAMBADA_YAML = """task: lambada_gpt2_edu_fixture
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
output_type: loglikelihood
test_split: test
doc_to_text: "{{{{text.split(' ')[:-1]|join(' ')}}}}"
doc_to_target: "{{{{' '+text.split(' ')[-1]}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

WIKITEXT_YAML = """task: wikitext_gpt2_edu_fixture
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: !function preprocess_wikitext.wikitext_detokenizer
process_results: !function preprocess_wikitext.process_results
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


def test_task_metrics_equal_the_harness_tasks(setup, tmp_path):
    "LAMBADA and WikiText through `simple_evaluate` with the harness's own templates and metrics (local YAML)."
    model, tok, harness = setup
    pages = wikitext_pages(FIXTURES / "wiki.test.raw")
    pages_file = tmp_path / "wikitext_pages.jsonl"
    pages_file.write_text("".join(json.dumps({"page": page}) + "\n" for page in pages))
    texts = Lambada.load(FIXTURES / "lambada_test.jsonl").texts
    greedy = greedy_requests(model, tok, ["The weather today is", "Once upon a", "In 1846 the bridge", "He said that",
                                          "She opened the door and", "The results of the", "They walked into"])
    texts += [context + word for context, word in greedy if word.startswith(" ") and " " not in word[1:]]
    assert len(texts) > 10                      # passages the model gets right too: the accuracy is not 0
    lambada_file = tmp_path / "lambada_test.jsonl"
    lambada_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    (tmp_path / "lambada_fixture.yaml").write_text(LAMBADA_YAML.format(path=lambada_file))
    (tmp_path / "wikitext_fixture.yaml").write_text(WIKITEXT_YAML.format(path=pages_file))
    (tmp_path / "preprocess_wikitext.py").write_text(
        "from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer, process_results\n")
    results = lm_eval.simple_evaluate(model=harness, tasks=["lambada_gpt2_edu_fixture", "wikitext_gpt2_edu_fixture"],
                                      task_manager=TaskManager(include_path=str(tmp_path)), bootstrap_iters=0)
    theirs_lambada = results["results"]["lambada_gpt2_edu_fixture"]
    theirs_wikitext = results["results"]["wikitext_gpt2_edu_fixture"]
    ours_lambada = Lambada.load(lambada_file).evaluate(model, tok)
    assert 0 < ours_lambada["acc"] < 1
    ours_wikitext = WikiText(pages).evaluate(model, tok)
    assert ours_lambada["acc"] == theirs_lambada["acc,none"]
    assert math.isclose(ours_lambada["perplexity"], theirs_lambada["perplexity,none"], rel_tol=1e-5)
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert math.isclose(ours_wikitext[metric], theirs_wikitext[f"{metric},none"], rel_tol=1e-5), metric
