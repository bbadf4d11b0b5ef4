"""Re-run the hostile-user probes of "never lose a user's work" and print one line per case with its verdict.

Run from the project root:  python tools/probe_jobs.py  [--list]

Each case is a test in tests/ that reproduces the probe with real files and real processes (real CLI invocations,
SIGKILLs, a cache overwritten under a running job, a saved model of NaN weights); this script runs them all in one
pytest session and prints, per case, PASS or FAIL and the tests behind it. Exit status 0 when every case passes.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (case, the pytest node ids that reproduce it); a node id without "::" names a whole file.
CASES = [
    (
        "1  demo --out DIR twice keeps a user's DIR/tokenizer/",
        [
            "tests/cli/test_main.py::test_demo_keeps_a_users_tokenizer_folder",
            "tests/cli/test_main.py::test_demo_replaces_its_own_files_only_and_says_so",
        ],
    ),
    (
        "2  tokenize --out never writes into a run's checkpoint/ or over a user's vocab.json",
        [
            "tests/cli/test_main.py::test_tokenize_never_writes_into_a_runs_checkpoint",
            "tests/cli/test_main.py::test_tokenize_keeps_a_users_vocab_and_replaces_its_own",
        ],
    ),
    (
        "3  eval --out keeps a user's eval.md and eval.json",
        ["tests/cli/test_main.py::test_eval_keeps_a_users_report_and_replaces_its_own"],
    ),
    (
        "4  scaling --out keeps a user's tokenizer.tmp/ and scaling.png",
        [
            "tests/studies/test_scaling.py::test_a_users_tokenizer_tmp_survives_the_study",
            "tests/studies/test_scaling.py::test_a_users_scaling_png_and_tokenizer_are_refused_before_any_work",
        ],
    ),
    (
        "5  a token cache overwritten while a run trains stops the run (exit 2)",
        [
            "tests/train/test_trainer.py::test_a_token_cache_overwritten_while_a_run_trains_stops_it",
            "tests/train/test_data.py::test_check_tokens_catches_a_file_changed_under_its_memory_map",
        ],
    ),
    (
        "6  after divergence the kept checkpoint is sane and the printed advice recovers",
        [
            "tests/train/test_trainer.py::test_the_advice_after_divergence_can_be_followed",
            "tests/train/test_trainer.py::test_a_loss_that_explodes_keeps_a_sane_checkpoint_and_the_advice_recovers",
        ],
    ),
    (
        "7  a run read while it checkpoints is the old or the new checkpoint, never 'corrupt'",
        ["tests/train/test_checkpoints.py::test_a_run_read_while_it_checkpoints_is_the_old_or_the_new_checkpoint"],
    ),
    (
        "8  a special id of 16,777,215 or a config of 10^6 blocks is refused before allocating",
        [
            "tests/tokenizer/test_vocab.py::test_a_special_id_far_past_the_vocabulary_is_refused",
            "tests/model/test_gpt.py::test_a_config_claiming_a_million_blocks_is_refused_before_building_them",
        ],
    ),
    (
        "9a eval --tasks with a repeated name is refused",
        ["tests/zeroshot/test_registry.py::test_a_repeated_task_is_refused_not_counted_twice"],
    ),
    (
        "9b a model of NaN weights gets no report, one line",
        ["tests/zeroshot/test_registry.py::test_a_model_with_nan_weights_gets_no_report"],
    ),
    (
        "9c scaling --budget-tokens 10^18 is refused",
        ["tests/studies/test_scaling.py::test_a_budget_no_study_can_use_is_refused"],
    ),
    (
        "9d meaningless rows (CoQA, WSC, CNN/DM, LAMBADA) are refused, naming the row",
        [
            "tests/zeroshot/test_reading_qa.py",
            "tests/zeroshot/test_winograd.py",
            "tests/zeroshot/test_summarize_translate.py::test_story_bad_input",
            "tests/zeroshot/test_lambada.py::test_lambada_malformed_files",
        ],
    ),
    (
        "10 sizes trained with other settings are refused even without scaling.json",
        [
            "tests/studies/test_scaling.py::test_sizes_measured_with_other_settings_are_refused_even_without_scaling_json"
        ],
    ),
    (
        "-  eval's progress bars name their task",
        ["tests/zeroshot/test_registry.py::test_progress_bars_name_their_task"],
    ),
    (
        "-  help shows each default once, 0 included, in command-line words",
        [
            "tests/cli/test_main.py::test_help_shows_a_default_of_zero_and_never_an_empty_or_repeated_one",
            "tests/cli/test_main.py::test_every_job_names_the_same_token_cache_and_speaks_of_flags",
            "tests/cli/test_main.py::test_messages_name_switches_as_flags",
            "tests/cli/test_main.py::test_the_article_before_a_vocabulary_size",
            "tests/cli/test_main.py::test_the_demo_help_says_what_its_time_depends_on",
        ],
    ),
    (
        "-  a run.lock naming a dead process is removed when the run ends",
        ["tests/train/test_runs.py::test_the_lock_file_is_removed_when_a_run_ends"],
    ),
]


def _belongs(testcase: ET.Element, node: str) -> bool:
    "Whether a JUnit test case is the node id `node` (or one of its parametrizations, or a test of its file)."
    path = testcase.get("file") or testcase.get("classname", "").replace(".", "/") + ".py"
    name = testcase.get("name", "")
    file, _, test = node.partition("::")
    return path.endswith(file) and (not test or name == test or name.startswith(test + "["))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the cases and their tests, run nothing")
    args = parser.parse_args()
    if args.list:
        for case, nodes in CASES:
            print(case, *nodes, sep="\n    ")
        return 0
    nodes = sorted({node for _, nodes in CASES for node in nodes})
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TIKTOKEN_CACHE_DIR": ""}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *nodes]
        subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not report.exists():
            print("pytest wrote no report: run it by hand to see why:", " ".join(command))
            return 2
        testcases = list(ET.parse(report).getroot().iter("testcase"))
    failed = 0
    for case, case_nodes in CASES:
        ran = [t for t in testcases if any(_belongs(t, node) for node in case_nodes)]
        bad = [t.get("name") for t in ran if t.find("failure") is not None or t.find("error") is not None]
        skipped = [t.get("name") for t in ran if t.find("skipped") is not None]
        if not ran or bad or skipped:
            failed += 1
            why = "no test ran" if not ran else f"failed: {', '.join(bad)}" if bad else f"skipped: {', '.join(skipped)}"
            print(f"FAIL  {case}  ({why})")
        else:
            print(f"PASS  {case}  ({len(ran)} test{'s' if len(ran) > 1 else ''})")
    print(f"{len(CASES) - failed} of {len(CASES)} probe cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
