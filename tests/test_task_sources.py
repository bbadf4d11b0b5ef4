"""The zero-shot tasks read from Hugging Face dataset layouts (offline, local folders laid out as the Hub's
repositories), their errors, and the paper's whole-word LAMBADA prediction against a step-by-step reference."""
import builtins
import json
import re
from pathlib import Path

import pytest
import torch

from gpt2_edu.cloze import Cloze, read_cbt
from gpt2_edu.corpus import CorpusError, hf_dataset
from gpt2_edu.lm_tasks import PennTreebank
from gpt2_edu.tasks import STOP_WORDS, Lambada, TaskFormatError, WikiText, predict_last_words, wikitext_pages
from gpt2_edu.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "zeroshot"


def hub_folder(root: Path, config: str, rows: list[dict]) -> str:
    "A local dataset repository: one JSON Lines file per split, declared in the dataset card's `configs`."
    (root / config).mkdir(parents=True)
    (root / config / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: {config}\n  data_files:\n"
                                    f"  - split: test\n    path: {config}/test.jsonl\n---\n")
    return str(root)


def cbt_rows(path: Path) -> list[dict]:
    "The rows of the Hub's CBT, made from a file in the release's format."
    rows = []
    for block in path.read_text().strip().split("\n\n"):
        lines = [line.split(" ", 1)[1] for line in block.split("\n")]
        query, answer, _, options = lines[20].split("\t")
        rows.append({"sentences": lines[:20], "question": query, "answer": answer, "options": options.split("|")})
    return rows


def test_each_loader_reads_the_hub_layout_as_the_release_file(tmp_path):
    texts = Lambada.load(FIXTURES / "lambada_test.jsonl").texts
    assert Lambada.from_hf(hub_folder(tmp_path / "l", "default", [{"text": t} for t in texts])).texts == texts
    pages = wikitext_pages(FIXTURES / "wiki.test.raw")
    folder = hub_folder(tmp_path / "w", "wikitext-2-raw-v1", [{"page": p} for p in pages])
    assert WikiText.from_hf(folder).pages == pages
    cbt = FIXTURES / "cbtest_CN_test_sample.txt"
    assert Cloze.from_hf(hub_folder(tmp_path / "c", "CN", cbt_rows(cbt)), "CN").examples == read_cbt(cbt)
    ptb = PennTreebank.load(FIXTURES / "ptb.test.txt")
    folder = hub_folder(tmp_path / "p", "penn_treebank", [{"sentence": s.strip()} for s in ptb.sentences])
    from_hub = PennTreebank.from_hf(folder, limit=3)
    assert from_hub.sentences == ptb.sentences[:3] and from_hub.word_count() == PennTreebank(ptb.sentences[:3]).word_count()


def test_malformed_rows_name_the_dataset_and_the_row(tmp_path):
    with pytest.raises(TaskFormatError, match=r"has no column 'text' \(its columns: \['passage'\]\)"):
        Lambada.from_hf(hub_folder(tmp_path / "a", "default", [{"passage": "a b"}]))
    with pytest.raises(TaskFormatError, match=r"row 1: the column 'text' holds int, not text"):
        Lambada.from_hf(hub_folder(tmp_path / "b", "default", [{"text": "a b"}, {"text": 7}]))
    rows = cbt_rows(FIXTURES / "cbtest_NE_test_sample.txt")
    rows[1]["options"] = rows[1]["options"][:9]
    with pytest.raises(TaskFormatError, match=r"row 1: 9 candidates .* not 10 non-empty ones"):
        Cloze.from_hf(hub_folder(tmp_path / "c", "NE", rows), "NE")
    rows = cbt_rows(FIXTURES / "cbtest_NE_test_sample.txt")
    rows[0]["sentences"] = rows[0]["sentences"][:19]
    with pytest.raises(TaskFormatError, match=r"row 0: 19 context sentences; a CBT question has 20"):
        Cloze.from_hf(hub_folder(tmp_path / "d", "NE", rows), "NE")
    with pytest.raises(TaskFormatError, match=r"row 1: the word 'Capital' has capitals"):
        PennTreebank.from_hf(hub_folder(tmp_path / "e", "penn_treebank", [{"sentence": "a b"}, {"sentence": "Capital x"}]))
    with pytest.raises(CorpusError, match="could not load the Hugging Face dataset"):
        Lambada.from_hf(str(tmp_path / "nowhere"))


def test_without_the_datasets_package_the_error_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(CorpusError, match=r"pip install 'gpt2_edu\[datasets\]'"):
        hf_dataset("EleutherAI/lambada_openai", "default", "test")


@pytest.fixture(scope="module")
def tiny(lively_gpt):
    tok = Tokenizer.train("the cat sat on the mat and the dog ran to the park with him " * 20, vocab_size=280)
    model = lively_gpt(tok.vocab_size, n_positions=48, noise=0.2)
    return model, tok


def reference_prediction(model, tok, context, stop_words, top_k, max_tokens):
    "One candidate at a time, one token at a time, no cache, no batch: the definition of `predict_last_words`."
    ids = tok.encode_ordinary(context)[-(model.config.n_positions - max_tokens):]
    with torch.no_grad():
        first_logits = model(torch.tensor([ids]))[0][0, -1, :tok.vocab_size]
    for first in first_logits.topk(top_k).indices.tolist():
        text = tok.decode([first])
        if not re.match(r" [A-Za-z]", text):
            continue
        sequence = ids + [first]
        while len(sequence) - len(ids) < max_tokens:
            word = re.match(r" ?([A-Za-z][A-Za-z'-]*)", tok.decode(sequence[len(ids):]))[1]
            if word != tok.decode(sequence[len(ids):]).removeprefix(" "):
                break
            with torch.no_grad():
                sequence.append(model(torch.tensor([sequence]))[0][0, -1].argmax().item())
        word = re.match(r" ?([A-Za-z][A-Za-z'-]*)", tok.decode(sequence[len(ids):]))[1]
        if word.lower() not in stop_words:
            return word
    return None


@pytest.mark.parametrize("stop_words", [frozenset(), STOP_WORDS], ids=["no filter", "stop-word filter"])
def test_predict_last_words_equals_the_step_by_step_definition(tiny, stop_words):
    model, tok = tiny
    contexts = ["the cat sat on", "the dog ran to the park with", "and the", "him and the cat sat on the mat and"]
    ours = predict_last_words(model, tok, contexts, stop_words, top_k=12, max_tokens=5)
    assert ours == [reference_prediction(model, tok, c, stop_words, 12, 5) for c in contexts]
    assert any(word is not None for word in ours)
    if stop_words:
        assert not [word for word in ours if word is not None and word.lower() in STOP_WORDS]
        assert ours != predict_last_words(model, tok, contexts, top_k=12, max_tokens=5)   # the filter changed answers


def test_word_accuracy_counts_whole_words_only(tiny):
    model, tok = tiny
    contexts = ["the dog ran to the park with", "the cat sat on", "and the", "him and the cat sat on the mat and"]
    context, predicted = next((c, p) for c, p in zip(contexts, predict_last_words(model, tok, contexts)) if p)
    task = Lambada([f"{context} {predicted}", f"{context} {predicted}s", f"{context} {predicted[:-1] or 'x'}"])
    assert task.word_accuracy(model, tok) == pytest.approx(1 / 3)
