"""The corpus (`gpt2_edu.corpus`): Shakespeare's plays, a corpus of one's own, and the one split rule, with every bad
input."""

from pathlib import Path

import pytest

from gpt2_edu.corpus import (
    MIN_WHOLE_DOCUMENTS,
    PLAYS,
    SPLITS,
    CorpusError,
    Document,
    join_documents,
    load_corpus,
    read_corpus,
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
    with pytest.raises(CorpusError, match="non-empty list of Document"):
        load_corpus(["not a document"])


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
