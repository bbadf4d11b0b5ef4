"""Run chapter notebooks the way JupyterLab's *Run All* does: every cell, `#| slow` and `#| cuda` ones included.

    python tools/run_notebooks.py                 # run every notebook in nbs/, report the first error of each
    python tools/run_notebooks.py --save          # ... and write the outputs into the notebooks (then nbdev-clean)
    python tools/run_notebooks.py nbs/05_data.ipynb

Each notebook runs in a fresh process (like a fresh kernel), from the `nbs/` folder. `nbdev-test` skips flagged
cells; this does not, so it proves that a learner on a CPU-only laptop can Run All (GPU cells must say they were
skipped). With `--quick`, `IN_TEST=1` is set, so `#| slow` cells may shrink to a test size (how the tests use it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"


def drop_progress_bars(path: Path) -> None:
    "Remove progress-bar output (stderr text redrawn with carriage returns): it changes on every run."
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if "outputs" in cell:
            cell["outputs"] = [
                output
                for output in cell["outputs"]
                if not (output.get("name") == "stderr" and "\r" in "".join(output.get("text", [])))
            ]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def run_one(path: Path, save: bool) -> None:
    "Execute one notebook in this process; raise on the first failing cell; optionally keep its outputs."
    from execnb.shell import CaptureShell

    os.chdir(path.parent)
    shell = CaptureShell(path=path.parent)
    shell.execute(path, dest=path if save else None, exc_stop=True)
    if save:
        drop_progress_bars(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every nbs/*.ipynb)")
    parser.add_argument("--save", action="store_true", help="write the outputs into the notebooks")
    parser.add_argument("--quick", action="store_true", help="set IN_TEST=1 so slow cells use their test size")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(NBS.glob("*.ipynb"))
    if args.child:
        run_one(paths[0], args.save)
        return 0
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if args.quick:
        env["IN_TEST"] = "1"
    failed = []
    for path in paths:
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", str(path)] + (["--save"] if args.save else [])
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        status = "ok" if result.returncode == 0 else "FAILED"
        print(f"{path.name}: {status} in {time.perf_counter() - start:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(path.name)
            print(result.stdout[-4000:], result.stderr[-8000:], sep="\n", file=sys.stderr)
    if args.save:
        subprocess.run(["nbdev-clean"], cwd=ROOT, check=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
