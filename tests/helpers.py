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


# One `gpt2-edu` process that moves into the folder of its rank (argv[1]/rankN) first: under torchrun, anything a
# process other than 0 wrote would land in its own folder, which must stay empty.
RANK_LAUNCH = """
import os, sys
os.chdir(os.path.join(sys.argv[1], "rank" + os.environ.get("RANK", "0")))
from gpt2_edu.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

# A tiny, seeded training run on CPU with the byte tokenizer: the settings the multi-process tests share.
TINY_RUN = ["--preset", "gpt2-tiny", "--tokenizer", "bytes", "--batch-size", "8", "--block-size", "64"]
TINY_RUN += ["--device", "cpu", "--warmup-steps", "3", "--lr", "0.003", "--seed", "5", "--out", "run"]
