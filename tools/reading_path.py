"""The book's core reading path: the chapters a study group reads in order, and the picture of it on the landing page.

    python tools/reading_path.py          # redraw assets/reading_path.png

`CORE` is the one list of core chapters: tests/test_book.py checks that the landing page names them in order, and
that each chapter of `REVISED` carries its opening line, Korean summary and exercises. Every other notebook is an
appendix.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "assets" / "reading_path.png"

# (notebook stem, what the reader meets there, in English and in Korean), grouped into the book's steps
PARTS = [
    (
        "Text",
        "텍스트",
        [
            ("00_corpus", "the corpus", "말뭉치"),
            ("01a_bpe", "byte-level BPE", "바이트 수준 BPE"),
            ("01d_display", "seeing tokens", "토큰 보기"),
        ],
    ),
    (
        "Model",
        "모델",
        [
            ("02_attention", "masked attention", "마스크드 어텐션"),
            ("02a_next_token", "next-token choice", "다음 토큰 고르기"),
            ("03_model", "the GPT-2 block", "GPT-2 블록"),
            ("04_generate", "generation", "생성"),
        ],
    ),
    ("Training", "학습", [("06g_training", "training, an ablation", "학습과 절제 실험")]),
    (
        "Zero-shot",
        "제로샷",
        [
            ("07_engine", "the zero-shot engine", "제로샷 엔진"),
            ("07b_lambada", "one task: LAMBADA", "과제 하나: LAMBADA"),
        ],
    ),
    (
        "Inside",
        "모델 속",
        [
            ("09_explorer", "attention explorer", "어텐션 탐색기"),
            ("09a_inside", "logit lens, patching", "로짓 렌즈, 패칭"),
        ],
    ),
    (
        "Scale and limits",
        "규모와 한계",
        [("10_scaling", "scaling", "규모의 법칙"), ("10b_limitations", "limits", "한계")],
    ),
]
CORE = [stem for _, _, chapters in PARTS for stem, _, _ in chapters]
# The core chapters revised for the study group: each opens with its Run All time and a Korean summary, and ends
# with exercises (tests/test_book.py). Since issue 21 every core chapter is; a chapter added to CORE joins it here.
REVISED = list(CORE)


def draw(path: Path = FIGURE) -> Path:
    "Draw the reading path, one column per step of the book, and write it to `path` as a PNG."
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    from matplotlib.patches import FancyBboxPatch

    korean = [font.name for font in font_manager.fontManager.ttflist if "Nanum" in font.name or "CJK" in font.name]
    if korean:
        plt.rcParams["font.family"] = ["DejaVu Sans", korean[0]]  # Latin from DejaVu, Hangul from the CJK font
    figure, axes = plt.subplots(figsize=(15, 4.6), dpi=110)
    column_width = 1.0 / len(PARTS)
    number = 0
    for column, (part, part_korean, chapters) in enumerate(PARTS):
        x = column * column_width + 0.01
        width = column_width - 0.02
        axes.text(x + width / 2, 0.99, f"{part}\n{part_korean}", ha="center", va="top", fontsize=11, weight="bold")
        for row, (stem, title, title_korean) in enumerate(chapters):
            number += 1
            y = 0.84 - row * 0.19
            box = FancyBboxPatch(
                (x, y - 0.15),
                width,
                0.15,
                boxstyle="round,pad=0.004,rounding_size=0.01",
                facecolor="#e8f0fb",
                edgecolor="#3b6db3",
                linewidth=1.2,
            )
            axes.add_patch(box)
            axes.text(
                x + width / 2,
                y - 0.03,
                f"{number}. {stem}",
                ha="center",
                va="top",
                fontsize=9.5,
                family="monospace",
                weight="bold",
            )
            axes.text(x + width / 2, y - 0.075, f"{title}\n{title_korean}", ha="center", va="top", fontsize=8.5)
        if column + 1 < len(PARTS):
            axes.annotate(
                "",
                xy=(x + column_width + 0.004, 0.765),
                xytext=(x + width - 0.004, 0.765),
                arrowprops={"arrowstyle": "->", "color": "#3b6db3", "linewidth": 1.5},
            )
    axes.text(
        0.5,
        -0.05,
        "Everything else in nbs/ is an appendix (engineering: files, caches, runs, the CLI, "
        "scale-out training).   그 밖의 노트북은 부록입니다.",
        ha="center",
        va="bottom",
        fontsize=9,
        color="#555555",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(-0.07, 1.02)
    axes.axis("off")
    figure.suptitle("The core reading path of gpt2_edu  ·  핵심 읽기 경로", fontsize=13, weight="bold")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


if __name__ == "__main__":
    print(draw())
    sys.exit(0)
