"""Seeing tokens (`gpt2_edu.tokenizer.display`): byte pieces, Korean bytes grouped under their character, the HTML
view, and the helpers the explorer labels its tokens with."""

import os
import re

import pytest

from gpt2_edu.corpus import join_documents, load_corpus
from gpt2_edu.tokenizer.bpe import ENDOFTEXT
from gpt2_edu.tokenizer.display import (
    character_groups,
    printable_ids,
    readable_bytes,
    show_tokens,
    shown,
    token_labels,
    token_pieces,
)
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer
from tests.varied_text import KOREAN_SENTENCES

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def gpt2():
    return {"tiktoken": gpt2_tokenizer(backend="tiktoken"), "python": gpt2_tokenizer(backend="python")}


@pytest.fixture(scope="module")
def korean():
    "Real Korean prose: the test split of the Korean constitution (chapter 0)."
    return join_documents(load_corpus("korean", "test"))


@pytest.fixture(scope="module")
def korean_bpe():
    "A small BPE trained on Korean: its merges join bytes across syllables ('하여' as one token, or a byte of two)."
    return Tokenizer.train(join_documents(load_corpus("korean", "train"))[:20_000], 600)


def token_bytes(tok, text):
    return [tok.decode_bytes([token_id]) for token_id in tok.encode(text, allowed_special="all")]


def check_groups(pieces: list[bytes], text: str):
    "The groups partition the tokens in order, each holds whole characters only, the smallest such, and spell `text`."
    groups = character_groups(pieces)
    assert b"".join(pieces) == text.encode()  # every token's bytes, concatenated, are the text's UTF-8
    assert groups[0][0] == 0 and groups[-1][1] == len(pieces)
    assert all(end == next_first for (_, end, _), (next_first, _, _) in zip(groups, groups[1:]))
    assert "".join(characters for _, _, characters in groups) == text  # the groups cover the text
    for first, end, characters in groups:
        assert first < end
        assert b"".join(pieces[first:end]).decode("utf-8") == characters  # whole characters, no hex piece
        for cut in range(first + 1, end):  # smallest: no inner token boundary is a character boundary
            with pytest.raises(UnicodeDecodeError):
                b"".join(pieces[first:cut]).decode("utf-8")
    return groups


def test_readable_bytes():
    assert readable_bytes("한".encode()) == "한"
    assert readable_bytes("한".encode()[:2]) == "<ED><95>"
    assert readable_bytes(b" \xed\x95") == " <ED><95>"
    assert readable_bytes("한".encode()[2:] + "국".encode()) == "<9C>국"
    assert readable_bytes(b"\xff") == "<FF>"


def test_token_pieces_korean(gpt2):
    text = " ".join(KOREAN_SENTENCES[:3])
    for tok in gpt2.values():
        pieces = token_pieces(tok, text)
        assert "\ufffd" not in "".join(pieces)
        assert len(pieces) == len(tok.encode(text))
        assert any(piece.startswith("<") and piece.endswith(">") for piece in pieces)
        # each piece is either the token's text or its bytes in hex: together they spell the text's bytes
        rebuilt = b"".join(tok.decode_bytes([i]) for i in tok.encode(text))
        assert rebuilt == text.encode()
    english = "Fair is foul, and foul is fair <|endoftext|>"
    assert "".join(token_pieces(gpt2["python"], english)) == english


# --- bytes grouped under their character ---


def test_han_is_three_bytes_in_two_gpt2_tokens(gpt2):
    for tok in gpt2.values():
        pieces = token_bytes(tok, "한")
        assert pieces == [b"\xed\x95", b"\x9c"]  # 한 = ED 95 9C
        assert character_groups(pieces) == [(0, 2, "한")]
        assert token_labels(pieces) == ["<ED><95> (한 1/2)", "<9C> (한 2/2)"]


def test_groups_on_real_korean_text(gpt2, korean):
    assert len(korean) > 400 and len(re.findall("[가-힣]", korean)) > 200
    for tok in gpt2.values():
        pieces = token_bytes(tok, korean)
        groups = check_groups(pieces, korean)
        several = [group for group in groups if group[1] - group[0] > 1]
        assert len(several) > 100  # most syllables are split into byte tokens, each boxed under its syllable
        labels = token_labels(pieces)
        assert len(labels) == len(pieces)
        for first, end, characters in several:
            for place, token in enumerate(range(first, end), 1):
                assert labels[token] == f"{readable_bytes(pieces[token])} ({characters.strip()} {place}/{end - first})"
        for sentence in KOREAN_SENTENCES:
            check_groups(token_bytes(tok, sentence), sentence)


def test_a_token_that_spans_two_characters(gpt2, korean_bpe, korean):
    # GPT-2's ' <EC>': a space and the first byte of 안, so the space joins 안's group
    pieces = token_bytes(gpt2["tiktoken"], " 안")
    assert pieces == [b" \xec", b"\x95", b"\x88"]
    assert character_groups(pieces) == [(0, 3, " 안")]
    assert token_labels(pieces)[0] == " <EC> (안 1/3)"
    # bytes that end one syllable and start the next: one group holds both syllables
    pieces = [b"\xed\x95", b"\x9c\xea", b"\xb5\xad"]
    assert character_groups(pieces) == [(0, 3, "한국")]
    assert token_labels(pieces) == ["<ED><95> (한국 1/3)", "<9C><EA> (한국 2/3)", "<B5><AD> (한국 3/3)"]
    # a BPE trained on Korean makes such tokens by itself
    pieces = token_bytes(korean_bpe, korean)
    groups = check_groups(pieces, korean)
    crossing = [raw for raw in pieces if not is_utf8(raw) and any(byte & 0xC0 != 0x80 for byte in raw[1:])]
    assert crossing, "the Korean BPE should have a token that holds the end of one syllable and the start of the next"
    joined = [(first, end, text) for first, end, text in groups if len(text.strip()) > 1 and end - first > 1]
    assert joined  # e.g. ' 진다' over ' <EC><A7>' and '<84>다': the second token ends 진 and holds all of 다
    first, end, characters = joined[0]
    assert token_labels(pieces[first:end])[-1].endswith(f"({characters.strip()} {end - first}/{end - first})")
    whole = [raw for raw in pieces if is_utf8(raw) and len(raw.decode()) > 1]
    assert whole  # and tokens of several whole syllables ('하여'), each a group by itself


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_emoji(gpt2):
    tok = gpt2["tiktoken"]
    pieces = token_bytes(tok, "👍🏽")
    groups = check_groups(pieces, "👍🏽")
    assert [characters for _, _, characters in groups] == ["👍", "🏽"]  # a group is a code point, not a glyph
    family = "👩\u200d👩\u200d👧"
    groups = check_groups(token_bytes(tok, family), family)
    assert [characters for _, _, characters in groups] == ["👩", "\u200d", "👩", "\u200d", "👧"]
    labels = token_labels(token_bytes(tok, family))
    assert any("(U+200D 1/" in label for label in labels)  # the invisible joiner is named
    mixed = "ok 👍🏽 좋아요 🇰🇷!"
    check_groups(token_bytes(tok, mixed), mixed)


def test_ascii_is_unchanged(gpt2):
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n\tdef f(x):  return x ** 2"
    for tok in [*gpt2.values(), Tokenizer([], {ENDOFTEXT: 256})]:
        pieces = token_bytes(tok, text)
        groups = check_groups(pieces, text)
        assert [(first, end) for first, end, _ in groups] == [(i, i + 1) for i in range(len(pieces))]
        assert token_labels(pieces) == token_pieces(tok, text)


def test_bytes_that_end_before_a_character_does():
    "A text cut to the context can end inside a character: its last bytes form a group of their own, in hex."
    pieces = [b"a", b"\xed", b"\x95"]
    assert character_groups(pieces) == [(0, 1, "a"), (1, 2, "<ED>"), (2, 3, "<95>")]
    assert character_groups([b"\xff", b"b"]) == [(0, 1, "<FF>"), (1, 2, "b")]
    assert character_groups([]) == []


# --- the HTML view ---


def test_show_tokens_html(gpt2):
    html = show_tokens(gpt2["tiktoken"], " 한국 <b>").data
    assert "&lt;ED&gt;&lt;95&gt;" in html and "\ufffd" not in html
    assert "&lt;" in html and "<b>" not in html  # the text is escaped


def test_show_tokens_boxes_each_character_over_its_byte_tokens(gpt2):
    html = show_tokens(gpt2["tiktoken"], "Hi 한국\n").data
    boxes = re.findall(r'<span title="(\d+) tokens" style="[^"]*border[^"]*"><span [^>]*>([^<]*)</span>', html)
    assert boxes == [("2", "한"), ("3", "국")]  # 한 = <ED><95> + <9C>, 국 = <EA> + <B5> + <AD>
    assert html.count('<span title="') == len(gpt2["tiktoken"].encode("Hi 한국\n")) + 2  # every token, and 2 boxes
    assert "↵<br>" in html  # a newline token alone still breaks the line
    english = show_tokens(gpt2["tiktoken"], "Fair is foul").data
    assert "tokens" not in english and english.count("<span") == 3  # no box when no token holds part of a character


# --- helpers for labels ---


def test_shown_and_printable_ids():
    assert shown(" the\n\t") == "\u00a0the↵→"
    byte_tok = Tokenizer([], {ENDOFTEXT: 256})
    assert sorted(byte_tok.decode([i]) for i in printable_ids(byte_tok)) == sorted(
        "\n" + "".join(map(chr, range(32, 127)))
    )
    gpt2 = printable_ids(gpt2_tokenizer())
    assert 50256 not in gpt2 and len(gpt2) > 49_000
