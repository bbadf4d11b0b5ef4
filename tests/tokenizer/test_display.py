"""Seeing tokens (`gpt2_edu.tokenizer.display`): byte pieces, Korean, the HTML view."""

import os

import pytest

from gpt2_edu.tokenizer.display import readable_bytes, token_pieces
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from tests.varied_text import KOREAN_SENTENCES

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def gpt2():
    return {"tiktoken": gpt2_tokenizer(backend="tiktoken"), "python": gpt2_tokenizer(backend="python")}


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


def test_show_tokens_html(gpt2):
    from gpt2_edu.tokenizer.display import show_tokens

    html = show_tokens(gpt2["tiktoken"], " 한국 <b>").data
    assert "&lt;ED&gt;&lt;95&gt;" in html and "\ufffd" not in html
    assert "&lt;" in html and "<b>" not in html  # the text is escaped
