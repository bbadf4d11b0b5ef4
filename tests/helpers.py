"Helpers several test files share."

import os
import subprocess
import sys
import textwrap


def run_without_root_privileges(code: str) -> subprocess.CompletedProcess:
    "Run Python code so that file permissions apply even to root (setpriv drops the capabilities that bypass them)."
    command = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] + command
    return subprocess.run(command, capture_output=True, text=True, timeout=120)
