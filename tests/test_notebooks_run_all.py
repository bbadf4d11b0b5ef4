"Every chapter survives JupyterLab's Run All on a CPU-only machine: all cells, `#| slow` and `#| cuda` included."
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_cells_on_cpu(notebook):
    "Run every cell in a fresh process (slow cells at their test size); no cell may raise."
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks.py"), "--quick", str(notebook)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"Run All failed in {notebook.name}:\n{result.stderr[-6000:]}"
