"""The book a study group reads: the core path of tools/reading_path.py, named on the landing page in order, and in
every revised core chapter the opening line (its time and what you will see), a Korean summary, and exercises that
say what to expect."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from reading_path import CORE, FIGURE, REVISED  # noqa: E402

HANGUL = re.compile(r"[\uac00-\ud7a3]")
MAX_RUN_ALL_S = 180  # each core chapter finishes Run All in 3 minutes on 2 CPU cores


def _markdown(stem: str) -> list[str]:
    "The markdown cells of a notebook, in order."
    cells = json.loads((ROOT / "nbs" / f"{stem}.ipynb").read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]


def _seconds(claim: str) -> float:
    "The time an opening line states (`about 40 s`, `about 2 min`, `about 1 min 30 s`), in seconds."
    match = re.search(
        r"\*\*Run All on 2 CPU cores:\*\*\s*(?:about|under|~)?\s*(\d+(?:\.\d+)?)\s*(s|min)\b"
        r"(?:\s*(\d+)\s*s\b)?",
        claim,
    )
    assert match, f"no time in the opening line: {claim[:120]!r}"
    value = float(match.group(1)) * (60 if match.group(2) == "min" else 1)
    return value + float(match.group(3) or 0)


def test_every_core_chapter_exists():
    missing = [stem for stem in CORE if not (ROOT / "nbs" / f"{stem}.ipynb").exists()]
    assert not missing, f"core chapters missing from nbs/: {missing}"


@pytest.mark.parametrize("stem", REVISED)
def test_core_chapter_opens_with_its_time_and_a_korean_summary(stem):
    cells = _markdown(stem)
    assert cells[0].startswith("# ") and "\n> " in cells[0], f"{stem}: the first markdown cell is the H1 and subtitle"
    opening = cells[1]
    assert opening.startswith("**Run All on 2 CPU cores:**"), f"{stem}: the cell after the title gives its time"
    assert "**You will see:**" in opening, f"{stem}: the opening line says what the chapter shows"
    assert _seconds(opening) <= MAX_RUN_ALL_S, f"{stem}: a core chapter runs in at most {MAX_RUN_ALL_S} s"
    summary = cells[2]
    assert summary.startswith("## 한국어 요약"), f"{stem}: the Korean summary follows the opening line"
    assert len(HANGUL.findall(summary)) >= 100, f"{stem}: the Korean summary is a paragraph, not a line"


@pytest.mark.parametrize("stem", REVISED)
def test_core_chapter_has_exercises_with_expected_outcomes(stem):
    cells = _markdown(stem)
    exercises = [cell for cell in cells if cell.startswith("## Exercises")]
    assert len(exercises) == 1, f"{stem}: one `## Exercises` section"
    items = re.split(r"\n\d+\. ", "\n" + exercises[0].split("\n", 1)[1].strip())[1:]
    assert 2 <= len(items) <= 4, f"{stem}: two or three exercises, found {len(items)}"
    for item in items:
        assert "Expected" in item, f"{stem}: an exercise without its expected outcome: {item[:80]!r}"
    notes = [index for index, cell in enumerate(cells) if cell.startswith("## Engineering notes")]
    if notes:
        assert cells.index(exercises[0]) < notes[0], f"{stem}: engineering notes come last, after the exercises"


def test_the_landing_page_names_the_core_path_in_order():
    index = "\n".join(_markdown("index"))
    path = index.split("## The reading path", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\d+\. `(\w+)`", path, flags=re.MULTILINE)
    assert named == CORE, f"the landing page's path {named} is not tools/reading_path.py's {CORE}"
    assert "reading_path.png" in path and FIGURE.exists(), "the path is shown as a picture"


def test_the_picture_of_the_path_is_drawn_from_the_list(tmp_path):
    from reading_path import draw

    drawn = draw(tmp_path / "path.png")
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and drawn.stat().st_size > 20_000


def test_revised_chapters_are_core_chapters_and_named_on_the_landing_page():
    assert set(REVISED) <= set(CORE), f"not core chapters: {sorted(set(REVISED) - set(CORE))}"
    index = "\n".join(_markdown("index"))
    for stem in REVISED:
        assert f"`{stem}` ✓" in index, f"the landing page does not mark {stem} as revised"


def test_hidden_cells_are_collapsed_in_jupyterlab():
    "A `#| hide` cell holds checks, not the idea: JupyterLab shows it collapsed (tools/collapse_hidden.py marks it)."
    from collapse_hidden import main

    assert main(["--check"]) == 0, "run python tools/collapse_hidden.py, then nbdev-clean"
