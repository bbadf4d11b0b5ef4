"""Benchmark gpt2_edu's zero-shot engine against lm-evaluation-harness 0.4.13's HF model (`HFLM`) on CPU.

One run, one model (saved with `save_pretrained` and loaded by HFLM), the same requests for both, four workloads:
LAMBADA-style requests (a passage, then its last word), multiple-choice requests (four continuations per context),
rolling perplexity of whole documents, and `generate_until` (greedy answers of up to 32 tokens, batched with left
padding on both sides; ours one prompt at a time is shown too, for what batching buys). Prints requests/s for each
side and our speed as a ratio to HFLM's (median of interleaved repetitions, because the machine is shared and
noisy). Offline: the texts are Shakespeare's held-out plays, the tokenizer is GPT-2's.

    python benchmarks/evaluate.py [--threads 2] [--preset gpt2-micro] [--batch 16] [--reps 3]
"""

import argparse
import os
import random
import statistics
import tempfile
import time

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
import torch

from gpt2_edu.corpus import shakespeare
from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.generate import complete, complete_many
from gpt2_edu.model.gpt import GPT
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer
from gpt2_edu.zeroshot.engine import loglikelihood, loglikelihood_rolling


def workloads(n_lambada: int, n_choice: int, n_docs: int, seed: int = 0) -> dict:
    "LAMBADA-style, multiple-choice and rolling requests cut from Shakespeare's test plays."
    rng = random.Random(seed)
    words = " ".join(doc.text for doc in shakespeare("test")).split()

    def span(n):
        start = rng.randrange(len(words) - n)
        return " ".join(words[start : start + n])

    lambada = []
    for _ in range(n_lambada):
        passage = span(rng.randint(40, 70))
        context, last = passage.rsplit(" ", 1)
        lambada.append((context, " " + last))
    choice = []
    for _ in range(n_choice):
        context = span(rng.randint(30, 50))
        choice += [(context, " " + span(rng.randint(4, 12))) for _ in range(4)]
    docs = [span(rng.randint(300, 600)) for _ in range(n_docs)]
    prompts = [span(rng.randint(10, 60)) for _ in range(n_lambada // 2)]
    return {"LAMBADA-style": lambada, "multiple choice": choice, "rolling perplexity": docs, "generate_until": prompts}


def harness_model(model: GPT, folder: str, batch: int):
    "lm-evaluation-harness's HF model on the same weights and GPT-2's tokenizer."
    import transformers
    from lm_eval.models.huggingface import HFLM
    from transformers import GPT2TokenizerFast

    transformers.logging.set_verbosity_error()
    model.save_pretrained(folder)
    gpt2_tokenizer().save(folder)
    hf_tok = GPT2TokenizerFast(vocab=os.path.join(folder, "encoder.json"), merges=os.path.join(folder, "vocab.bpe"))
    return HFLM(pretrained=folder, tokenizer=hf_tok, device="cpu", batch_size=batch)


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from lm_eval.api.instance import Instance

    tok = gpt2_tokenizer()
    model = GPT(GPTConfig.from_preset(args.preset, vocab_size=tok.vocab_size)).eval()
    lm = harness_model(model, tempfile.mkdtemp(prefix="bench_evaluate_"), args.batch)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); preset {args.preset}: n_layer={model.config.n_layer} "
        f"n_embd={model.config.n_embd} n_positions={model.config.n_positions} vocab={model.config.vocab_size}; "
        f"batch {args.batch}"
    )
    for name, requests in workloads(args.lambada, args.choice, args.docs).items():
        if name == "generate_until":
            settings = {"until": ["\n"], "max_gen_toks": 32, "do_sample": False}
            instances = [Instance("generate_until", {}, (prompt, settings), i) for i, prompt in enumerate(requests)]

            def ours_fn(requests=requests):
                return complete_many(model, tok, requests, max_new_tokens=32, batch_size=args.batch)

            def theirs_fn(instances=instances):
                return lm.generate_until(instances, disable_tqdm=True)

            start = time.perf_counter()
            alone = [complete(model, tok, prompt, max_new_tokens=32) for prompt in requests]
            alone_rate = len(requests) / (time.perf_counter() - start)
            print(f"{'one prompt a time':>18}: {len(requests):4d} requests  ours {alone_rate:8.1f}/s (complete)")
        elif name == "rolling perplexity":
            instances = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(requests)]

            def ours_fn(requests=requests):
                return loglikelihood_rolling(model, tok, requests, batch_size=args.batch)

            def theirs_fn(instances=instances):
                return lm.loglikelihood_rolling(instances, disable_tqdm=True)
        else:
            instances = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(requests)]

            def ours_fn(requests=requests):
                return [score for score, _ in loglikelihood(model, tok, requests, batch_size=args.batch)]

            def theirs_fn(instances=instances):
                return [score for score, _ in lm.loglikelihood(instances, disable_tqdm=True)]

        ours_s, theirs_s = [], []
        for _ in range(args.reps):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            ours = ours_fn()
            ours_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs = theirs_fn()
            theirs_s.append(time.perf_counter() - start)
        if name == "generate_until":
            same = sum(a == b for a, b in zip(ours, theirs))
            assert ours == alone, "batched answers differ from one-at-a-time answers"
            print(
                f"{name:>18}: {len(requests):4d} requests  ours {len(requests) / statistics.median(ours_s):8.1f}/s  "
                f"HFLM {len(requests) / statistics.median(theirs_s):8.1f}/s  "
                f"ratio {statistics.median(theirs_s) / statistics.median(ours_s):5.2f}x  "
                f"(same answers {same}/{len(requests)}; batched vs alone "
                f"{len(requests) / statistics.median(ours_s) / alone_rate:.1f}x)"
            )
            continue
        worst = max(abs(a - b) for a, b in zip(ours, theirs))
        ours_rate = len(requests) / statistics.median(ours_s)
        theirs_rate = len(requests) / statistics.median(theirs_s)
        print(
            f"{name:>18}: {len(requests):4d} requests  ours {ours_rate:8.1f}/s  HFLM {theirs_rate:8.1f}/s  "
            f"ratio {ours_rate / theirs_rate:5.2f}x  (max |diff| {worst:.1e})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="gpt2-micro")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--lambada", type=int, default=128, help="LAMBADA-style requests")
    parser.add_argument("--choice", type=int, default=48, help="multiple-choice questions (4 requests each)")
    parser.add_argument("--docs", type=int, default=12, help="documents for rolling perplexity")
    run(parser.parse_args())
