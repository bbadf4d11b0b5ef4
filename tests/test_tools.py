"The project's scripts in tools/ that no other test runs: they must keep working where they are needed rarely."

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_gpu_check_runs_its_cpu_safe_parts_and_says_what_it_skipped():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--skip-notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 5, done.stdout  # the header and four parts
    assert "| tiny fp32 CPU smoke, eager | ok |" in done.stdout and "tokens/s" in done.stdout
    assert "| FSDP smoke, tiny fp32, CPU (gloo) | ok |" in done.stdout


def test_the_probe_script_lists_every_case_with_tests_that_exist():
    sys.path.insert(0, str(ROOT / "tools"))
    from probe_jobs import CASES

    for case, nodes in CASES:
        for node in nodes:
            file, _, test = node.partition("::")
            assert (ROOT / file).is_file(), (case, node)
            assert not test or f"def {test}(" in (ROOT / file).read_text(), (case, node)
