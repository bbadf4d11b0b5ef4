"""Write README.md from nbs/index.ipynb, so the repository's front page and the docs' landing page say the same.

    python tools/make_readme.py           # rewrite README.md
    python tools/make_readme.py --check   # exit 1 if README.md is not what index.ipynb gives (tests run this)

Markdown cells are copied as they are; code cells become ```python blocks followed by their text output (cells
marked `#| hide` are left out). Links into the repository are relative to its root, so `nbs/` paths work on GitHub.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n"


def _text_output(cell: dict) -> str:
    "The plain-text outputs of a code cell (printed text, then the cell's value), joined."
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output.get("name") == "stdout":
            parts.append("".join(output["text"]))
        elif output["output_type"] == "execute_result" and set(output.get("data", {})) == {"text/plain"}:
            parts.append("".join(output["data"]["text/plain"]) + "\n")  # a value; rich HTML does not render here
    return "".join(parts).rstrip("\n")


def readme_from_index(index: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "The README text that `index` gives."
    blocks = []
    for cell in json.loads(index.read_text())["cells"]:
        source = "".join(cell["source"]).strip("\n")
        if cell["cell_type"] == "markdown":
            blocks.append(source.replace("](../", "]("))  # the notebook lives in nbs/, the README at the root
            continue
        if source.startswith("#| hide") or not source:
            continue
        code = "\n".join(line for line in source.splitlines() if not line.startswith("#|"))
        blocks.append(f"```python\n{code}\n```")
        output = _text_output(cell)
        if output:
            blocks.append(f"```\n{output}\n```")
    return HEADER + "\n\n".join(blocks) + "\n"


def main(argv: list[str]) -> int:
    wanted = readme_from_index()
    readme = ROOT / "README.md"
    if "--check" in argv:
        if readme.read_text() != wanted:
            print("README.md is out of step with nbs/index.ipynb: run python tools/make_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
