"`gpt2-edu eval`: the tasks behind their names, the report's numbers equal the tasks' own, every failure one line."

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from gpt2_edu.cli.main import main
from gpt2_edu.train.runs import load_run
from gpt2_edu.zeroshot.cloze import Cloze
from gpt2_edu.zeroshot.lambada import STOP_WORDS, Lambada
from gpt2_edu.zeroshot.lm_tasks import PennTreebank
from gpt2_edu.zeroshot.registry import (
    TASKS,
    centered_accuracy,
    find_task_file,
    report_markdown,
    run_tasks,
    task_specs,
    tasks_help,
)
from gpt2_edu.zeroshot.winograd import Winograd, WinogradHarness

FIXTURES = Path(__file__).parents[2] / "nbs" / "data" / "zeroshot"
TINY = [
    "--preset",
    "gpt2-tiny",
    "--tokenizer",
    "bytes",
    "--batch-size",
    "4",
    "--block-size",
    "32",
    "--device",
    "cpu",
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--ckpt-every",
    "2",
]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    "A finished tiny run, and a data folder laid out as the datasets' releases unpack."
    root = tmp_path_factory.mktemp("eval")
    corpus = root / "corpus.txt"
    corpus.write_text((FIXTURES / "wiki.test.raw").read_text() * 20, encoding="utf-8")
    assert main(["train", "--corpus", str(corpus), "--out", str(root / "run"), *TINY]) == 0
    data = root / "data"
    (data / "CBTest" / "data").mkdir(parents=True)
    shutil.copy(FIXTURES / "cbtest_CN_test_sample.txt", data / "CBTest" / "data" / "cbtest_CN_test_2500ex.txt")
    shutil.copy(FIXTURES / "lambada_test.jsonl", data / "lambada_test.jsonl")
    (data / "simple-examples" / "data").mkdir(parents=True)
    shutil.copy(FIXTURES / "ptb.test.txt", data / "simple-examples" / "data" / "ptb.test.txt")
    return root


def eval_hf(capsys, model, tok, folder, *argv):
    "Save `model` and `tok` as a Hugging Face folder, then run `gpt2-edu eval --hf folder ARGV` on it."
    model.save_pretrained(folder)
    tok.save(folder)
    return run(capsys, "eval", "--hf", folder, *argv)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_public_task_finds_its_fixture_in_a_release_layout():
    "Each task that reads a file names the release's own file name first."
    assert {name for name, spec in TASKS.items() if not spec.files} == {
        "shakespeare_ne",
        "shakespeare_cn",
        "shakespeare_last_word",
    }
    assert TASKS["cbt_ne"].files[0] == "cbtest_NE_test_2500ex.txt"
    assert TASKS["wikitext103"].files[0] == "wikitext-103-raw/wiki.test.raw"


def test_the_report_holds_the_tasks_own_numbers(place):
    "run_tasks gives exactly what each task's evaluate gives; the CLI writes the same numbers to eval.json."
    model, tok, _ = load_run(place / "run")
    records = run_tasks(model, tok, ["lambada_openai", "cbt_cn", "ptb"], place / "data", batch_size=4)
    data = place / "data"
    direct = [
        Lambada.load(data / "lambada_test.jsonl").evaluate(model, tok, batch_size=4),
        Cloze.load(data / "CBTest/data/cbtest_CN_test_2500ex.txt").evaluate(model, tok, batch_size=4),
        PennTreebank.load(data / "simple-examples/data/ptb.test.txt").evaluate(model, tok, batch_size=4),
    ]
    for record, metrics in zip(records, direct):
        assert record["metrics"].keys() == metrics.keys()
        for key in metrics:
            assert record["metrics"][key] == pytest.approx(metrics[key], rel=1e-6)
    assert records[1]["chance"] == pytest.approx(0.1)
    expected = ((records[0]["metrics"]["acc"] - 0.0) + (records[1]["metrics"]["acc"] - 0.1) / 0.9) / 2
    assert centered_accuracy(records) == pytest.approx(expected)
    assert "| lambada_openai | acc |" in report_markdown(records)
    assert re.search(r"\| lambada_openai \| acc \| [^|]+ \| — \|", report_markdown(records))  # not the paper's protocol
    paper_protocol = run_tasks(model, tok, ["lambada_paper"], place / "data", limit=3)
    words = Lambada(Lambada.load(data / "lambada_test.jsonl").texts[:3])
    assert paper_protocol[0]["metrics"] == {
        "acc": words.last_token_accuracy(model, tok),
        "acc_word": words.word_accuracy(model, tok),
        "acc_word_filter": words.word_accuracy(model, tok, STOP_WORDS),
    }
    assert re.search(r"\| lambada_paper \| acc \| [^|]+ \| 45.99% \|", report_markdown(paper_protocol))  # beside ours


def test_cli_eval_writes_markdown_and_json_into_the_run(place, capsys):
    code, out, err = run(
        capsys,
        "eval",
        "--run",
        place / "run",
        "--tasks",
        "lambada_openai,shakespeare_ne",
        "--data",
        place / "data",
        "--limit",
        "5",
        "--batch-size",
        "4",
    )
    assert code == 0, err
    assert "| shakespeare_ne | acc |" in out
    summary = json.loads((place / "run" / "eval.json").read_text())
    assert [task["task"] for task in summary["tasks"]] == ["lambada_openai", "shakespeare_ne"]
    assert [task["requests"] for task in summary["tasks"]] == [5, 50]
    assert summary["limit"] == 5
    assert (place / "run" / "eval.md").read_text().startswith("## Zero-shot results")
    model, tok, _ = load_run(place / "run")
    lambada = Lambada(Lambada.load(place / "data" / "lambada_test.jsonl").texts[:5]).evaluate(model, tok)
    assert summary["tasks"][0]["metrics"]["acc"] == pytest.approx(lambada["acc"])
    assert summary["tasks"][0]["metrics"]["perplexity"] == pytest.approx(lambada["perplexity"], rel=1e-5)


def test_cli_eval_of_a_hugging_face_folder(place, tmp_path, capsys):
    "--hf reads a save_pretrained folder (weights and tokenizer) and gives the run's numbers; --out gets the files."
    model, tok, _ = load_run(place / "run")
    code, out, err = eval_hf(
        capsys,
        model,
        tok,
        tmp_path / "hf",
        "--tasks",
        "ptb",
        "--data",
        place / "data",
        "--out",
        tmp_path / "report",
    )
    assert code == 0, err
    ours = json.loads((tmp_path / "report" / "eval.json").read_text())["tasks"][0]["metrics"]["word_perplexity"]
    direct = PennTreebank.load(place / "data/simple-examples/data/ptb.test.txt").evaluate(model, tok)
    assert ours == pytest.approx(direct["word_perplexity"], rel=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "lambda"], "unknown task 'lambda': choose among shakespeare_ne"),
        (["--tasks", "wikitext103", "--data", "{data}"], "none of wikitext-103-raw/wiki.test.raw"),
        (["--tasks", "ptb"], "give the folder that holds it as --data DIR"),
        (["--tasks", "ptb", "--data", "{data}", "--limit", "0"], "--limit 0"),
        (["--tasks", "ptb", "--data", "{data}", "--device", "cuda:7"], "--device 'cuda:7'"),
        (["--hf", "{root}", "--tasks", "ptb"], "exactly one of --run"),
        (["--tasks", "ptb,lambada_openai,ptb", "--data", "{data}"], "task 'ptb' is named more than once"),
    ],
)
def test_cli_eval_failures_are_one_line(place, capsys, args, message):
    args = [a.format(data=place / "data", root=place) for a in args]
    code, out, err = run(capsys, "eval", "--run", place / "run", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("task", ["ptb", "lambada_openai", "nq_open"])
def test_a_model_with_nan_weights_gets_no_report(place, tmp_path, capsys, task):
    "A diverged checkpoint (every weight NaN), saved as a real Hugging Face folder: one line, and no eval files."
    model, tok, _ = load_run(place / "run")
    with torch.no_grad():
        for weight in model.parameters():
            weight.fill_(float("nan"))
    data = tmp_path / "data"
    shutil.copytree(place / "data", data)
    shutil.copytree(RELEASES / "nq_open", data / "nq_open")
    code, out, err = eval_hf(
        capsys,
        model,
        tok,
        tmp_path / "hf",
        "--tasks",
        task,
        "--data",
        data,
        "--limit",
        "3",
        "--out",
        tmp_path / "r",
    )
    assert code == 2
    assert "NaN or inf" in err and "check the checkpoint" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "eval.json").exists()


def test_progress_bars_name_their_task(place, capsys):
    "With several tasks in one report, each bar says which task it counts."
    model, tok, _ = load_run(place / "run")
    run_tasks(model, tok, ["ptb", "lambada_openai"], place / "data", limit=2, progress=True)
    err = capsys.readouterr().err
    assert "ptb: windows" in err
    assert "lambada_openai: loglikelihood" in err


def test_a_repeated_task_is_refused_not_counted_twice(place, capsys):
    "Issue 22.9: `--tasks ptb,ptb` skewed the centred accuracy; now one line names the repeat, and no work is done."
    code, out, err = run(
        capsys, "eval", "--run", place / "run", "--tasks", "cbt_cn,ptb,cbt_cn", "--data", place / "data"
    )
    assert code == 2 and "task 'cbt_cn' is named more than once" in err and out == ""
    with pytest.raises(ValueError, match="'ptb' is named more than once"):
        task_specs(["ptb", "lambada_openai", "ptb"])


def test_train_with_eval_tasks_records_them_at_each_validation(place, tmp_path, capsys):
    "--eval-tasks: the zero-shot metrics go into metrics.jsonl at every validation, equal to evaluating the model."
    corpus = place / "corpus.txt"
    argv = ["train", "--corpus", corpus, "--out", tmp_path / "run", *TINY, "--eval-tasks", "cbt_cn,shakespeare_cn"]
    code, _, err = run(capsys, *argv, "--eval-data", place / "data")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "cbt_cn/acc" in r]
    assert evaluated == [r["step"] for r in records if "val_loss" in r] == [2, 4]
    model, tok, _ = load_run(tmp_path / "run")  # the weights of the last step
    final = run_tasks(model, tok, ["cbt_cn", "shakespeare_cn"], place / "data")
    assert records[-1]["cbt_cn/acc"] == final[0]["metrics"]["acc"]
    assert records[-1]["shakespeare_cn/acc"] == final[1]["metrics"]["acc"]


def test_train_with_an_eval_task_whose_file_is_missing_stops_before_training(place, tmp_path, capsys):
    argv = ["train", "--corpus", place / "corpus.txt", "--out", tmp_path / "run", *TINY, "--eval-tasks", "ptb"]
    code, _, err = run(capsys, *argv, "--eval-data", tmp_path)
    assert (
        code == 2
        and "none of ptb.test.txt, simple-examples/data/ptb.test.txt is in" in err
        and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_no_task_names_is_refused_with_the_tasks_to_choose_from():
    with pytest.raises(ValueError, match="no task named: choose among shakespeare_ne"):
        task_specs("")


def test_cli_eval_of_a_folder_without_a_run(place, tmp_path, capsys):
    code, _, err = run(capsys, "eval", "--run", tmp_path, "--tasks", "shakespeare_ne")
    assert code == 2
    assert len(err.strip().splitlines()) == 1


# --- real releases: their layouts, their other splits for examples, and only what --limit asks for ---

DATA = Path(__file__).parents[2] / "nbs" / "data"
RELEASES = DATA / "releases"


def test_the_few_shot_examples_come_from_another_split_and_every_test_question_is_asked(place, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(RELEASES / "nq_open", data / "nq_open")  # dev, and EfficientQA's dev: another set of questions
    model, tok, _ = load_run(place / "run")
    (record,) = run_tasks(model, tok, ["nq_open"], data)
    assert record["requests"] == 40  # all of NQ-open dev's questions, none spent on examples
    assert record["shots"] == str(data / "nq_open" / "NQ-open.efficientqa.dev.1.1.jsonl")
    assert "nq_open: the examples are " in report_markdown([record])
    (data / "nq_open" / "NQ-open.efficientqa.dev.1.1.jsonl").unlink()  # no other split: the report says so
    (record,) = run_tasks(model, tok, ["nq_open"], data)
    assert record["requests"] == 32 and "the first 8 questions of" in record["shots"]


def test_wmt14s_test_full_layout_is_found_and_newstest2013_gives_the_examples(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(RELEASES / "wmt14", data / "test-full")  # as test-full.tgz unpacks
    spec = TASKS["wmt14_en_fr"]
    path = find_task_file(spec, data)
    assert path == data / "test-full" / "newstest2014-fren-src.en.sgm"
    task, _ = spec.build(path, 3)
    assert len(task.pairs) == 3 and "the first 5 pairs of" in task.shots_from
    (data / "dev").mkdir()  # WMT-14's dev set, newstest2013, one sentence per line
    for side in ("en", "fr"):
        shutil.copy(DATA / "wmt14" / f"newstest2014.{side}", data / "dev" / f"newstest2013.{side}")
    task, _ = spec.build(path, None)
    assert len(task.pairs) == 68  # every test sentence is translated: none is an example
    assert task.shots_from == f"{data / 'dev' / 'newstest2013.en'} and {data / 'dev' / 'newstest2013.fr'}"


def test_cnn_dailymail_with_a_limit_needs_only_those_stories(place, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA / "cnn_dailymail", data / "cnn_dailymail")
    urls = (data / "cnn_dailymail" / "url_lists" / "all_test.txt").read_text().split()
    with open(data / "cnn_dailymail" / "url_lists" / "all_test.txt", "a") as url_list:
        url_list.write("http://web.archive.org/web/2015/http://www.cnn.com/2015/a-story-that-was-never-downloaded\n")
    model, tok, _ = load_run(place / "run")
    (record,) = run_tasks(model, tok, ["cnn_dailymail_random3"], data, limit=len(urls))
    assert record["requests"] == len(urls)
    with pytest.raises(ValueError, match="1 of its"):
        run_tasks(model, tok, ["cnn_dailymail_random3"], data)  # without the limit every story must be there


def test_lambadas_original_plain_text_release_reads_one_passage_per_line(tmp_path):
    plain = tmp_path / "lambada_test_plain_text.txt"
    texts = [
        " ".join(text.split()) for text in Lambada.load(RELEASES / "lambada_test.jsonl").texts[:5]
    ]  # one line each
    plain.write_text("\n".join(texts) + "\n")
    assert Lambada.load(plain).texts == texts


def test_wsc273_harness_is_registered_beside_wsc273_on_the_same_file(place, tmp_path, capsys):
    "The harness's requests under their own name: same file as wsc273, its one metric, no paper number beside it."
    spec, paper = task_specs("wsc273_harness")[0], task_specs("wsc273")[0]
    assert spec.files == paper.files and spec.metrics == ("acc",)
    assert "  wsc273_harness " in tasks_help()
    data = tmp_path / "data"
    (data / "wsc273").mkdir(parents=True)
    shutil.copy(RELEASES / "wsc273" / "WSCollection.xml", data / "wsc273" / "WSCollection.xml")  # 62 real schemas
    model, tok, _ = load_run(place / "run")
    records = run_tasks(model, tok, "wsc273,wsc273_harness", data, limit=10)
    schemas = Winograd.load(data / "wsc273" / "WSCollection.xml").schemas[:10]
    assert records[0]["metrics"] == Winograd(schemas).evaluate(model, tok)
    assert records[1]["metrics"] == WinogradHarness(schemas).evaluate(model, tok)
    assert [(r["task"], r["requests"], r["chance"]) for r in records] == [
        ("wsc273", 20, 0.5),
        ("wsc273_harness", 20, 0.5),
    ]
    shown = report_markdown(records)
    assert re.search(r"\| wsc273 \| acc \| [^|]+ \| 70.70% \(1542M\) \|", shown)
    assert re.search(r"\| wsc273_harness \| acc \| [^|]+ \| — \|", shown)  # not the paper's protocol
    code, out, err = run(
        capsys,
        "eval",
        "--run",
        place / "run",
        "--tasks",
        "wsc273_harness",
        "--data",
        data,
        "--limit",
        "4",
        "--out",
        tmp_path / "report",
    )
    assert code == 0, err
    assert "| wsc273_harness | acc |" in out
