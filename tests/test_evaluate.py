"The likelihood engine and the tasks (gpt2_edu.evaluate, gpt2_edu.tasks): semantics checked by hand, and bad input."
import json
import math

import pytest
import torch

from gpt2_edu.evaluate import encode_pair, loglikelihood, loglikelihood_rolling, rolling_windows, check_vocabularies
from gpt2_edu.model import GPT, GPTConfig
from gpt2_edu.tasks import Lambada, TaskFormatError, WikiText, read_jsonl, wikitext_detokenize, wikitext_pages
from gpt2_edu.tokenizer import Tokenizer
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "zeroshot"
TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
        "arrows of outrageous fortune, or to take arms against a sea of troubles, and by opposing end them. ") * 3


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(TEXT, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok, lively_gpt):
    return lively_gpt(tok.vocab_size, n_positions=16, noise=0.3, n_embd=16)


def by_hand(model, ids, n_scored):
    "Summed log-prob of the last `n_scored` of `ids` (each after the tokens before it that fit) and whether all are argmax."
    ids = ids[-(model.config.n_positions + 1):]
    with torch.no_grad():
        logp = model(torch.tensor([ids[:-1]]))[0][0].log_softmax(-1)     # (T, vocab)
    rows = range(len(ids) - 1 - n_scored, len(ids) - 1)
    total = sum(logp[r, ids[r + 1]].item() for r in rows)
    greedy = all(logp[r].argmax().item() == ids[r + 1] for r in rows)
    return total, greedy


def test_encode_pair_moves_trailing_spaces_and_uses_eot_for_empty_context(tok):
    assert encode_pair(tok, "to be ", "or") == encode_pair(tok, "to be", " or")
    context, continuation = encode_pair(tok, "to be", " or not")
    assert context + continuation == tok.encode_ordinary("to be or not")
    assert encode_pair(tok, "", "to be") == ([tok.eot_id], tok.encode_ordinary("to be"))


def test_loglikelihood_equals_the_sum_of_softmax_entries(model, tok):
    requests = [("To be, or not to", " be"), ("that is the", " question: whether"), ("", "To be"),
                ("the slings and ", "arrows")]
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
            continue                                # the top token does not survive re-tokenization here
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
    assert calls[0] == (1, context_tokens - 1)                  # the context, once, into the KV cache
    assert len(calls) == 2 and calls[1][0] == 3                 # then the three choices together
    calls.clear()
    together = loglikelihood(model, tok, [("", " to be"), ("", " or not"), ("", "x")])
    assert len(calls) == 1                                      # a one-token context (<|endoftext|>) needs no cache
    monkeypatch.undo()
    alone = [loglikelihood(model, tok, [("", text)])[0] for text in (" to be", " or not", "x")]
    assert [score for score, _ in together] == pytest.approx([score for score, _ in alone], abs=1e-4)
    assert [greedy for _, greedy in together] == [greedy for _, greedy in alone]


def test_long_inputs_are_truncated_on_the_left(model, tok):
    context = TEXT[:300]
    context_ids, continuation_ids = encode_pair(tok, context, " question")
    assert len(context_ids) > 2 * model.config.n_positions
    window = (context_ids + continuation_ids)[-(model.config.n_positions + 1):]
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


@pytest.mark.parametrize("bad, message", [
    ([("to be", "")], "continuation of request 0 is empty"),
    ([("to be", 3)], "continuation of request 0 must be a str"),
    ([(None, " or")], "context of request 0 must be a str"),
    (["to be or"], "request 0 must be a (context, continuation) pair"),
    ([("", "to be " * 40)], "more than the model's context of 16"),
])
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
            assert tokens == ([7] + ids)[predicted.index(tokens[-1]) + 1 - len(tokens) + 1:][:len(tokens)]
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
    for target in range(1, len(ids)):          # disjoint windows, recomputed token by token
        window_index = (target - 1) // window
        last_target = min((window_index + 1) * window, len(ids) - 1)
        start = max(0, last_target - window)   # the last window keeps a full-length context
        with torch.no_grad():
            logp = model(torch.tensor([ids[start:target]]))[0][0, -1].log_softmax(-1)
        expected += logp[ids[target]].item()
    assert rolled[1] == pytest.approx(expected, abs=1e-3)
    sliding = loglikelihood_rolling(model, tok, [long], stride=1)[0]
    full_context = 0.0
    for end in range(1, len(ids)):            # stride 1: each token after as much context as fits
        with torch.no_grad():
            logp = model(torch.tensor([ids[max(0, end - window):end]]))[0][0, -1].log_softmax(-1)
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


# ---- tasks ----

def test_lambada_fixture_requests_and_metrics(model, tok):
    task = Lambada.load(FIXTURES / "lambada_test.jsonl")
    assert len(task.texts) == 10
    context, word = task.requests()[1]
    assert word == " map" and context.endswith("she had dropped the")
    results = loglikelihood(model, tok, task.requests())
    metrics = task.score(results)
    assert metrics["acc"] == sum(g for _, g in results) / 10
    assert metrics["perplexity"] == pytest.approx(math.exp(-sum(s for s, _ in results) / 10))
    assert task.evaluate(model, tok, batch_size=3) == pytest.approx(metrics)


def test_lambada_passage_without_space():
    assert Lambada(["Hello"]).requests() == [("", " Hello")]


@pytest.mark.parametrize("content, message", [
    ('{"text": "a b"}\n{"text": "a b"\n', "line 2: not valid JSON"),
    ('{"text": "a b"}\n\n{"txt": "a b"}\n', "line 3: no string field 'text'"),
    ('["a b"]\n', "line 1: no string field 'text'"),
    ('{"text": 3}\n', "line 1: no string field 'text'"),
    ('\n\n', "holds no records"),
])
def test_lambada_malformed_files(tmp_path, content, message):
    path = tmp_path / "lambada_test.jsonl"
    path.write_text(content)
    with pytest.raises(TaskFormatError, match=message) as error:
        Lambada.load(path)
    assert str(path) in str(error.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        Lambada.load(tmp_path / "missing.jsonl")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(TaskFormatError, match="line 2: bytes that are not UTF-8"):
        read_jsonl(path, ("text",))


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
    words = sum(len(page.split()) + 2 for page in task.pages)   # re.split(r"\s+") also counts the two ends
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
