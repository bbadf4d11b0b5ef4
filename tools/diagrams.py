"""The book's diagrams, drawn with matplotlib from this file: Q/K/V attention, the GPT-2 block and its residual
stream, and pre-LN (GPT-2) beside post-LN (GPT-1, the original Transformer).

    python tools/diagrams.py              # redraw every assets/diagram_*.png

Chapters 02 and 03 show them as markdown images. Each function draws one diagram into the path it is given and
returns that path; the drawing is deterministic (fixed numbers from a seeded generator, no date in the file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"

BLUE = "#3b6db3"
LIGHT_BLUE = "#e8f0fb"
GREEN = "#2f855a"
LIGHT_GREEN = "#e6f4ea"
ORANGE = "#c05621"
LIGHT_ORANGE = "#fdf0e6"
GREY = "#888888"
LIGHT_GREY = "#eeeeee"
PNG_METADATA = {"Software": None}  # no matplotlib version in the file: the same bytes on every run


def _pyplot():
    "matplotlib's pyplot on the file-only backend, with a Korean font as fallback when one is installed."
    import logging

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "no bold Hangul, using 600": harmless

    installed = {font.name for font in font_manager.fontManager.ttflist}
    korean = [name for name in ("NanumGothic", "Noto Sans CJK KR", "Noto Sans CJK JP") if name in installed]
    plt.rcParams["font.family"] = ["DejaVu Sans", *korean[:1]]  # Latin from DejaVu, Hangul from the CJK font
    return plt


def _box(axes, x, y, width, height, text, face=LIGHT_BLUE, edge=BLUE, size=10, weight="normal", style="round"):
    "A rounded box centred on `(x, y)` with `text` in it."
    from matplotlib.patches import FancyBboxPatch

    patch = FancyBboxPatch(
        (x - width / 2, y - height / 2),
        width,
        height,
        boxstyle=f"{style},pad=0.02,rounding_size=0.08" if style == "round" else style,
        facecolor=face,
        edgecolor=edge,
        linewidth=1.4,
    )
    axes.add_patch(patch)
    axes.text(x, y, text, ha="center", va="center", fontsize=size, weight=weight)


def _arrow(axes, start, end, color=BLUE, width=1.6, style="-|>", dashed=False):
    "An arrow from `start` to `end` (data coordinates)."
    axes.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
            "arrowstyle": style,
            "color": color,
            "linewidth": width,
            "linestyle": "--" if dashed else "-",
            "shrinkA": 0,
            "shrinkB": 0,
        },
    )


def _plus(axes, x, y, radius=0.17, color=BLUE):
    "The circled plus where a sub-layer's output is added to the residual stream."
    from matplotlib.patches import Circle

    axes.add_patch(Circle((x, y), radius, facecolor="white", edgecolor=color, linewidth=1.6, zorder=3))
    axes.text(x, y, "+", ha="center", va="center", fontsize=13, weight="bold", color=color, zorder=4)


def _vector(axes, x, y, values, cell=0.32, cmap="coolwarm", limit=2.0):
    "A small vector drawn as a row of coloured cells, left edge at `x`, centred on `y`."
    import matplotlib

    colours = matplotlib.colormaps[cmap]
    for index, value in enumerate(values):
        shade = colours(0.5 + 0.5 * float(np.clip(value / limit, -1, 1)))
        axes.add_patch(
            matplotlib.patches.Rectangle(
                (x + index * cell, y - cell / 2), cell, cell, facecolor=shade, edgecolor="#444444", linewidth=0.6
            )
        )


def qkv_numbers(seed: int = 0, tokens: int = 6, d: int = 4, query: int = 4) -> dict:
    "The numbers diagram (a) shows: keys, values, one query, its scaled scores, causal mask and softmax weights."
    generator = np.random.default_rng(seed)
    keys = generator.normal(size=(tokens, d))
    values = generator.normal(size=(tokens, d))
    q = keys[1] * 1.6 + 0.4 * generator.normal(size=d)  # a query that matches position 1's key best
    scores = keys @ q / np.sqrt(d)  # (tokens,)
    allowed = np.arange(tokens) <= query  # the causal mask's row `query`
    masked = np.where(allowed, scores, -np.inf)
    weights = np.exp(masked - masked[allowed].max())
    weights = weights / weights.sum()
    return {"keys": keys, "values": values, "query": q, "scores": scores, "allowed": allowed, "weights": weights}


def draw_qkv(path: Path = ASSETS / "diagram_qkv.png") -> Path:
    "Diagram (a): one token's query against every earlier key, the causal mask, softmax weights, the sum of values."
    plt = _pyplot()
    words = ["The", " cat", " sat", " on", " the", " mat"]
    query = 4
    numbers = qkv_numbers(tokens=len(words), query=query)
    figure = plt.figure(figsize=(13, 5.6), dpi=110)
    axes = figure.add_axes((0.0, 0.0, 0.76, 0.9))
    mask_axes = figure.add_axes((0.79, 0.3, 0.19, 0.44))
    rows = {j: 5.2 - j * 0.85 for j in range(len(words))}
    axes.text(0.5, 6.45, "j, token", ha="center", fontsize=9.5, weight="bold")
    axes.text(2.6, 6.45, "key $k_j$", ha="center", fontsize=9.5, weight="bold")
    axes.text(4.95, 6.45, r"score $q_i\cdot k_j/\sqrt{d}$", ha="center", fontsize=9.5, weight="bold")
    axes.text(7.55, 6.45, "softmax weight $w_j$", ha="center", fontsize=9.5, weight="bold")
    axes.text(10.35, 6.45, "value $v_j$", ha="center", fontsize=9.5, weight="bold")
    for j, word in enumerate(words):
        y = rows[j]
        allowed = numbers["allowed"][j]
        is_query = j == query
        face = LIGHT_ORANGE if is_query else (LIGHT_BLUE if allowed else LIGHT_GREY)
        edge = ORANGE if is_query else (BLUE if allowed else GREY)
        _box(axes, 0.5, y, 1.1, 0.55, f"{j}  '{word.strip()}'", face=face, edge=edge, size=9.5)
        _vector(axes, 2.0, y, numbers["keys"][j])
        _vector(axes, 9.75, y, numbers["values"][j])
        if allowed:
            axes.text(4.95, y, f"{numbers['scores'][j]:+.2f}", ha="center", va="center", fontsize=10)
            weight = numbers["weights"][j]
            axes.add_patch(plt.Rectangle((6.4, y - 0.17), 2.3 * weight, 0.34, facecolor=GREEN, alpha=0.85))
            axes.text(6.45 + 2.3 * weight, y, f" {weight:.2f}", ha="left", va="center", fontsize=9.5)
            line = 0.4 + 5.0 * weight
            _arrow(axes, (11.15, y), (12.35, 2.65), color=GREEN, width=line, style="-")
        else:
            axes.text(4.95, y, r"$-\infty$  (future: masked)", ha="center", va="center", fontsize=9.5, color=GREY)
            axes.text(6.45, y, " 0", ha="left", va="center", fontsize=9.5, color=GREY)
            for edge_x in (2.0, 9.75):
                axes.plot([edge_x, edge_x + 1.28], [y - 0.16, y + 0.16], color=GREY, linewidth=1.2)
    output = (numbers["weights"][:, None] * numbers["values"]).sum(0)
    _box(axes, 13.3, 3.3, 2.0, 0.5, "output $y_i=\\sum_j w_j v_j$", face=LIGHT_GREEN, edge=GREEN, size=9.5)
    _vector(axes, 12.66, 2.65, output)
    _box(axes, 2.65, 7.35, 1.9, 0.55, "", face=LIGHT_ORANGE, edge=ORANGE)
    _vector(axes, 2.0, 7.35, numbers["query"])
    axes.text(
        3.8,
        7.35,
        f"query $q_i$ of position i = {query}, '{words[query].strip()}': compared with every key at or before it",
        va="center",
        fontsize=9.5,
        color=ORANGE,
    )
    _arrow(axes, (2.65, 7.05), (2.65, 6.65), color=ORANGE)
    axes.text(
        0.0,
        -0.05,
        r"$\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\left(QK^\top/\sqrt{d}\ \mathrm{with\ the\ causal\ mask}\right)V$"
        "    —  each row of weights sums to 1; future keys get $-\\infty$, so weight exactly 0.",
        fontsize=10,
    )
    axes.set_xlim(-0.5, 14.6)
    axes.set_ylim(-0.3, 7.8)
    axes.axis("off")
    mask = np.tril(np.ones((len(words), len(words))))
    mask_axes.imshow(mask, cmap=plt.matplotlib.colors.ListedColormap([LIGHT_GREY, BLUE]), vmin=0, vmax=1)
    mask_axes.add_patch(plt.Rectangle((-0.5, query - 0.5), len(words), 1, fill=False, edgecolor=ORANGE, linewidth=2.5))
    mask_axes.set_xticks(range(len(words)), [w.strip() for w in words], rotation=90, fontsize=8)
    mask_axes.set_yticks(range(len(words)), [w.strip() for w in words], fontsize=8)
    mask_axes.set_xlabel("key j", fontsize=9)
    mask_axes.set_ylabel("query i", fontsize=9)
    mask_axes.set_title(f"causal mask (row i = {query} boxed)", fontsize=9.5)
    figure.suptitle("Queries, keys and values: one row of masked self-attention  ·  쿼리, 키, 값", fontsize=13)
    figure.savefig(path, metadata=PNG_METADATA)
    plt.close(figure)
    return path


def _stream_block(axes, x, bottom, top, label_side=1.0):
    "One pre-LN block on a residual stream at `x`, from `bottom` to `top`: LN -> attention -> +, LN -> MLP -> +."
    height = top - bottom
    add_attention = bottom + 0.45 * height
    add_mlp = bottom + 0.9 * height
    branch = x + 1.6 * label_side
    for y_from, y_add, norm, layer, face, edge in [
        (
            bottom + 0.06 * height,
            add_attention,
            "ln_1",
            "masked multi-head\nattention (c_attn, c_proj)",
            LIGHT_ORANGE,
            ORANGE,
        ),
        (add_attention + 0.06 * height, add_mlp, "ln_2", "MLP: c_fc (4x wider),\nGELU, c_proj", LIGHT_GREEN, GREEN),
    ]:
        middle_norm = y_from + 0.09 * height
        middle_layer = y_from + 0.25 * height
        axes.plot([x, branch], [y_from, y_from], color=BLUE, linewidth=1.4)
        _arrow(axes, (branch, y_from), (branch, middle_norm - 0.16))
        _box(axes, branch, middle_norm, 1.0, 0.32, norm, face="white", size=9.5)
        _arrow(axes, (branch, middle_norm + 0.16), (branch, middle_layer - 0.3))
        _box(axes, branch, middle_layer, 2.4, 0.6, layer, face=face, edge=edge, size=9)
        axes.plot([branch, branch], [middle_layer + 0.3, y_add], color=BLUE, linewidth=1.4)
        _arrow(axes, (branch, y_add), (x + 0.17 * label_side, y_add))
        _plus(axes, x, y_add)


def draw_block(path: Path = ASSETS / "diagram_block.png") -> Path:
    "Diagram (b): GPT-2 as a residual stream through 12 blocks, ln_f and the tied unembedding; one block opened."
    plt = _pyplot()
    figure, (stack, block) = plt.subplots(1, 2, figsize=(12, 8.4), dpi=110, gridspec_kw={"width_ratios": [1, 1.25]})
    # left: the whole model, bottom to top
    x = 2.0
    stack.plot([x, x], [0.9, 9.6], color=BLUE, linewidth=5, alpha=0.35, zorder=0)
    _box(stack, x, 0.45, 3.0, 0.5, "token ids -> wte (token) + wpe (position)", size=9)
    blocks = [(1, 1.6), (2, 2.6), (None, 3.55), (11, 4.5), (12, 5.5)]
    for number, y in blocks:
        if number is None:
            stack.text(x, y, "...", ha="center", va="center", fontsize=16)
            continue
        _box(stack, x, y, 2.2, 0.6, f"block {number}", face="white" if number != 2 else LIGHT_BLUE, size=10)
    _box(stack, x, 6.6, 2.2, 0.5, "ln_f  (final LayerNorm)", size=9.5)
    _box(stack, x, 7.55, 3.1, 0.6, "lm_head = wte$^\\top$ (tied):\nunembedding to 50,257 logits", size=9)
    _box(stack, x, 8.6, 2.6, 0.5, "softmax -> p(next token)", face=LIGHT_GREEN, edge=GREEN, size=9.5)
    stack.text(
        x + 1.35,
        3.55,
        "the residual stream\n(n_embd numbers per position,\nread and added to by\nevery block)",
        fontsize=9,
        va="center",
        color=BLUE,
    )
    stack.text(x - 1.75, 3.55, "12 blocks\n(GPT-2 small;\n48 in 1.5B)", fontsize=9, va="center", ha="center")
    stack.set_xlim(-0.2, 4.6)
    stack.set_ylim(0, 9.3)
    stack.axis("off")
    stack.set_title("the whole model", fontsize=11)
    # right: one block opened
    x = 1.0
    block.plot([x, x], [0.2, 9.2], color=BLUE, linewidth=5, alpha=0.35, zorder=0)
    block.text(x, 0.05, "x  (from the block below)", ha="center", va="top", fontsize=9.5)
    block.text(x, 9.3, "x  (to the block above)", ha="center", va="bottom", fontsize=9.5)
    _stream_block(block, x, 0.5, 9.0)
    block.text(
        x + 3.05,
        2.3,
        "moves information\nbetween positions",
        fontsize=9,
        va="center",
        color=ORANGE,
    )
    block.text(x + 3.05, 6.35, "works on each\nposition alone", fontsize=9, va="center", color=GREEN)
    block.text(
        x - 0.25,
        4.55,
        "x = x + attn(ln_1(x))",
        fontsize=9.5,
        va="center",
        ha="right",
        family="monospace",
    )
    block.text(x - 0.25, 8.6, "x = x + mlp(ln_2(x))", fontsize=9.5, va="center", ha="right", family="monospace")
    block.set_xlim(-2.6, 5.2)
    block.set_ylim(-0.3, 9.6)
    block.axis("off")
    block.set_title("block 2, opened (pre-LN): each sub-layer reads a normalised copy, adds an update", fontsize=11)
    figure.suptitle("The GPT-2 block and the residual stream  ·  GPT-2 블록과 잔차 스트림", fontsize=13)
    figure.tight_layout()
    figure.savefig(path, metadata=PNG_METADATA)
    plt.close(figure)
    return path


def _post_ln_block(axes, x, bottom, top):
    "One post-LN block: the sub-layer reads the stream, the sum is normalised: LN(x + attn(x)), LN(x + mlp(x))."
    height = top - bottom
    branch = x + 1.6
    start = bottom
    for layer, face, edge in [
        ("masked multi-head\nattention", LIGHT_ORANGE, ORANGE),
        ("MLP", LIGHT_GREEN, GREEN),
    ]:
        split = start + 0.05 * height
        middle = start + 0.2 * height
        add = start + 0.33 * height
        norm = start + 0.42 * height
        axes.plot([x, branch], [split, split], color=BLUE, linewidth=1.4)
        _arrow(axes, (branch, split), (branch, middle - 0.3))
        _box(axes, branch, middle, 2.0, 0.6, layer, face=face, edge=edge, size=9)
        axes.plot([branch, branch], [middle + 0.3, add], color=BLUE, linewidth=1.4)
        _arrow(axes, (branch, add), (x + 0.17, add))
        _plus(axes, x, add)
        _box(axes, x, norm, 0.9, 0.3, "LN", face="#fde8e8", edge="#c53030", size=9.5)
        start = start + 0.5 * height


def draw_pre_post_ln(path: Path = ASSETS / "diagram_pre_post_ln.png") -> Path:
    "Diagram (c): post-LN (GPT-1, the original Transformer) beside pre-LN (GPT-2, §2.3), with ln_f and 1/sqrt(N)."
    plt = _pyplot()
    figure, (post, pre) = plt.subplots(1, 2, figsize=(12, 7.6), dpi=110)
    for axes in (post, pre):
        axes.set_xlim(-1.6, 4.6)
        axes.set_ylim(-1.0, 10.2)
        axes.axis("off")
    # post-LN: LayerNorm sits on the stream itself
    x = 0.6
    post.plot([x, x], [0.0, 8.7], color=BLUE, linewidth=5, alpha=0.35, zorder=0)
    _post_ln_block(post, x, 0.2, 8.2)
    _box(post, x, 8.9, 2.4, 0.45, "next block ... -> unembedding", face="white", size=9)
    post.text(x, -0.15, "x (embeddings)", ha="center", va="top", fontsize=9.5)
    post.text(
        -1.5,
        -0.75,
        "x = LN(x + attn(x)),  x = LN(x + mlp(x)):\nthe stream itself is normalised after every add,\n"
        "so the gradient passes through 2 LayerNorms per block.",
        fontsize=9,
        va="top",
    )
    post.set_title("post-LN: GPT-1 and the original Transformer", fontsize=11)
    # pre-LN: the stream is untouched; ln_f once at the top
    x = 0.6
    pre.plot([x, x], [0.0, 9.6], color=BLUE, linewidth=5, alpha=0.35, zorder=0)
    _stream_block(pre, x, 0.2, 8.2)
    _box(pre, x, 8.9, 2.4, 0.45, "ln_f (added after the last block)", face="white", size=9)
    _box(pre, x, 9.75, 1.9, 0.4, "unembedding", face="white", size=9)
    pre.text(x, -0.15, "x (embeddings)", ha="center", va="top", fontsize=9.5)
    pre.text(
        -1.5,
        -0.75,
        "x = x + attn(LN(x)),  x = x + mlp(LN(x)): the stream is never normalised,\nan identity path runs "
        "from the output to the input; ln_f normalises it once at the top.\nInit: each branch's last layer "
        "(c_proj) scaled by 1/sqrt(N), N = 2 x n_layer.",
        fontsize=9,
        va="top",
    )
    pre.text(3.95, 2.0, "c_proj:\nstd 0.02/sqrt(N)", fontsize=8.5, color=ORANGE, ha="center")
    pre.text(3.95, 5.7, "c_proj:\nstd 0.02/sqrt(N)", fontsize=8.5, color=GREEN, ha="center")
    pre.set_title("pre-LN: GPT-2 (§2.3)", fontsize=11)
    figure.suptitle(
        "“Layer normalization was moved to the input of each sub-block ... an additional layer normalization was "
        "added after the final self-attention block.”  (GPT-2, §2.3)",
        fontsize=10.5,
        style="italic",
    )
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    figure.savefig(path, metadata=PNG_METADATA)
    plt.close(figure)
    return path


DIAGRAMS = {"diagram_qkv.png": draw_qkv, "diagram_block.png": draw_block, "diagram_pre_post_ln.png": draw_pre_post_ln}


def draw_all(folder: Path = ASSETS) -> list[Path]:
    "Draw every diagram into `folder` under its file name; return the paths."
    folder.mkdir(parents=True, exist_ok=True)
    return [draw(folder / name) for name, draw in DIAGRAMS.items()]


if __name__ == "__main__":
    for drawn in draw_all():
        print(drawn)
    sys.exit(0)
