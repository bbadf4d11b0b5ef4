"""gpt2_edu.explorer: attention maps equal HF transformers', head statistics on heads built by hand, the app's
controls, and bad input (each a message in the app, never a traceback)."""

import html
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import pytest
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2_edu.explorer import (
    AttentionExplorer,
    attention_maps,
    eval_maps,
    explore,
    head_entropy,
    induction_score,
    max_entropy,
    mean_distance,
    pattern_scores,
    previous_token_score,
    repeated_tokens,
    top_heads,
)
from gpt2_edu.fonts import use_cjk_font
from gpt2_edu.model.attention import causal_mask
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.bpe import ENDOFTEXT
from gpt2_edu.tokenizer.display import readable_bytes, token_pieces
from gpt2_edu.tokenizer.tokenizer import Tokenizer, gpt2_tokenizer

transformers.logging.set_verbosity_error()
BYTES = Tokenizer([], {ENDOFTEXT: 256})
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks? 🌙 こんにちは"


def random_hf(seed=0, **shape):
    "HF GPT-2 with every tensor (LayerNorms and biases too) moved away from its initial value."
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(**shape, bos_token_id=None, eos_token_id=None, pad_token_id=0))
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return hf.eval()


# --- the maps are the reference's maps ---


@pytest.mark.parametrize(
    "tok_name, shape",
    [
        ("bytes", dict(n_embd=64, n_layer=3, n_head=4, n_positions=96, vocab_size=257)),
        ("gpt2", dict(n_embd=48, n_layer=2, n_head=3, n_positions=64, vocab_size=50257)),
        ("bytes", dict(n_embd=40, n_layer=1, n_head=5, n_positions=128, vocab_size=257)),
    ],
    ids=["bytes-3x4", "gpt2-2x3", "bytes-1x5"],
)
def test_attention_maps_equal_hf_output_attentions(tmp_path, tok_name, shape):
    tok = BYTES if tok_name == "bytes" else gpt2_tokenizer()
    hf = random_hf(**shape)
    hf.save_pretrained(tmp_path)
    eager = GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ours = GPT.from_pretrained(tmp_path)
    tokens, weights = attention_maps(ours, tok, TEXT)
    ids = tok.encode(TEXT, allowed_special="all")
    with torch.no_grad():
        reference = torch.stack(eager(torch.tensor([ids]), output_attentions=True).attentions)[:, 0]
    T = len(ids)
    assert weights.shape == (shape["n_layer"], shape["n_head"], T, T) == reference.shape
    assert (weights - reference).abs().max().item() < 1e-5
    assert tokens == token_pieces(tok, TEXT)  # the labels are the tokens, bytes shown in hex
    assert not torch.allclose(weights[:, 0], weights[:, -1])  # heads differ: the test compares something


def test_attention_maps_leave_the_model_in_training_mode_and_ignore_dropout():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt2-tiny", vocab_size=257, dropout=0.5)).train()
    _, first = attention_maps(model, BYTES, "dropout must not change the maps")
    _, second = attention_maps(model, BYTES, "dropout must not change the maps")
    assert torch.equal(first, second)
    assert model.training


# --- the statistics, on heads built by hand ---


def test_statistics_of_hand_built_heads():
    T = 10
    uniform = causal_mask(T).float() / torch.arange(1, T + 1)[:, None]
    previous = torch.diag(torch.ones(T - 1), -1)
    previous[0, 0] = 1.0
    itself = torch.eye(T)
    heads = torch.stack([uniform, previous, itself])
    assert head_entropy(heads)[0].item() == pytest.approx(max_entropy(T), abs=1e-6)
    assert head_entropy(heads)[1:].abs().max().item() == 0.0
    assert previous_token_score(heads).tolist() == pytest.approx(
        [sum(1 / (i + 1) for i in range(1, T)) / (T - 1), 1, 0]
    )
    assert mean_distance(heads).tolist() == pytest.approx([sum(i / 2 for i in range(T)) / T, (T - 1) / T, 0])
    random_heads = torch.randn(50, T, T).masked_fill(~causal_mask(T), float("-inf")).softmax(-1)
    assert (head_entropy(random_heads) < max_entropy(T)).all()  # the uniform head has the most entropy
    assert max_entropy(1) == 0.0


def test_induction_score_reads_the_token_after_the_earlier_copy():
    period = 5
    T = 2 * period
    induction = torch.eye(T)
    for i in range(period, T):
        induction[i] = 0.0
        induction[i, i - period + 1] = 1.0
    copy_itself = torch.eye(T)
    for i in range(period, T):  # looks at the earlier copy, not after it
        copy_itself[i] = 0.0
        copy_itself[i, i - period] = 1.0
    assert induction_score(torch.stack([induction, copy_itself]), period).tolist() == [1.0, 0.0]


def test_induction_score_of_heads_that_do_not_copy():
    "A uniform head puts 1 / (i + 1) on the token after the copy; previous-token and self heads put nothing there."
    T, period = 8, 4
    uniform = causal_mask(T).float() / torch.arange(1, T + 1)[:, None]
    previous = torch.diag(torch.ones(T - 1), -1)
    previous[0, 0] = 1.0
    heads = torch.stack([uniform, previous, torch.eye(T)])
    expected = [sum(1 / (i + 1) for i in range(period, T)) / period, 0.0, 0.0]
    assert induction_score(heads, period).tolist() == pytest.approx(expected)


def previous_token_model(n_positions=16):
    "A 1-layer GPT whose only head attends to the previous position: one-hot positions, queries shifted by one."
    d = n_positions
    model = GPT(GPTConfig(vocab_size=257, n_positions=n_positions, n_embd=d, n_layer=1, n_head=1))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.wpe.weight.copy_(torch.eye(d))  # position p: the unit vector e_p
        for ln in (model.transformer.h[0].ln_1, model.transformer.h[0].ln_2, model.transformer.ln_f):
            ln.weight.fill_(1.0)
        to_previous = torch.diag(torch.ones(d - 1), 1)  # e_i -> e_(i-1): query i looks for key i-1
        scale = 40.0  # a sharp softmax
        queries_keys_values = torch.cat([scale * to_previous, torch.eye(d), torch.eye(d)])  # (3d, d), nn.Linear layout
        model.transformer.h[0].attn.c_attn.weight.copy_(queries_keys_values)
    return model.eval()


def test_a_model_built_to_read_the_previous_token_scores_one():
    model = previous_token_model()
    scores = pattern_scores(model, token_ids=list(range(257)))
    assert scores["previous token"].shape == (1, 1)
    assert scores["previous token"].item() > 0.99
    assert scores["induction"].item() < 0.01
    weights = eval_maps(model, torch.arange(16)[None])[0, 0, 0]  # (T, T) of layer 0, head 0
    assert head_entropy(weights).item() < 0.05
    assert mean_distance(weights).item() == pytest.approx(15 / 16, abs=0.02)


def test_top_heads_and_repeated_tokens():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.95]])
    assert [(layer, head) for layer, head, _ in top_heads(scores, 3)] == [(1, 2), (0, 1), (1, 0)]
    assert top_heads(scores, 1, largest=False)[0][:2] == (0, 0)
    assert len(top_heads(scores, 10)) == 6
    sequence = repeated_tokens(torch.tensor([3, 4, 5]), period=7, batch=4, seed=2)
    assert sequence.shape == (4, 14) and torch.equal(sequence[:, :7], sequence[:, 7:])
    assert set(sequence.unique().tolist()) <= {3, 4, 5}
    assert torch.equal(sequence, repeated_tokens(torch.tensor([3, 4, 5]), period=7, batch=4, seed=2))


# --- the app ---


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=257, n_layer=2, n_head=3, n_embd=48, n_positions=32)).eval()


def test_controls_redraw(tiny):
    app = AttentionExplorer(tiny, BYTES, "ROMEO:\nBut soft")
    assert [button.description for button in app.token_row.children] == list("ROMEO:↵But\u00a0soft")
    assert app.query == len("ROMEO:\nBut soft") - 1  # the last token is selected
    first = app.heatmap.value
    app.head_slider.value = 2
    assert (app.layer, app.head) == (0, 2) and app.heatmap.value != first
    app.layer_slider.value = 1
    assert (app.layer, app.head) == (1, 2)
    colours = [button.style.button_color for button in app.token_row.children]
    app.token_row.children[4].click()  # the ':' token
    assert app.query == 4
    after = [button.style.button_color for button in app.token_row.children]
    assert after != colours
    assert all(colour == "white" for colour in after[5:])  # later tokens cannot be attended to
    assert app.token_row.children[4].layout.border.startswith("2px solid")
    grid_button = app.cells[0][1].children[1]
    grid_button.click()  # the small map of layer 0, head 1
    assert (app.layer_slider.value, app.head_slider.value) == (0, 1)
    assert app.cells[0][1].layout.border.startswith("2px solid #e53e3e")
    assert "layer 0, head 1" in app.stats.value
    app.text_box.value = "JULIET:\nO Romeo"
    assert "".join(button.description for button in app.token_row.children) == "JULIET:↵O\u00a0Romeo"
    assert {what for what, _ in app.timings} == {"text", "head", "token"}


def test_korean_bytes_are_labelled_with_their_syllable(tiny):
    use_cjk_font()  # Hangul in the heatmap's labels
    app = AttentionExplorer(tiny, BYTES, "Hi 사랑")
    labels = [button.description for button in app.token_row.children]
    assert labels[:3] == ["H", "i", "\u00a0"]  # ASCII as before: one byte, one button, its text
    assert labels[3:] == [  # one button per byte, each naming its syllable and its place: <EC> (사 1/3)
        f"{readable_bytes(bytes([byte]))}\u00a0({syllable}\u00a0{place}/3)"
        for syllable in "사랑"
        for place, byte in enumerate(syllable.encode(), 1)
    ]
    assert labels[3] == "<EC>\u00a0(사\u00a01/3)"
    assert app.tokens[3] == "<EC>" and app.labels[3] == "<EC> (사 1/3)"  # the maps' tokens stay the bytes
    app.token_row.children[5].click()
    assert "(사 3/3)" in app.token_note.value and "(사 3/3)" in app.token_row.children[5].tooltip
    gpt2_app = AttentionExplorer(GPT(GPTConfig.from_preset("gpt2-tiny")), gpt2_tokenizer(), " 한국")
    assert gpt2_app.labels == [
        " ",
        "<ED><95> (한 1/2)",
        "<9C> (한 2/2)",
        "<EA> (국 1/3)",
        "<B5> (국 2/3)",
        "<AD> (국 3/3)",
    ]


def test_picture_shows_the_heatmap_and_every_head(tiny):
    import io

    from matplotlib.figure import Figure
    from matplotlib.image import imread

    app = AttentionExplorer(tiny, BYTES, "ROMEO:\nBut soft")
    app.select(1, 2, query=3)
    fig = app.picture()
    assert isinstance(fig, Figure)
    heatmap, colour_bar, *small = fig.axes
    assert len(small) == 2 * 3  # one map per head, layers x heads
    assert heatmap.get_title() == "layer 1, head 2"
    assert [tick.get_text() for tick in heatmap.get_xticklabels()] == list("ROMEO:↵But\u00a0soft")
    assert (heatmap.images[0].get_array() == app.weights[1, 2].numpy()).all()
    for (layer, head), ax in zip([(layer, head) for layer in range(2) for head in range(3)], small):
        assert ax.get_title() == f"L{layer} H{head}: {app.patterns['previous token'][layer, head]:.2f}"
        assert (ax.images[0].get_array() == app.weights[layer, head].numpy()).all()
        framed = ax.spines["top"].get_linewidth() == 3
        assert framed == ((layer, head) == (1, 2))  # the selected head is framed in red
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    assert imread(buffer).shape[1] > 600  # a real picture, wider than the heatmap alone
    korean = AttentionExplorer(tiny, BYTES, "사랑").picture()
    assert korean.axes[0].get_xticklabels()[0].get_text() == "<EC>\u00a0(사\u00a01/3)"


def test_stats_table_shows_the_previous_token_head():
    app = AttentionExplorer(previous_token_model(), BYTES, "abcdefgh", token_ids=list(range(20)))
    assert "<td>previous-token score</td><td><b>1.00</b></td><td>L0 H0: 1.00</td>" in app.stats.value
    assert "<td>mean distance (tokens back)</td><td><b>0.88</b></td>" in app.stats.value  # 7 of 8 tokens look 1 back


# --- bad input: a message in the app ---


def text_of(widget) -> str:
    "What an HTML widget shows, as plain text."
    return html.unescape(re.sub("<[^>]+>", "", widget.value))


def test_empty_and_too_long_text(tiny):
    app = AttentionExplorer(tiny, BYTES, "")
    assert "the text is empty" in text_of(app.status) and app.views.layout.display == "none"
    app.text_box.value = "x" * 50
    assert "50 tokens long; the model reads at most 32" in text_of(app.status) and app.views.layout.display is None
    assert len(app.tokens) == 32 and app.weights.shape[-1] == 32
    app.text_box.value = "short"
    assert app.status.value == ""
    with pytest.raises(ValueError, match="the text is empty"):
        attention_maps(tiny, BYTES, "")
    with pytest.raises(ValueError, match="50 tokens long, more than the model's context of 32 tokens"):
        attention_maps(tiny, BYTES, "x" * 50)
    with pytest.raises(TypeError, match="text must be a str"):
        attention_maps(tiny, BYTES, b"bytes")


def test_tokenizer_that_does_not_fit_the_model(tiny):
    with pytest.raises(ValueError, match="the tokenizer has 50,257 tokens but the model knows only 257"):
        AttentionExplorer(tiny, gpt2_tokenizer(), "hello")
    assert "pass the model's own tokenizer" in text_of(explore(tiny, "hello", tok=gpt2_tokenizer()))
    smaller = Tokenizer([], {})  # 256 tokens: fits, every id known
    assert AttentionExplorer(tiny, smaller, "hello").status.value == ""


def test_explore_messages(tmp_path, tiny):
    (tmp_path / "run.json").write_text(json.dumps({"model": {}, "train": {}, "info": {"tokenizer": "bytes"}}))
    for source, expected in [
        (tmp_path, "holds no checkpoint yet"),
        (tmp_path / "missing", "does not exist"),
        (tiny, "pass its tokenizer"),
        (tmp_path / "run.json", "is a file: give the folder"),
    ]:
        shown = explore(source)
        assert not isinstance(shown, AttentionExplorer)
        assert expected in text_of(shown), (source, shown.value)
        assert "attention-explorer-error" in shown._dom_classes


def test_explore_opens_run_folders_and_hf_folders(tmp_path, tiny):
    import numpy as np

    from gpt2_edu.train.trainer import TrainConfig, Trainer

    tokens = np.array(
        BYTES.encode("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 40), dtype=np.uint16
    )
    trainer = Trainer(
        tiny.config,
        TrainConfig(steps=2, batch_size=2, eval_every=0, device="cpu"),
        tokens,
        run_dir=tmp_path / "run",
        info=dict(tokenizer="bytes"),
        tokenizer=BYTES,
        progress=False,
    )
    trainer.fit()
    app = explore(tmp_path / "run", "JULIET:")
    assert isinstance(app, AttentionExplorer) and app.tokens == list("JULIET:")
    hf = random_hf(n_embd=32, n_layer=1, n_head=2, n_positions=32, vocab_size=50257)
    hf.save_pretrained(tmp_path / "hf")
    app = explore(tmp_path / "hf", "Hello world")
    assert isinstance(app, AttentionExplorer) and app.tokens == ["Hello", " world"]  # GPT-2's tokenizer
    assert isinstance(explore(GPT(GPTConfig.from_preset("gpt2-tiny")), "Hi"), AttentionExplorer)
