"""The task base (`gpt2_edu.zeroshot.task`): the Hub's copies of the datasets, read like the release files."""

import builtins
import codecs
import dataclasses
import json
from pathlib import Path

import pytest

from gpt2_edu.corpus import CorpusError
from gpt2_edu.hub import hf_dataset
from gpt2_edu.zeroshot.cloze import Cloze, read_cbt
from gpt2_edu.zeroshot.lambada import Lambada
from gpt2_edu.zeroshot.lm_tasks import OneBillionWord, PennTreebank, WikiText, wikitext_pages
from gpt2_edu.zeroshot.reading_qa import CoQA, NaturalQuestions
from gpt2_edu.zeroshot.summarize_translate import Summarization, Translation
from gpt2_edu.zeroshot.task import TaskFormatError, read_jsonl
from gpt2_edu.zeroshot.winograd import Winograd

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "zeroshot"


def hub_folder(root: Path, config: str, rows: list[dict]) -> str:
    "A local dataset repository: one JSON Lines file per split, declared in the dataset card's `configs`."
    (root / config).mkdir(parents=True)
    (root / config / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: test\n    path: {config}/test.jsonl\n---\n"
    )
    return str(root)


def cbt_rows(path: Path) -> list[dict]:
    "The rows of the Hub's CBT, made from a file in the release's format."
    rows = []
    for block in path.read_text().strip().split("\n\n"):
        lines = [line.split(" ", 1)[1] for line in block.split("\n")]
        query, answer, _, options = lines[20].split("\t")
        rows.append({"sentences": lines[:20], "question": query, "answer": answer, "options": options.split("|")})
    return rows


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        Lambada.load(tmp_path / "missing.jsonl")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(TaskFormatError, match="line 2: bytes that are not UTF-8"):
        read_jsonl(path, ("text",))


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
    assert (
        from_hub.sentences == ptb.sentences[:3]
        and from_hub.word_count() == PennTreebank(ptb.sentences[:3]).word_count()
    )


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
        PennTreebank.from_hf(
            hub_folder(tmp_path / "e", "penn_treebank", [{"sentence": "a b"}, {"sentence": "Capital x"}])
        )
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


# --- a copy saved on Windows, or with a byte-order mark, reads as the release does ---

DATA = Path(__file__).parents[2] / "nbs" / "data"


def windows_copy(source: Path, target: Path) -> Path:
    "The file as a Windows editor saves it: CRLF line ends and a UTF-8 byte-order mark."
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_bytes().decode("utf-8")
    target.write_bytes(codecs.BOM_UTF8 + text.replace("\n", "\r\n").encode("utf-8"))
    return target


def windows_tree(source: Path, target: Path) -> Path:
    "A folder of text files copied the same way."
    for path in sorted(source.rglob("*")):
        if path.is_file():
            windows_copy(path, target / path.relative_to(source))
    return target


TASK_FILES = {
    "LAMBADA": ("zeroshot/lambada_test.jsonl", Lambada.load),
    "WikiText": ("zeroshot/wiki.test.raw", WikiText.load),
    "PTB": ("zeroshot/ptb.test.txt", PennTreebank.load),
    "1BW": ("zeroshot/news.en.heldout-00000-of-00050", OneBillionWord.load),
    "CBT": ("zeroshot/cbtest_NE_test_sample.txt", Cloze.load),
    "CoQA": ("coqa/coqa-dev-v1.0.json", CoQA.load),
    "CoQA rows": ("coqa/coqa_validation.jsonl", CoQA.load),
    "NQ-open": ("nq_open/NQ-open.dev.jsonl", NaturalQuestions.load),
    "WSC273": ("wsc273/WSCollection.xml", Winograd.load),
    "WSC273 rows": ("wsc273/wsc273_test.jsonl", Winograd.load),
    "CNN/Daily Mail rows": ("cnn_dailymail/test.jsonl", Summarization.load),
}


def same_task(a, b) -> bool:
    "Equal tasks, apart from the file paths their reports name."
    where = dict(shots_from="") if hasattr(a, "shots_from") else {}
    return dataclasses.replace(a, **where) == dataclasses.replace(b, **where)


@pytest.mark.parametrize("name", TASK_FILES)
def test_a_windows_copy_with_a_byte_order_mark_reads_as_the_release(tmp_path, name):
    relative, load = TASK_FILES[name]
    copy = windows_copy(DATA / relative, tmp_path / Path(relative).name)
    assert same_task(load(copy), load(DATA / relative))


def test_windows_copies_of_folder_releases_read_as_the_release(tmp_path):
    stories = windows_tree(DATA / "cnn_dailymail", tmp_path / "cnn_dailymail")
    assert Summarization.load(stories / "url_lists" / "all_test.txt") == Summarization.load(
        DATA / "cnn_dailymail" / "url_lists" / "all_test.txt"
    )
    for source, target in [
        ("test/newstest2014-fren-src.en.sgm", "test/newstest2014-fren-ref.fr.sgm"),
        ("newstest2014.en", "newstest2014.fr"),
    ]:
        copies = [windows_copy(DATA / "wmt14" / side, tmp_path / "wmt14" / side) for side in (source, target)]
        assert same_task(Translation.load(*copies), Translation.load(DATA / "wmt14" / source, DATA / "wmt14" / target))
