"""LAMBADA (`gpt2_edu.zeroshot.lambada`): the release format, both protocols, bad files."""

import math
import re
from pathlib import Path

import pytest
import torch

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from gpt2_edu.zeroshot.engine import loglikelihood
from gpt2_edu.zeroshot.lambada import STOP_WORDS, Lambada, LambadaPaper, predict_last_words, split_last_word
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


@pytest.fixture(scope="module")
def tiny(lively_gpt):
    tok = Tokenizer.train("the cat sat on the mat and the dog ran to the park with him " * 20, vocab_size=280)
    model = lively_gpt(tok.vocab_size, n_positions=48, noise=0.2)
    return model, tok


def reference_prediction(model, tok, context, stop_words, top_k, max_tokens):
    "One candidate at a time, one token at a time, no cache, no batch: the definition of `predict_last_words`."
    ids = tok.encode_ordinary(context)[-(model.config.n_positions - max_tokens) :]
    with torch.no_grad():
        first_logits = model(torch.tensor([ids]))[0][0, -1, : tok.vocab_size]
    for first in first_logits.topk(top_k).indices.tolist():
        text = tok.decode([first])
        if not re.match(r" [A-Za-z]", text):
            continue
        sequence = ids + [first]
        while len(sequence) - len(ids) < max_tokens:
            word = re.match(r" ?([A-Za-z][A-Za-z'-]*)", tok.decode(sequence[len(ids) :]))[1]
            if word != tok.decode(sequence[len(ids) :]).removeprefix(" "):
                break
            with torch.no_grad():
                sequence.append(model(torch.tensor([sequence]))[0][0, -1].argmax().item())
        word = re.match(r" ?([A-Za-z][A-Za-z'-]*)", tok.decode(sequence[len(ids) :]))[1]
        if word.lower() not in stop_words:
            return word
    return None


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


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "a b"}\n{"text": "a b"\n', "line 2: not valid JSON"),
        ('{"text": "a b"}\n\n{"txt": "a b"}\n', "line 3: no string field 'text'"),
        ('["a b"]\n', "line 1: no string field 'text'"),
        ('{"text": 3}\n', "line 1: no string field 'text'"),
        ("\n\n", "holds no records"),
        ('{"text": "She said goodbye"}\n{"text": ""}\n', "passage 2: the passage is empty"),
        ('{"text": "  "}\n', "passage 1: the passage is empty"),
        ('{"text": "Goodbye"}\n', "passage 1: the passage is the single word 'Goodbye', so there is no context"),
    ],
)
def test_lambada_malformed_files(tmp_path, content, message):
    path = tmp_path / "lambada_test.jsonl"
    path.write_text(content)
    with pytest.raises(TaskFormatError, match=message) as error:
        Lambada.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("stop_words", [frozenset(), STOP_WORDS], ids=["no filter", "stop-word filter"])
def test_predict_last_words_equals_the_step_by_step_definition(tiny, stop_words):
    model, tok = tiny
    contexts = ["the cat sat on", "the dog ran to the park with", "and the", "him and the cat sat on the mat and"]
    passages = [context + " word" for context in contexts]  # the last word is what is predicted: any will do
    ours = predict_last_words(model, tok, passages, stop_words, top_k=12, max_tokens=5)
    assert ours == [reference_prediction(model, tok, c, stop_words, 12, 5) for c in contexts]
    assert any(word is not None for word in ours)
    if stop_words:
        assert not [word for word in ours if word is not None and word.lower() in STOP_WORDS]
        assert ours != predict_last_words(model, tok, passages, top_k=12, max_tokens=5)  # the filter changed answers


def test_word_accuracy_counts_whole_words_only(tiny):
    model, tok = tiny
    contexts = ["the dog ran to the park with", "the cat sat on", "and the", "him and the cat sat on the mat and"]
    passages = [context + " word" for context in contexts]
    context, predicted = next((c, p) for c, p in zip(contexts, predict_last_words(model, tok, passages)) if p)
    task = Lambada([f"{context} {predicted}", f"{context} {predicted}s", f"{context} {predicted[:-1] or 'x'}"])
    assert task.word_accuracy(model, tok) == pytest.approx(1 / 3)


RELEASE = Path(__file__).parents[2] / "nbs" / "data" / "releases"


class Oracle(GPT):
    "A GPT that knows the passages: after any beginning of one, its most likely next token is the passage's own."

    def __init__(self, passages: list[list[int]], vocab_size: int):
        super().__init__(GPTConfig(vocab_size=vocab_size, n_positions=1024, n_embd=256, n_layer=1, n_head=1))
        self.after = {}
        for ids in passages:
            for end in range(1, len(ids)):
                self.after[tuple(ids[:end])] = ids[end]

    def hidden_states(self, idx, kv_cache=None, attention_mask=None):
        "Each position's state is the embedding of the token that follows it: the output layer then ranks it first."
        assert kv_cache is None, "the oracle reads whole sequences"
        assert attention_mask is None, "the oracle reads unpadded rows"
        rows = idx.tolist()
        nexts = [[self.after.get(tuple(row[: t + 1]), 0) for t in range(len(row))] for row in rows]
        return self.transformer.wte(torch.tensor(nexts))  # (B, T, n_embd)

    def generate(self, idx, max_new_tokens, **settings):
        return super().generate(idx, max_new_tokens, **{**settings, "use_cache": False})


@pytest.fixture(scope="module")
def real_lambada():
    "An excerpt of OpenAI's lambada_test.jsonl, GPT-2's tokenizer, and an oracle that knows every passage."
    from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer

    task = Lambada.load(RELEASE / "lambada_test.jsonl")
    tok = gpt2_tokenizer()
    torch.manual_seed(0)
    oracle = Oracle([tok.encode_ordinary(text) for text in task.texts], tok.vocab_size).eval()
    return task, tok, oracle


def test_every_real_passage_splits_before_a_bare_last_word(real_lambada):
    task, tok, _ = real_lambada
    for text in task.texts:
        context, spaced, word = split_last_word(tok, text)
        assert re.fullmatch(r"[A-Za-z][A-Za-z'-]*", word), (text[-30:], word)
        assert tok.decode(context) + (" " if spaced else "") + word == text  # nothing lost, nothing added
    quoted = [text for text in task.texts if not re.fullmatch(r"[A-Za-z][A-Za-z'-]*", text.split(" ")[-1])]
    assert len(quoted) == 40  # the excerpt keeps the release's passages whose last word follows a quote or break


def test_an_oracle_is_right_on_every_real_passage_under_the_papers_protocols(real_lambada):
    "What the paper's protocols score as right, the passage itself writes: no passage is lost to the format."
    task, tok, oracle = real_lambada
    assert task.last_token_accuracy(oracle, tok) == 1.0
    assert task.word_accuracy(oracle, tok) == 1.0
    scores = LambadaPaper(task.texts).evaluate(oracle, tok)
    assert scores["acc"] == scores["acc_word"] == 1.0
    targets = [split_last_word(tok, text)[2] for text in task.texts]
    filtered = sum(word.lower() not in STOP_WORDS for word in targets) / len(targets)
    assert scores["acc_word_filter"] == filtered  # the filter can only lose a passage whose answer is a stop word


def test_a_passage_without_a_last_word_is_refused():
    from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer

    with pytest.raises(TaskFormatError, match="does not end with a word"):
        split_last_word(gpt2_tokenizer(), "It ended with a number 42")
