"""The lm-evaluation-harness adapter (`gpt2_edu.zeroshot.harness`) gives the harness's own HF model's numbers, offline.

One small run folder (a byte-level GPT trained for a few steps); its checkpoint is a complete HF folder, so the
harness's `HFLM` loads the same weights. Requests are checked one by one for the three request kinds, then whole
tasks (local YAML: multiple choice, LAMBADA-style, rolling perplexity, generation) through `simple_evaluate` with
the model named "gpt2_edu", and through `python -m gpt2_edu.zeroshot.harness`, the harness's command line.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from gpt2_edu.cli.jobs import train_job
from gpt2_edu.model.generate import complete
from gpt2_edu.train.checkpoints import find_checkpoint
from gpt2_edu.zeroshot.engine import loglikelihood
from gpt2_edu.zeroshot.harness import HarnessLM, generation_options

ROOT = Path(__file__).resolve().parents[2]
assert lm_eval.__version__ == "0.4.13", "the cross-check is pinned to lm-evaluation-harness 0.4.13"

PASSAGE = (
    "ROMEO: But, soft! what light through yonder window breaks? It is the east, and Juliet is the sun. "
    "Arise, fair sun, and kill the envious moon, who is already sick and pale with grief."
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A trained run folder, our adapter on it, and HFLM on its checkpoint (logits cache off: see the chapter)."
    run_dir = tmp_path_factory.mktemp("harness") / "run"
    train_job(
        out=str(run_dir),
        preset="gpt2-tiny",
        tokenizer="bytes",
        steps=40,
        batch_size=8,
        lr=3e-3,
        eval_every=0,
        device="cpu",
        progress=False,
        file=open(os.devnull, "w"),
    )
    ours = HarnessLM(path=str(run_dir), batch_size=4, device="cpu")
    theirs = HFLM(pretrained=str(find_checkpoint(run_dir)), device="cpu", batch_size=4, logits_cache=False)
    return run_dir, ours, theirs


def instances(kind, args):
    return [Instance(kind, {}, arg, i) for i, arg in enumerate(args)]


def cloze_requests():
    "Multiple-choice requests sharing long contexts: each is longer than the 64-token window, so it is truncated."
    pairs = []
    for cut in (60, 90, 130):
        context = PASSAGE[:cut]
        pairs += [(context, choice) for choice in (" moon", " sun and stars", " Juliet", "!")]
    pairs += [("Arise", ", fair sun"), ("", "Hello world"), ("It is the east ", "and Juliet")]
    return pairs


def test_registered_under_gpt2_edu_and_built_from_an_argument_string(run):
    run_dir, ours, _ = run
    assert get_model("gpt2_edu") is HarnessLM
    built = HarnessLM.create_from_arg_string(f"path={run_dir},batch_size=3", {"device": "cpu", "max_batch_size": None})
    assert built.batch_size == 3 and built.model.config.n_positions == ours.model.config.n_positions


def test_loglikelihood_per_request_equals_hflm(run):
    _, ours, theirs = run
    requests = instances("loglikelihood", cloze_requests())
    mine = ours.loglikelihood(requests, disable_tqdm=True)
    reference = theirs.loglikelihood(requests, disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(mine, reference):
        assert math.isclose(a, b, abs_tol=1e-4), (a, b)
        assert greedy_a == greedy_b
    assert mine == loglikelihood(ours.model, ours.tok, cloze_requests(), batch_size=4)  # the engine, nothing else


def test_hflm_logits_cache_misreads_a_shorter_continuation_ours_does_not(run):
    """The chapter's finding. Two requests with the same tokens but split elsewhere ("...window" + " breaks? It is"
    and "...window breaks?" + " It is") share one forward pass in HFLM's logits cache (its default); lm-eval 0.4.13 then
    gathers the shorter continuation's log-probabilities from the *first* positions of the longer one's, not the
    last."""
    run_dir, ours, _ = run
    cached = HFLM(pretrained=str(find_checkpoint(run_dir)), device="cpu", batch_size=4)
    for short, long, end in ((20, 50, 60), (100, 140, 150)):  # fits the window; truncated on the left
        pairs = [(PASSAGE[:short], PASSAGE[short:end]), (PASSAGE[:long], PASSAGE[long:end])]
        together = cached.loglikelihood(instances("loglikelihood", pairs), disable_tqdm=True)
        alone = [cached.loglikelihood(instances("loglikelihood", [pair]), disable_tqdm=True)[0] for pair in pairs]
        assert math.isclose(together[0][0], alone[0][0], abs_tol=1e-4)  # the longer continuation is right
        assert abs(together[1][0] - alone[1][0]) > 1e-3  # the shorter one is not
        mine = ours.loglikelihood(instances("loglikelihood", pairs), disable_tqdm=True)
        assert max(abs(a[0] - b[0]) for a, b in zip(mine, alone)) < 1e-4


def test_rolling_and_generation_per_request_equal_hflm(run):
    _, ours, theirs = run
    texts = [(PASSAGE * 3,), ("Short.",), (PASSAGE[:50],)]
    for a, b in zip(
        ours.loglikelihood_rolling(instances("loglikelihood_rolling", texts), disable_tqdm=True),
        theirs.loglikelihood_rolling(instances("loglikelihood_rolling", texts), disable_tqdm=True),
    ):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-3), (a, b)
    prompts = [
        ("JULIET: O Romeo, Romeo! wherefore art thou", {"until": ["\n"], "max_gen_toks": 24, "do_sample": False}),
        ("ROMEO:", {"until": [" the", "\n"], "max_gen_toks": 30}),
        (PASSAGE, {"until": ["."], "max_gen_toks": 16}),
    ]  # longer than the window: cut on the left
    answers = ours.generate_until(instances("generate_until", prompts), disable_tqdm=True)
    assert answers == theirs.generate_until(instances("generate_until", prompts), disable_tqdm=True)
    assert answers[0] == complete(ours.model, ours.tok, prompts[0][0], until=["\n"], max_new_tokens=24)
    assert any(answers)  # not all empty: something was compared


TASKS_YAML = {
    "mc_fixture": """task: mc_fixture
dataset_path: json
dataset_kwargs: {{data_files: {{test: {folder}/mc.jsonl}}}}
output_type: multiple_choice
test_split: test
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list: [{{metric: acc}}, {{metric: acc_norm}}]
""",
    "lambada_fixture": """task: lambada_fixture
dataset_path: json
dataset_kwargs: {{data_files: {{test: {folder}/lambada.jsonl}}}}
output_type: loglikelihood
test_split: test
doc_to_text: "{{{{text.split(' ')[:-1]|join(' ')}}}}"
doc_to_target: "{{{{' '+text.split(' ')[-1]}}}}"
metric_list: [{{metric: acc}}, {{metric: perplexity, aggregation: perplexity, higher_is_better: false}}]
""",
    "rolling_fixture": """task: rolling_fixture
dataset_path: json
dataset_kwargs: {{data_files: {{test: {folder}/lambada.jsonl}}}}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list: [{{metric: word_perplexity}}, {{metric: byte_perplexity}}, {{metric: bits_per_byte}}]
""",
    "gen_fixture": """task: gen_fixture
dataset_path: json
dataset_kwargs: {{data_files: {{test: {folder}/gen.jsonl}}}}
output_type: generate_until
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 12, do_sample: false}}
metric_list: [{{metric: exact_match}}]
""",
}


@pytest.fixture(scope="module")
def task_folder(run, tmp_path_factory):
    "Local tasks, with one generation answer set to what the model writes, so exact match is not always 0."
    _, ours, _ = run
    folder = tmp_path_factory.mktemp("tasks")
    sentences = [
        s.strip() + "."
        for s in (PASSAGE + " Be not her maid, since she is envious. It is my lady.").split(".")
        if s.strip()
    ]
    mc = [
        {
            "context": sentence.rsplit(" ", 1)[0],
            "choices": [" " + sentence.rsplit(" ", 1)[1], " moon.", " sun.", " lady."],
            "gold": 0,
        }
        for sentence in sentences
    ]
    questions = [f"Q: Who speaks line {i}?\nA:" for i in range(4)]
    gen = [{"question": q, "answer": "ROMEO"} for q in questions]
    gen[0]["answer"] = complete(ours.model, ours.tok, questions[0], until=["\n"], max_new_tokens=12)
    for name, records in (("mc", mc), ("lambada", [{"text": s} for s in sentences]), ("gen", gen)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    for name, text in TASKS_YAML.items():
        (folder / f"{name}.yaml").write_text(text.format(folder=folder))
    return folder


def flat(results: dict) -> dict:
    "Task -> metric -> value, without the stderr entries and aliases."
    return {
        task: {metric: value for metric, value in values.items() if isinstance(value, float) and "stderr" not in metric}
        for task, values in results["results"].items()
    }


def assert_same_results(a: dict, b: dict):
    assert a.keys() == b.keys()
    for task in a:
        assert a[task].keys() == b[task].keys() and a[task], task
        for metric, value in a[task].items():
            assert math.isclose(value, b[task][metric], rel_tol=1e-4), (task, metric, value, b[task][metric])


def test_simple_evaluate_by_name_equals_the_hf_route(run, task_folder):
    run_dir, _, theirs = run
    names = list(TASKS_YAML)
    manager = TaskManager(include_path=str(task_folder))
    by_name = lm_eval.simple_evaluate(
        model="gpt2_edu",
        model_args=f"path={run_dir},batch_size=4",
        tasks=names,
        task_manager=manager,
        bootstrap_iters=0,
        device="cpu",
    )
    hf = lm_eval.simple_evaluate(model=theirs, tasks=names, task_manager=manager, bootstrap_iters=0)
    assert_same_results(flat(by_name), flat(hf))
    assert flat(by_name)["gen_fixture"]["exact_match,none"] == 0.25


def test_command_line_equals_simple_evaluate(run, task_folder, tmp_path):
    run_dir, _, theirs = run
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpt2_edu.zeroshot.harness",
            "--model",
            "gpt2_edu",
            "--model_args",
            f"path={run_dir}",
            "--batch_size",
            "4",
            "--tasks",
            "mc_fixture,gen_fixture",
            "--include_path",
            str(task_folder),
            "--device",
            "cpu",
            "--output_path",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads(next(out.rglob("results_*.json")).read_text())
    hf = lm_eval.simple_evaluate(
        model=theirs,
        tasks=["mc_fixture", "gen_fixture"],
        task_manager=TaskManager(include_path=str(task_folder)),
        bootstrap_iters=0,
    )
    assert_same_results(flat(written), flat(hf))
    assert written["config"]["model"] == "gpt2_edu"


def test_clear_errors(run, tmp_path):
    run_dir, ours, _ = run
    with pytest.raises(ValueError, match=r"generation settings \['repetition_penalty'\] are not supported"):
        generation_options({"until": ["\n"], "repetition_penalty": 1.3}, 16)
    with pytest.raises(ValueError, match="no 'auto'"):
        HarnessLM(path=str(run_dir), batch_size="auto", device="cpu")
    with pytest.raises(ValueError, match="exactly one of path=RUN_DIR"):
        HarnessLM(device="cpu")
    with pytest.raises(ValueError, match="give a model with its tokenizer"):
        HarnessLM(model=ours.model, device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="run.json|no run"):
        HarnessLM(path=str(empty), device="cpu")


def test_sampling_keeps_its_temperature_and_top_k():
    options = generation_options({"do_sample": True, "temperature": 0.8, "top_k": 2}, 64)
    assert options == dict(until=[], max_new_tokens=64, temperature=0.8, top_k=2)


def _harness_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "gpt2_edu.zeroshot.harness", "--model", "gpt2_edu", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.parametrize(
    "model_args, message",
    [
        ("path={run},batch_size=0", "batch_size=0: give a positive number of sequences"),
        ("path={run},batch_size=abc", "batch_size='abc': give a positive number of sequences"),
        ("path={missing}", "does not exist"),
        ("path={run}/run.json", "is a file"),
    ],
    ids=["batch_size=0", "batch_size=abc", "no such run", "a file as path"],
)
def test_command_line_errors_are_one_line_with_status_2(run, task_folder, tmp_path, model_args, message):
    "batch_size in --model_args once raised TypeError (the harness passes its own batch_size too)."
    run_dir, _, _ = run
    arguments = model_args.format(run=run_dir, missing=tmp_path / "missing")
    done = _harness_cli("--model_args", arguments, "--tasks", "mc_fixture", "--include_path", str(task_folder))
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("gpt2_edu.zeroshot.harness: error:") and message in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_an_unknown_task_is_one_line_with_status_2(run):
    run_dir, _, _ = run
    done = _harness_cli("--model_args", f"path={run_dir}", "--tasks", "no_such_task")
    assert done.returncode == 2 and "Tasks not found: no_such_task" in done.stderr and "Traceback" not in done.stderr


def test_model_args_batch_size_wins_over_the_harness_flag(run):
    run_dir, _, _ = run
    lm = HarnessLM.create_from_arg_string(f"path={run_dir},batch_size=3", {"batch_size": 1, "device": "cpu"})
    assert lm.batch_size == 3
