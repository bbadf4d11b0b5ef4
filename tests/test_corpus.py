"""The corpus (`gpt2_edu.corpus`): Shakespeare's plays, a corpus of one's own, and the one split rule, with every bad
input."""

import dataclasses
import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from gpt2_edu.corpus import (
    KOREAN_FILE,
    MIN_WHOLE_DOCUMENTS,
    PLAYS,
    SPLITS,
    CorpusError,
    Document,
    _md_line,
    corpus_stats,
    join_documents,
    korean_constitution,
    korean_text,
    load_corpus,
    md_to_text,
    read_corpus,
    shakespeare,
    split_documents,
)
from gpt2_edu.tokenizer.tokenizer import Tokenizer
from tests.helpers import run_without_root_privileges

SPLIT_NAMES = ("train", "valid", "test")


def _lines(docs) -> list[str]:
    return [line for doc in docs for line in doc.text.splitlines(keepends=True)]


def _write_files(folder: Path, count: int, lines_per_file: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        text = "".join(f"file {number} line {line}\n" for line in range(lines_per_file))
        (folder / f"{number:03d}.txt").write_text(text, encoding="utf-8")
    return folder


def _assert_partition(source):
    "The three splits share nothing and together are the whole corpus: each document is its pieces, in split order."
    parts = {split: load_corpus(source, split) for split in SPLIT_NAMES}
    pieces = {}
    for split in SPLIT_NAMES:
        for doc in parts[split]:
            pieces.setdefault(doc.name, []).append(doc.text)
    whole = load_corpus(source, None)
    assert len({doc.name for doc in whole}) == len(whole)  # names identify documents here
    assert {name: "".join(texts) for name, texts in pieces.items()} == {doc.name: doc.text for doc in whole}
    return parts


def test_a_document_is_frozen():
    doc = Document("hello", "Hello, world!\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.text = "changed"


@pytest.mark.parametrize(
    "line, text",
    [
        ("_Thunder and lightning. Enter three Witches_", "Thunder and lightning. Enter three Witches"),
        ("*Sound a horn.*", "Sound a horn."),
        ("__\\[Awaking]_  ", "[Awaking]"),
        ("No, no; he'll __\\[ ]_  ", "No, no; he'll [ ]"),
        ("[Within]_  ", "[Within]"),
        ("You,'\\--or 'I would request you,'\\--or", "You,'--or 'I would request you,'--or"),
        ("1\\. A lively flourish of Trumpets.  ", "1. A lively flourish of Trumpets."),
        ("And are by me with child,' &amp; c. This is done:", "And are by me with child,' & c. This is done:"),
        ("**ROSENCRANTZ: & GUILDENSTERN:**  ", "ROSENCRANTZ: & GUILDENSTERN:"),
        ("a snake_case word and \\*literal stars\\*", "a snake_case word and *literal stars*"),
    ],
)
def test_md_line_drops_emphasis_escapes_and_entities(line, text):
    assert _md_line(line) == text


def test_md_to_text_of_nothing_is_one_newline():
    assert md_to_text("") == "\n"


def test_shakespeare_is_38_plays_the_same_on_every_call():
    assert len(shakespeare()) == 38
    assert shakespeare("valid") == shakespeare("valid")
    assert load_corpus() == shakespeare()  # the default source


@pytest.mark.parametrize(
    "load, split", [(shakespeare, "validation"), (lambda split: load_corpus("shakespeare", split), "dev")]
)
def test_an_unknown_split_lists_the_choices(load, split):
    with pytest.raises(
        CorpusError,
        match=re.escape(f"unknown split {split!r}; choose one of None (the whole corpus), 'train', 'valid', 'test'"),
    ):
        load(split)


def test_corpus_stats_of_no_documents_are_zero():
    assert corpus_stats([]) == {"documents": 0, "chars": 0, "words": 0, "bytes": 0}


def test_shakespeare_stats_add_up_and_each_held_out_split_is_about_8_percent():
    stats = {split: corpus_stats(shakespeare(split)) for split in ("train", "valid", "test", None)}
    for key in ("documents", "chars", "words", "bytes"):
        assert stats["train"][key] + stats["valid"][key] + stats["test"][key] == stats[None][key], key
    for split in ("valid", "test"):
        assert 0.07 < stats[split]["chars"] / stats[None]["chars"] < 0.09, split


def test_shakespeare_splits_by_play():
    parts = _assert_partition("shakespeare")
    names = {split: [doc.name for doc in docs] for split, docs in parts.items()}
    assert sorted(sum(names.values(), [])) == sorted(PLAYS)
    assert names["valid"] == list(SPLITS["valid"]) and names["test"] == list(SPLITS["test"])


def test_a_single_file_is_cut_at_line_breaks_90_5_5(tmp_path):
    text = "".join(f"line {number} of the only file\n" for number in range(1, 201))
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    parts = _assert_partition(tmp_path / "one.txt")
    counts = {split: len(_lines(docs)) for split, docs in parts.items()}
    assert counts == {"train": 180, "valid": 10, "test": 10}
    assert "".join(_lines(parts["train"] + parts["valid"] + parts["test"])) == text  # in order: a cut, not a shuffle
    assert all(line.endswith("\n") for line in _lines(parts["valid"]))  # no line cut in two


def test_few_files_are_each_cut_and_many_files_are_held_out_whole(tmp_path):
    few = _write_files(tmp_path / "few", 3, lines_per_file=40)
    parts = _assert_partition(few)
    assert [doc.name for doc in parts["valid"]] == ["003.txt"]  # cut as one text: the end
    assert [len(_lines(parts[split])) for split in SPLIT_NAMES] == [108, 6, 6]
    many = _write_files(tmp_path / "many", 45)
    parts = _assert_partition(many)
    assert [doc.name for doc in parts["valid"]] == ["019.txt", "039.txt"]
    assert [doc.name for doc in parts["test"]] == ["020.txt", "040.txt"]
    assert len(parts["train"]) == 41
    whole = {doc.name: doc.text for doc in read_corpus(many)}
    assert all(whole[doc.name] == doc.text for docs in parts.values() for doc in docs)  # files are never cut


def test_the_threshold_and_determinism(tmp_path):
    below = _write_files(tmp_path / "below", MIN_WHOLE_DOCUMENTS - 1)
    at = _write_files(tmp_path / "at", MIN_WHOLE_DOCUMENTS)
    assert [doc.name for doc in load_corpus(below, "valid")] == ["018.txt"]  # lines near the end
    _assert_partition(below)
    assert [doc.name for doc in load_corpus(at, "valid")] == [f"{MIN_WHOLE_DOCUMENTS - 1:03d}.txt"]
    assert load_corpus(at, "train") == load_corpus(at, "train")
    docs = read_corpus(at)
    assert load_corpus(docs, "test") == split_documents(docs, "test") == load_corpus(at, "test")


def test_read_corpus_names_files_by_path_in_a_folder_and_by_name_alone(tmp_path):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "emma.txt").write_text("Emma\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    assert [doc.name for doc in read_corpus(tmp_path)] == ["a.txt", "books/emma.txt"]
    assert read_corpus(tmp_path / "books" / "emma.txt") == [Document("emma.txt", "Emma\n")]
    assert read_corpus(str(tmp_path)) == read_corpus(tmp_path)  # a str path works too


def test_a_one_line_corpus_is_all_train(tmp_path):
    (tmp_path / "t.txt").write_text("tiny\n", encoding="utf-8")
    assert load_corpus(tmp_path) == [Document("t.txt", "tiny\n")]
    assert load_corpus(str(tmp_path), "train") == [Document("t.txt", "tiny\n")]


def test_twenty_lines_and_forty_files_split_18_1_1_and_36_2_2():
    "Together the splits hold every line of the corpus, each once."

    def lines_per_split(corpus):
        lines = {
            split: [line for doc in split_documents(corpus, split) for line in doc.text.splitlines()]
            for split in SPLIT_NAMES
        }
        assert sorted(sum(lines.values(), [])) == sorted(line for doc in corpus for line in doc.text.splitlines())
        return {split: len(found) for split, found in lines.items()}

    poem = Document("poem.txt", "".join(f"line {number}\n" for number in range(1, 21)))
    files_40 = [Document(f"{number:02d}.txt", f"file {number}\n") for number in range(1, 41)]
    assert lines_per_split([poem]) == {"train": 18, "valid": 1, "test": 1}
    assert lines_per_split(files_40) == {"train": 36, "valid": 2, "test": 2}


def test_a_split_with_no_text_is_a_clear_error():
    with pytest.raises(CorpusError, match=r"'valid' split of this corpus is empty.*add line breaks or more text"):
        split_documents([Document("one_line.txt", "a single line without a break")], "valid")
    with pytest.raises(CorpusError, match="unknown split 'dev'"):
        split_documents([Document("a", "x\n")], "dev")


def test_a_bpe_trained_on_the_train_split_never_sees_validation_text(tmp_path):
    # validation and test lines carry words that appear nowhere else; a BPE that saw them would learn them
    # 200 lines of equal length: the last 20 (10%) are held out, and only they carry the two rare words
    lines = [f"{f'the cat sat on the mat {number}':<40}\n" for number in range(180)]
    lines += [f"{'zebraquokka zebraquokka zebraquokka':<40}\n"] * 10 + [f"{'wombatnarwhal wombatnarwhal':<40}\n"] * 10
    (tmp_path / "corpus.txt").write_text("".join(lines), encoding="utf-8")
    train_text = join_documents(load_corpus(tmp_path / "corpus.txt", "train"))
    held_out = join_documents(
        load_corpus(tmp_path / "corpus.txt", "valid") + load_corpus(tmp_path / "corpus.txt", "test")
    )
    assert "zebraquokka" in held_out and "wombatnarwhal" in held_out
    assert "zebra" not in train_text and "wombat" not in train_text

    def learned(tok: Tokenizer) -> set[bytes]:
        return {left + right for left, right in tok.merges}

    trained_on_train = Tokenizer.train(train_text, 256 + 60 + 1)
    trained_on_all = Tokenizer.train(join_documents(load_corpus(tmp_path / "corpus.txt")), 256 + 60 + 1)
    assert not any(b"zebra" in token or b"wombat" in token for token in learned(trained_on_train))
    assert any(b"zebra" in token for token in learned(trained_on_all))  # the test can fail: a leak shows


def test_missing_empty_and_undecodable_files(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(CorpusError, match=f"'{missing}' does not exist"):
        read_corpus(missing)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match=f"'{empty}' is empty"):
        read_corpus(empty)
    bom_only = tmp_path / "bom.txt"
    bom_only.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(CorpusError, match=f"'{bom_only}' is empty"):
        read_corpus(bom_only)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("line one\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"is not valid UTF-8: byte 0xe9 at offset 12 \(line 2\)"):
        read_corpus(latin1)
    with pytest.raises(CorpusError, match=f"'{bom_only}' is empty"):  # in a folder, the first bad file (path order)
        read_corpus(tmp_path)
    no_txt = tmp_path / "no_txt"
    no_txt.mkdir()
    (no_txt / "readme.md").write_text("hi", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no .txt files"):
        read_corpus(no_txt)


def test_symlink_loops_give_a_corpus_error(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for source in (loop, str(loop)):
        with pytest.raises(CorpusError, match="cannot be read: Too many levels of symbolic links"):
            load_corpus(source)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine\n", encoding="utf-8")
    (folder / "looping.txt").symlink_to(folder / "looping.txt")
    (folder / "up").symlink_to(folder)  # a link back up the tree is not followed
    with pytest.raises(CorpusError, match=r"looping\.txt' cannot be read"):
        read_corpus(folder)
    (folder / "looping.txt").unlink()
    assert [doc.name for doc in read_corpus(folder)] == ["ok.txt"]


def test_unknown_sources_and_bad_lists(tmp_path):
    with pytest.raises(CorpusError, match="unknown corpus source 'shakespear'"):
        load_corpus("shakespear")
    with pytest.raises(CorpusError, match="unknown corpus source 42"):
        load_corpus(42)
    for bad_list in ([], ["not a document"]):
        with pytest.raises(CorpusError, match="non-empty list of Document"):
            load_corpus(bad_list)


def test_unreadable_files_and_folders_give_a_corpus_error(tmp_path):
    (tmp_path / "secret.txt").write_text("no peeking\n", encoding="utf-8")
    (tmp_path / "secret.txt").chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text("hidden\n", encoding="utf-8")
    locked.chmod(0)
    try:
        result = run_without_root_privileges(f"""
            from gpt2_edu.corpus import CorpusError, read_corpus
            for path in ({str(tmp_path / "secret.txt")!r}, {str(locked)!r}, {str(tmp_path)!r}):
                try:
                    read_corpus(path)
                    print("read", path)
                except CorpusError as error:
                    print("CorpusError", error)
        """)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0] == f"CorpusError corpus path '{tmp_path / 'secret.txt'}' cannot be read: Permission denied; fix "
        "the path or its permissions, or pass another text file or folder"
    )
    assert lines[1].startswith(f"CorpusError corpus path '{locked}' cannot be read: Permission denied")
    assert lines[2].startswith("CorpusError corpus path '") and "Permission denied" in lines[2]  # found while walking


def test_join_documents_of_nothing_is_empty():
    assert join_documents([]) == ""


ROOT = Path(__file__).resolve().parents[1]
KOREAN_SHA256 = "58da5174be7f0079c068eeb9d5ac3e41bd38de08d4ec908fe04ae8aec22cd5d9"  # as THIRD_PARTY_NOTICES.md says


def test_the_korean_text_is_the_vendored_constitution():
    text = korean_text()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == KOREAN_SHA256
    assert KOREAN_SHA256 in (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    assert "\r" not in text and text.startswith("대한민국헌법\n")


def test_the_korean_constitution_is_the_preamble_then_one_document_per_article():
    docs = korean_constitution()
    names = [doc.name for doc in docs]
    assert len(docs) == 1 + 130 + 6
    assert names == ["전문", *(f"제{n}조" for n in range(1, 131)), *(f"부칙 제{n}조" for n in range(1, 7))]
    for doc in docs[1:]:
        article = doc.name.removeprefix("부칙 ")
        first_own_line = next(line for line in doc.text.splitlines() if line.startswith("제") and "조" in line[:6])
        assert first_own_line.startswith(article + " "), doc.name  # each article holds its own text
        assert doc.text.endswith("\n") and not doc.text.endswith("\n\n"), doc.name
    assert docs[1].text.startswith(
        "제1장 총강\n제1조 ① 대한민국은 민주공화국이다.\n"
    )  # a chapter title opens its article
    assert docs[-6].text.startswith("부칙 <헌법 제10호, 1987.10.29.>\n제1조 이 헌법은 1988년 2월 25일부터 시행한다.")


def test_the_korean_documents_hold_every_line_of_the_file_in_order():
    kept = [line for doc in korean_constitution() for line in doc.text.splitlines()]
    source = [line.strip() for line in korean_text().splitlines() if line.strip()]
    assert len(kept) == len(source)
    changed = [(ours, theirs) for ours, theirs in zip(kept, source) if ours != theirs]
    assert changed == [("부칙 <헌법 제10호, 1987.10.29.>", "펼침  부칙 <헌법 제10호, 1987.10.29.>  부칙보기")]


def test_load_corpus_korean_splits_whole_articles_by_the_one_rule():
    everything = load_corpus("korean")
    assert everything == korean_constitution()
    parts = {split: load_corpus("korean", split) for split in SPLIT_NAMES}
    for split, docs in parts.items():
        assert docs == split_documents(everything, split)
    assert sorted(doc.name for docs in parts.values() for doc in docs) == sorted(doc.name for doc in everything)
    assert [doc.name for doc in parts["valid"]] == [everything[i].name for i in range(18, 137, 20)]
    assert [doc.name for doc in parts["test"]] == [everything[i].name for i in range(19, 137, 20)]


def test_the_korean_file_is_package_data_of_the_wheel():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gpt2_edu"]
    stored = (ROOT / "gpt2_edu" / "data" / KOREAN_FILE).relative_to(ROOT / "gpt2_edu").as_posix()
    assert any(fnmatch.fnmatch(stored, pattern) for pattern in patterns), (stored, patterns)
