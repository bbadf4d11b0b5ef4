"""The likelihood engine (`gpt2_edu.zeroshot.engine`): semantics by hand, bad input, and lm-evaluation-harness's
numbers."""

import json
import math
from pathlib import Path

import lm_eval
import pytest
import torch
from lm_eval import utils as lm_utils
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer
from gpt2_edu.zeroshot.engine import (
    check_vocabularies,
    encode_pair,
    loglikelihood,
    loglikelihood_rolling,
    rolling_windows,
)
from gpt2_edu.zeroshot.lambada import Lambada
from gpt2_edu.zeroshot.lm_tasks import WikiText, wikitext_detokenize, wikitext_pages

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


def by_hand(model, ids, n_scored):
    "Summed log-prob of the last `n_scored` of `ids` (each after what fits before it), and whether all are argmax."
    ids = ids[-(model.config.n_positions + 1) :]
    with torch.no_grad():
        logp = model(torch.tensor([ids[:-1]]))[0][0].log_softmax(-1)  # (T, vocab)
    rows = range(len(ids) - 1 - n_scored, len(ids) - 1)
    total = sum(logp[r, ids[r + 1]].item() for r in rows)
    greedy = all(logp[r].argmax().item() == ids[r + 1] for r in rows)
    return total, greedy


FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "zeroshot"


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
        if tok.encode_ordinary(context + continuation)[len(tok.encode_ordinary(context)) :] == [top]:
            requests.append((context, continuation))
    return requests


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


def test_encode_pair_moves_trailing_spaces_and_uses_eot_for_empty_context(tok):
    assert encode_pair(tok, "to be ", "or") == encode_pair(tok, "to be", " or")
    context, continuation = encode_pair(tok, "to be", " or not")
    assert context + continuation == tok.encode_ordinary("to be or not")
    assert encode_pair(tok, "", "to be") == ([tok.eot_id], tok.encode_ordinary("to be"))


def test_loglikelihood_equals_the_sum_of_softmax_entries(model, tok):
    requests = [
        ("To be, or not to", " be"),
        ("that is the", " question: whether"),
        ("", "To be"),
        ("the slings and ", "arrows"),
    ]
    results = loglikelihood(model, tok, requests, batch_size=3)
    for (context, continuation), (logprob, greedy) in zip(requests, results):
        context_ids, continuation_ids = encode_pair(tok, context, continuation)
        expected, expected_greedy = by_hand(model, context_ids + continuation_ids, len(continuation_ids))
        assert logprob == pytest.approx(expected, abs=1e-4)
        assert greedy == expected_greedy


def test_greedy_flag_is_true_for_the_models_own_continuation(model, tok):
    checked = 0
    words = TEXT.split(" ")
    for n_words in range(2, 30):
        context = " ".join(words[:n_words])
        with torch.no_grad():
            top = model(torch.tensor([tok.encode_ordinary(context)[-16:]]))[0][0, -1].argmax().item()
        continuation = tok.decode([top])
        if not continuation or encode_pair(tok, context, continuation)[1] != [top]:
            continue  # the top token does not survive re-tokenization here
        assert loglikelihood(model, tok, [(context, continuation)])[0][1] is True
        checked += 1
    assert checked >= 3
    assert loglikelihood(model, tok, [("whether 'tis nobler", " zzz")])[0][1] is False


def test_shared_context_batched_and_single_agree(model, tok):
    context = "or to take arms against a sea of"
    choices = [" troubles", " slings and arrows", " the mind", " x"]
    requests = [(context, choice) for choice in choices] + [("whether 'tis", " nobler")]
    together = loglikelihood(model, tok, requests, batch_size=2)
    alone = [loglikelihood(model, tok, [request])[0] for request in requests]
    for (a, greedy_a), (b, greedy_b) in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-4)
        assert greedy_a == greedy_b


def test_shared_context_runs_once(model, tok, monkeypatch):
    calls = []
    original = GPT.hidden_states

    def counting(self, idx, *args, **kwargs):
        calls.append(tuple(idx.shape))
        return original(self, idx, *args, **kwargs)

    monkeypatch.setattr(GPT, "hidden_states", counting)
    context = "against a sea of"
    loglikelihood(model, tok, [(context, choice) for choice in (" troubles", " slings and arrows", " the mind")])
    context_tokens = len(tok.encode_ordinary(context))
    assert calls[0] == (1, context_tokens - 1)  # the context, once, into the KV cache
    assert len(calls) == 2 and calls[1][0] == 3  # then the three choices together
    calls.clear()
    together = loglikelihood(model, tok, [("", " to be"), ("", " or not"), ("", "x")])
    assert len(calls) == 1  # a one-token context (<|endoftext|>) needs no cache
    monkeypatch.undo()
    alone = [loglikelihood(model, tok, [("", text)])[0] for text in (" to be", " or not", "x")]
    assert [score for score, _ in together] == pytest.approx([score for score, _ in alone], abs=1e-4)
    assert [greedy for _, greedy in together] == [greedy for _, greedy in alone]


def test_long_inputs_are_truncated_on_the_left(model, tok):
    context = TEXT[:300]
    context_ids, continuation_ids = encode_pair(tok, context, " question")
    assert len(context_ids) > 2 * model.config.n_positions
    window = (context_ids + continuation_ids)[-(model.config.n_positions + 1) :]
    expected, _ = by_hand(model, window, len(continuation_ids))
    for request_list in ([(context, " question")], [(context, " question"), (context, " fortune")]):
        assert loglikelihood(model, tok, request_list)[0][0] == pytest.approx(expected, abs=1e-4)


def test_training_mode_is_restored_and_dropout_is_off(tok):
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_positions=16, n_embd=16, n_layer=1, n_head=2, dropout=0.5))
    model.train()
    first = loglikelihood(model, tok, [("to be", " or not")])
    second = loglikelihood(model, tok, [("to be", " or not")])
    assert first == second
    assert model.training


@pytest.mark.parametrize(
    "bad, message",
    [
        ([("to be", "")], "continuation of request 0 is empty"),
        ([("to be", 3)], "continuation of request 0 must be a str"),
        ([(None, " or")], "context of request 0 must be a str"),
        (["to be or"], "request 0 must be a (context, continuation) pair"),
        ([("", "to be " * 40)], "more than the model's context of 16"),
    ],
)
def test_loglikelihood_bad_requests(model, tok, bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        loglikelihood(model, tok, bad)


def test_vocabulary_mismatch_is_refused(model, tok):
    other = Tokenizer.train(TEXT, vocab_size=290)
    with pytest.raises(ValueError, match="the tokenizer has 290 tokens but the model's vocabulary has 300"):
        check_vocabularies(model, other)
    with pytest.raises(ValueError, match="vocabulary"):
        loglikelihood(model, other, [("to be", " or")])
    with pytest.raises(ValueError, match="vocabulary"):
        loglikelihood_rolling(model, other, ["to be"])


def test_empty_context_needs_an_end_of_text_token(tok):
    plain = Tokenizer(tok.merges, special_tokens={})
    model = GPT(GPTConfig(vocab_size=plain.vocab_size, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="no <\\|endoftext\\|> token"):
        loglikelihood(model, plain, [("", "to be")])
    assert loglikelihood(model, plain, [("to", " be")])[0][0] < 0


@pytest.mark.parametrize("length", [0, 1, 4, 5, 9, 10, 11, 23])
@pytest.mark.parametrize("stride", [None, 1, 2, 3, 5])
def test_rolling_windows_predict_every_token_once_with_enough_context(length, stride):
    window = 5
    ids = list(range(100, 100 + length))
    predicted = []
    for number, (tokens, n_scored) in enumerate(rolling_windows(ids, window, prefix_id=7, stride=stride)):
        assert len(tokens) - 1 <= window and 1 <= n_scored <= len(tokens) - 1
        predicted += tokens[-n_scored:]
        context = len(tokens) - 1 - n_scored
        if number > 0:
            assert context >= window - (stride or window)
            assert tokens == ([7] + ids)[predicted.index(tokens[-1]) + 1 - len(tokens) + 1 :][: len(tokens)]
    assert predicted == ids


def test_rolling_windows_bad_stride():
    for stride in (0, 6, 2.5):
        with pytest.raises(ValueError, match="stride"):
            rolling_windows([1, 2, 3], 5, prefix_id=0, stride=stride)


def test_loglikelihood_rolling_by_hand(model, tok):
    short = "To be, or not"
    long = TEXT[:200]
    rolled = loglikelihood_rolling(model, tok, [short, long, ""], batch_size=2)
    assert rolled[0] == pytest.approx(loglikelihood(model, tok, [("", short)])[0][0], abs=1e-4)
    assert rolled[2] == 0.0
    ids = [tok.eot_id] + tok.encode_ordinary(long)
    window = model.config.n_positions
    expected = 0.0
    for target in range(1, len(ids)):  # disjoint windows, recomputed token by token
        window_index = (target - 1) // window
        last_target = min((window_index + 1) * window, len(ids) - 1)
        start = max(0, last_target - window)  # the last window keeps a full-length context
        with torch.no_grad():
            logp = model(torch.tensor([ids[start:target]]))[0][0, -1].log_softmax(-1)
        expected += logp[ids[target]].item()
    assert rolled[1] == pytest.approx(expected, abs=1e-3)
    sliding = loglikelihood_rolling(model, tok, [long], stride=1)[0]
    full_context = 0.0
    for end in range(1, len(ids)):  # stride 1: each token after as much context as fits
        with torch.no_grad():
            logp = model(torch.tensor([ids[max(0, end - window) : end]]))[0][0, -1].log_softmax(-1)
        full_context += logp[ids[end]].item()
    assert sliding == pytest.approx(full_context, abs=1e-3)


def test_loglikelihood_rolling_bad_text(model, tok):
    with pytest.raises(ValueError, match="text 1 must be a str"):
        loglikelihood_rolling(model, tok, ["fine", b"bytes"])
    with pytest.raises(ValueError, match="wrap it as \\[text\\]"):
        loglikelihood_rolling(model, tok, "one text")


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, None])
def test_bad_batch_size(model, tok, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        loglikelihood(model, tok, [("to be", " or")], batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size"):
        loglikelihood_rolling(model, tok, ["to be"], batch_size=batch_size)


def test_loglikelihood_per_request_equals_the_harness(setup):
    model, tok, harness = setup
    lambada = Lambada.load(FIXTURES / "lambada_test.jsonl").requests()
    choices = [
        ("Question: Which is the largest planet? Answer:", choice)
        for choice in (" Jupiter", " Mars", " the Sun", " a small moon of Saturn")
    ]
    choices += [("The river flows to the", choice) for choice in (" sea", " mountains")]
    edge = [("", "Hello world"), ("The cat sat on the ", "mat"), ("word " * 40, "end"), ("A", " b c d e f g")]
    greedy = greedy_requests(
        model,
        tok,
        [
            "The weather today is",
            "Once upon a",
            "In 1846 the bridge",
            "She opened the door and",
            "The results of the",
            "He said that",
        ],
    )
    requests = lambada + choices + edge + greedy
    ours = loglikelihood(model, tok, requests, batch_size=5)
    theirs = harness.loglikelihood(
        [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(requests)], disable_tqdm=True
    )
    for request, (our_logprob, our_greedy), (their_logprob, their_greedy) in zip(requests, ours, theirs):
        assert close(our_logprob, their_logprob), (request, our_logprob, their_logprob)
        assert our_greedy == their_greedy, request
    assert greedy and all(is_greedy for _, is_greedy in theirs[-len(greedy) :])  # both flags were exercised


def test_loglikelihood_rolling_per_text_equals_the_harness(setup):
    model, tok, harness = setup
    texts = WikiText.load(FIXTURES / "wiki.test.raw").requests()
    texts += ["short", "x", Lambada.load(FIXTURES / "lambada_test.jsonl").texts[0]]
    assert max(len(tok.encode_ordinary(text)) for text in texts) > 3 * model.config.n_positions  # several windows
    ours = loglikelihood_rolling(model, tok, texts, batch_size=3)
    theirs = harness.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(texts)], disable_tqdm=True
    )
    for text, our_logprob, their_logprob in zip(texts, ours, theirs):
        assert close(our_logprob, their_logprob), (text[:40], our_logprob, their_logprob)


@pytest.mark.parametrize("length", [1, 5, 31, 32, 33, 64, 65, 100])
def test_rolling_windows_are_the_harness_windows(length):
    ids = list(range(1000, 1000 + length))
    theirs = [
        (context + continuation, len(continuation))
        for context, continuation in map(
            lm_utils.make_disjoint_window,
            lm_utils.get_rolling_token_windows(token_list=ids, prefix_token=7, max_seq_len=32, context_len=1),
        )
    ]
    assert rolling_windows(ids, 32, prefix_id=7) == theirs


def test_wikitext_detokenizer_is_the_harness_detokenizer():
    for page in wikitext_pages(FIXTURES / "wiki.test.raw"):
        assert wikitext_detokenize(page) == wikitext_detokenizer({"page": page})


def test_task_metrics_equal_the_harness_tasks(setup, tmp_path):
    "LAMBADA and WikiText through `simple_evaluate` with the harness's own templates and metrics (local YAML)."
    model, tok, harness = setup
    pages = wikitext_pages(FIXTURES / "wiki.test.raw")
    pages_file = tmp_path / "wikitext_pages.jsonl"
    pages_file.write_text("".join(json.dumps({"page": page}) + "\n" for page in pages))
    texts = Lambada.load(FIXTURES / "lambada_test.jsonl").texts
    greedy = greedy_requests(
        model,
        tok,
        [
            "The weather today is",
            "Once upon a",
            "In 1846 the bridge",
            "He said that",
            "She opened the door and",
            "The results of the",
            "They walked into",
        ],
    )
    texts += [context + word for context, word in greedy if word.startswith(" ") and " " not in word[1:]]
    assert len(texts) > 10  # passages the model gets right too: the accuracy is not 0
    lambada_file = tmp_path / "lambada_test.jsonl"
    lambada_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    (tmp_path / "lambada_fixture.yaml").write_text(LAMBADA_YAML.format(path=lambada_file))
    (tmp_path / "wikitext_fixture.yaml").write_text(WIKITEXT_YAML.format(path=pages_file))
    (tmp_path / "preprocess_wikitext.py").write_text(
        "from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer, process_results\n"
    )
    results = lm_eval.simple_evaluate(
        model=harness,
        tasks=["lambada_gpt2_edu_fixture", "wikitext_gpt2_edu_fixture"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        bootstrap_iters=0,
    )
    theirs_lambada = results["results"]["lambada_gpt2_edu_fixture"]
    theirs_wikitext = results["results"]["wikitext_gpt2_edu_fixture"]
    ours_lambada = Lambada.load(lambada_file).evaluate(model, tok)
    assert 0 < ours_lambada["acc"] < 1
    ours_wikitext = WikiText(pages).evaluate(model, tok)
    assert ours_lambada["acc"] == theirs_lambada["acc,none"]
    assert math.isclose(ours_lambada["perplexity"], theirs_lambada["perplexity,none"], rel_tol=1e-5)
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert math.isclose(ours_wikitext[metric], theirs_wikitext[f"{metric},none"], rel_tol=1e-5), metric
