"""The diagrams of chapters 02 and 03 are drawn by tools/diagrams.py: each function writes a PNG, the same bytes on
every run, and the committed copies in assets/ are there for the chapters' markdown images."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import diagrams  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(diagrams.DIAGRAMS))
def test_each_diagram_draws_a_png(tmp_path, name):
    drawn = diagrams.DIAGRAMS[name](tmp_path / name)
    data = drawn.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{name} is not a PNG"
    assert 30_000 < len(data) < 2_000_000, f"{name}: {len(data)} bytes is not a drawn diagram"


def test_a_diagram_is_the_same_bytes_on_every_run(tmp_path):
    first = diagrams.draw_qkv(tmp_path / "first.png").read_bytes()
    second = diagrams.draw_qkv(tmp_path / "second.png").read_bytes()
    assert first == second


def test_the_qkv_numbers_are_masked_softmax_attention():
    numbers = diagrams.qkv_numbers(tokens=6, query=4)
    weights = numbers["weights"]
    np.testing.assert_allclose(weights.sum(), 1.0)
    assert (weights[5:] == 0).all(), "the future key gets weight exactly 0"
    scores = numbers["keys"][:5] @ numbers["query"] / 2.0  # sqrt(d) = 2 for d = 4
    np.testing.assert_allclose(weights[:5], np.exp(scores) / np.exp(scores).sum())


def test_the_committed_diagrams_exist_and_the_chapters_show_them():
    for name in diagrams.DIAGRAMS:
        path = ROOT / "assets" / name
        assert path.exists() and path.read_bytes()[:8] == PNG_MAGIC, f"run python tools/diagrams.py: {name} missing"
    shown = ""
    for stem in ("02_attention", "03_model"):
        cells = json.loads((ROOT / "nbs" / f"{stem}.ipynb").read_text())["cells"]
        shown += "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    for name in diagrams.DIAGRAMS:
        assert f"](../assets/{name})" in shown, f"no chapter shows {name} as a markdown image"
