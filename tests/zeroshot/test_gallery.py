"""The zero-shot gallery (gpt2_edu.zeroshot.gallery), offline: a small random GPT-2 saved in Hugging Face's format
as a snapshot of a temporary HF cache is found and loaded as real GPT-2 would be, every task gets an answer, the
first line of the report names the checkpoint; without it, the miniature is trained and answers instead."""

from pathlib import Path

import pytest
import torch

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.paper import PAPER_SIZES
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.gallery import (
    EXHIBITS,
    GPT2_NAMES,
    find_gpt2,
    gallery_model,
    gallery_report,
    gallery_tasks,
    news_article,
    paper_numbers,
    paper_size,
    pose,
    train_miniature,
)

DATA = Path(__file__).parents[2] / "nbs" / "data"
REVISION = "607a30d783dfa663caf39e06633721c8d4cfcd7e"  # any commit hash: the cache names snapshots by revision


def _snapshot(hub: Path, name: str = "gpt2", weights: bool = True) -> tuple[Path, GPT]:
    "A random GPT-2 (GPT-2's vocabulary, 2 layers) laid out as `huggingface-cli download NAME` leaves it in `hub`."
    repo = hub / ("models--" + name.replace("/", "--"))
    folder = repo / "snapshots" / REVISION
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50257, n_positions=128, n_embd=32, n_layer=2, n_head=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # away from the init: varied, decisive predictions
    model.save_pretrained(folder)
    gpt2_tokenizer().save(folder)
    for ours in ("encoder.json", "vocab.bpe"):  # a Hub snapshot has only HF's names: vocab.json, merges.txt
        (folder / ours).unlink()
    if not weights:
        (folder / "model.safetensors").unlink()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return folder, model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    "An empty Hugging Face cache of our own, and no $GPT2_EDU_GPT2."
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("GPT2_EDU_GPT2", raising=False)
    return tmp_path / "hub"


def test_a_gpt2_in_the_hf_cache_answers_every_task(hub):
    folder, saved = _snapshot(hub)
    assert find_gpt2() == folder
    answerer = gallery_model(steps=1, progress=False)
    assert answerer.tok.vocab_size == 50257 and answerer.tok.eot_id == 50256  # GPT-2's tokenizer, from vocab.json
    ids = torch.tensor([answerer.tok.encode("The trophy doesn't fit into the brown suitcase")])
    assert torch.equal(answerer.model(ids)[0], saved(ids)[0])  # the very weights that were saved
    assert answerer.size is None  # 2 layers: not one of the paper's four sizes
    results = pose(answerer, gallery_tasks(DATA, n=2))
    assert list(results) == list(EXHIBITS)
    for key, shown in results.items():
        assert len(shown) == 2, key
        for example in shown:
            assert example.answer.strip(), f"{key}: no answer to {example.asked!r}"
            assert example.asked and example.expected and example.verdict
    report = gallery_report(answerer, results)
    first = report.splitlines()[0]
    assert first == answerer.line
    assert first.startswith("Answered by: GPT-2 'gpt2' from the local Hugging Face cache (2 layers, 32 wide")
    assert "miniature" not in first
    for exhibit in EXHIBITS.values():
        assert paper_numbers(exhibit) in report  # each task shown beside the paper's numbers


def test_the_hub_prefixed_name_and_the_environment_variable_are_found(hub, monkeypatch, tmp_path):
    folder, _ = _snapshot(hub, "openai-community/gpt2-medium")
    assert find_gpt2() == folder
    assert gallery_model(steps=1, progress=False).line.startswith(
        "Answered by: GPT-2 'openai-community/gpt2-medium' from the local Hugging Face cache"
    )
    monkeypatch.setenv("GPT2_EDU_GPT2", "gpt2-xl")  # a name: only that size will do
    assert find_gpt2() is None
    monkeypatch.setenv("GPT2_EDU_GPT2", str(folder))  # a folder
    assert find_gpt2() == folder
    monkeypatch.setenv("GPT2_EDU_GPT2", str(tmp_path))  # a folder, but no checkpoint: say so, never fall back
    with pytest.raises(ValueError, match="a folder without a checkpoint"):
        find_gpt2()


def test_an_interrupted_download_is_not_gpt2(hub):
    _snapshot(hub, weights=False)  # config.json and tokenizer, no weights
    assert find_gpt2() is None


def test_without_gpt2_the_miniature_answers(hub, tmp_path):
    assert find_gpt2() is None
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        answerer = train_miniature(steps=3, folder=tmp_path / "mini", progress=False)  # trains on one thread
        assert torch.get_num_threads() == 2  # ...and gives the setting back
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "mini" / "config.json").is_file() and (tmp_path / "mini" / "vocab.json").is_file()
    assert answerer.line.startswith("Answered by: our miniature, NOT GPT-2")
    assert "3 steps" in answerer.line
    assert answerer.tok.vocab_size == answerer.model.config.vocab_size == 512
    results = pose(answerer, gallery_tasks(DATA, n=1))
    assert [len(shown) for shown in results.values()] == [1] * len(EXHIBITS)
    assert gallery_report(answerer, results).splitlines()[0] == answerer.line


def test_gallery_model_trains_the_miniature_when_no_gpt2_is_found(hub):
    assert "miniature" in gallery_model(steps=1, progress=False).line


def test_paper_size_names_the_four_shapes_only():
    with torch.device("meta"):
        sizes = [paper_size(GPT(GPTConfig.from_preset(name))) for name in GPT2_NAMES]
        other = paper_size(GPT(GPTConfig.from_preset("gpt2", vocab_size=512)))
    assert sizes == list(PAPER_SIZES)
    assert other is None
    assert paper_numbers(EXHIBITS["lambada"], "345M").count("this size") == 1


def test_the_examples_come_from_the_releases():
    tasks = gallery_tasks(DATA, n=4)
    assert tasks["lambada"].texts[0].endswith("I don't care about signs")
    assert [s.label for s in tasks["winograd"].schemas] == [0, 1, 0, 1]  # two pairs: one word flips the answer
    assert tasks["answer"].questions[0].question == "when was the last time anyone was on the moon"
    assert len(tasks["answer"].shots) == 8 and len(tasks["translate"].shots) == 5
    real = tasks["summarize"].articles[0]
    assert real.id == "1016-latimes" and real.article.startswith("A black box in your car?") and not real.highlights
    assert all(article.highlights for article in tasks["summarize"].articles[1:])
    with pytest.raises(ValueError, match="no document 'nope'"):
        news_article(DATA / "releases" / "wmt14" / "newstest2014-fren-src.en.sgm", "nope")
