"""Collapse the source of every `#| hide` cell in JupyterLab, so a chapter reads as a book there too.

    python tools/collapse_hidden.py            # mark every hidden cell of nbs/*.ipynb
    python tools/collapse_hidden.py --check    # exit 1 if one is not marked (tests/test_book.py runs this check)

nbdev leaves `#| hide` cells out of the docs, but JupyterLab shows them like any other cell. JupyterLab collapses a
cell whose metadata has `jupyter.source_hidden`: a learner sees a thin bar, and a click shows the checks inside.
`[tool.nbdev] allowed_cell_metadata_keys = ["jupyter"]` in pyproject.toml keeps the mark through `nbdev-clean`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def is_hidden(cell: dict) -> bool:
    "Whether a cell is a code cell whose first line is nbdev's `#| hide`."
    lines = "".join(cell["source"]).lstrip().splitlines()
    return cell["cell_type"] == "code" and bool(lines) and lines[0].replace(" ", "") == "#|hide"


def needs_mark(cell: dict) -> bool:
    "Whether a cell is hidden for nbdev but JupyterLab would show it expanded."
    return is_hidden(cell) and not cell.get("metadata", {}).get("jupyter", {}).get("source_hidden")


def unmarked(path: Path) -> list[int]:
    "Indices of the hidden cells of a notebook that JupyterLab would show expanded."
    cells = json.loads(path.read_text())["cells"]
    return [index for index, cell in enumerate(cells) if needs_mark(cell)]


def mark(path: Path) -> int:
    "Collapse every hidden cell of one notebook; return how many marks were added."
    notebook = json.loads(path.read_text())
    added = 0
    for cell in notebook["cells"]:
        if needs_mark(cell):
            cell.setdefault("metadata", {}).setdefault("jupyter", {})["source_hidden"] = True
            added += 1
    if added:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return added


def main(argv: list[str]) -> int:
    notebooks = sorted((ROOT / "nbs").glob("*.ipynb"))
    if "--check" in argv:
        missing = {path.name: unmarked(path) for path in notebooks if unmarked(path)}
        for name, cells in missing.items():
            print(f"{name}: #| hide cells {cells} are not collapsed: run python tools/collapse_hidden.py")
        return 1 if missing else 0
    for path in notebooks:
        added = mark(path)
        if added:
            print(f"{path.name}: collapsed {added} hidden cell(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
