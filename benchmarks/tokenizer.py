"""Tokenizer speed benchmark: our two encoders vs tiktoken and Hugging Face `tokenizers`, and BPE training vs HF.

Run from the project root:  python benchmarks/tokenizer.py  [--quick] [--repeats 5] [--train-repeats 3] [--profile]

Everything is measured in ONE process, single-threaded, on the SAME text cut into the SAME ~10 KB pieces (each piece
encoded with the single-text API), in interleaved rounds; medians are reported. Speeds are MB/s of UTF-8 input;
a speed ratio above 1 means ours is faster.
"""

import os

# Single-threaded Rust (tiktoken, tokenizers): set BEFORE either library is imported.
for _k, _v in {
    "RAYON_NUM_THREADS": "1",
    "RAYON_RS_NUM_CPUS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TIKTOKEN_CACHE_DIR": "",
}.items():
    os.environ[_k] = _v

import argparse
import cProfile
import gc
import platform
import pstats
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the varied-text helper lives with the tests

import tiktoken
import tokenizers
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers
from varied_text import korean_text, stdlib_code

from gpt2_edu.corpus import join_documents, shakespeare
from gpt2_edu.tokenizer.bpe import ENDOFTEXT, bytes_to_unicode, train_bpe
from gpt2_edu.tokenizer.tokenizer import gpt2_tokenizer, reference_gpt2_encoding
from gpt2_edu.tokenizer.vocab import find_gpt2_files

FAST_TARGET, TEACHING_TARGET, TRAIN_TARGET = 0.95, 0.10, 2.0


def pieces_of(text: str, size: int = 10_000) -> list[str]:
    "Cut `text` into pieces of about `size` characters, each ending at a newline."
    out, at = [], 0
    while at < len(text):
        end = text.find("\n", at + size)
        end = len(text) if end < 0 else end + 1
        out.append(text[at:end])
        at = end
    return out


def bench_text(quick: bool) -> str:
    "Shakespeare (all plays, or the valid split with --quick) + Python stdlib code + Korean."
    plays = join_documents(shakespeare("valid" if quick else None))
    return (
        plays
        + "\n\n"
        + stdlib_code(60_000 if quick else 400_000)
        + "\n\n"
        + korean_text(random.Random(0), 20_000 if quick else 150_000)
    )


def time_round(encoders: dict, pieces: list[str]) -> dict[str, float]:
    "Seconds each encoder spends on all pieces, interleaved piece by piece (order rotated): load hits all alike."
    names, total = list(encoders), dict.fromkeys(encoders, 0.0)
    clock = time.perf_counter
    gc.collect()
    gc.disable()
    try:
        for i, p in enumerate(pieces):
            for k in names[i % len(names) :] + names[: i % len(names)]:
                t = clock()
                encoders[k](p)
                total[k] += clock() - t
    finally:
        gc.enable()
    return total


def hf_gpt2():
    "HF's fast Rust BPE loaded from the same GPT-2 files, GPT-2's byte-level pre-tokenization."
    files = find_gpt2_files()
    tok = HFTokenizer(models.BPE.from_file(str(files["encoder.json"]), str(files["vocab.bpe"])))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return tok


def thread_sampler():
    "Start a thread recording this process's OS-thread count every 10 ms; returns (stop, samples)."
    samples, done = [], threading.Event()

    def run():
        while not done.is_set():
            samples.append(len(os.listdir("/proc/self/task")))
            done.wait(0.01)

    th = threading.Thread(target=run, daemon=True)
    th.start()

    def stop():
        done.set()
        th.join()

    return stop, samples


def hf_train(docs: list[str], n_merges: int):
    "Train HF's byte-level BPE (same vocabulary size as ours: 256 bytes + merges + <|endoftext|>)."
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + n_merges + 1,
        special_tokens=[ENDOFTEXT],
        min_frequency=0,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter(docs), trainer=trainer)
    return tok


def fmt_ratio(r: float, target: float, higher_is_better: bool = True) -> str:
    ok = r >= target if higher_is_better else r <= target
    return f"{r:6.2f}x  (target {'>=' if higher_is_better else '<='} {target}x: {'MET' if ok else 'MISSED'})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small text and 500 merges, for a smoke run")
    ap.add_argument("--repeats", type=int, default=None, help="encoding rounds (default 5, quick 2)")
    ap.add_argument("--train-repeats", type=int, default=None, help="training rounds (default 5, quick 1)")
    ap.add_argument("--merges", type=int, default=None, help="BPE merges to train (default 5000, quick 500)")
    ap.add_argument("--profile", action="store_true", help="also cProfile the python encoder and train_bpe")
    args = ap.parse_args()
    reps = args.repeats or (2 if args.quick else 5)
    train_reps = args.train_repeats or (1 if args.quick else 5)
    n_merges = args.merges or (500 if args.quick else 5000)
    started = time.perf_counter()

    print("== Tokenizer benchmark " + ("(QUICK: small text, not for conclusions) " if args.quick else "") + "==")
    print(
        f"python {platform.python_version()}, tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(
        "threads: "
        + " ".join(f"{k}={os.environ[k]}" for k in ("RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS", "TOKENIZERS_PARALLELISM"))
        + " (set before import)"
    )

    # ---- encoding ------------------------------------------------------------------------------------------------
    text = bench_text(args.quick)
    pieces = pieces_of(text)
    mb = len(text.encode("utf-8")) / 1e6
    print(
        f"\n-- Encoding: {mb:.2f} MB ({len(text):,} chars: Shakespeare + stdlib code + Korean) in {len(pieces):,} "
        f"pieces of ~10 KB; single-text encode per piece, encoders interleaved piece by piece; "
        f"{reps} rounds, medians --"
    )
    ref = reference_gpt2_encoding()
    ours_tt, ours_py = gpt2_tokenizer(backend="tiktoken"), gpt2_tokenizer(backend="python")
    hf = hf_gpt2()

    # Same ids from everyone (checked once, untimed; the python run also warms its cache).
    expected = [ref.encode_ordinary(p) for p in pieces]
    for name, enc in [
        ("ours/tiktoken", ours_tt.encode_ordinary),
        ("ours/python", ours_py.encode_ordinary),
        ("HF tokenizers", lambda p: hf.encode(p).ids),
    ]:
        if [enc(p) for p in pieces] != expected:
            sys.exit(f"ERROR: {name} ids differ from tiktoken's gpt2 encoding")
    n_tokens = sum(map(len, expected))
    print(
        f"all four encoders give identical ids ({n_tokens:,} tokens, {mb * 1e6 / n_tokens:.2f} bytes/token); "
        f"python cache after warm-up: {len(ours_py._chunk_cache):,} chunks"
    )

    runs = {
        "ours tiktoken backend": lambda: ours_tt.encode_ordinary,
        "ours python, warm cache": lambda: ours_py.encode_ordinary,
        "ours python, cold cache": lambda: ours_py.with_backend("python").encode_ordinary,  # a fresh instance
        "tiktoken gpt2 (reference)": lambda: ref.encode_ordinary,
        "HF tokenizers (Rust)": lambda: lambda p: hf.encode(p).ids,
    }
    secs = {k: [] for k in runs}
    names = list(runs)
    for _ in range(reps):
        for k, v in time_round(
            {k: make() for k, make in runs.items()}, pieces
        ).items():  # fresh cold instance per round
            secs[k].append(v)
    speed = {k: [mb / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in speed.items()}
    print(f"{'encoder':<28}{'median MB/s':>12}{'min':>8}{'max':>8}   vs tiktoken   vs HF")
    for k in names:
        print(
            f"{k:<28}{med[k]:>12.2f}{min(speed[k]):>8.2f}{max(speed[k]):>8.2f}"
            f"{med[k] / med['tiktoken gpt2 (reference)']:>12.2f}x{med[k] / med['HF tokenizers (Rust)']:>7.2f}x"
        )

    def paired(a, b):  # median over rounds of the per-round speed ratio (robust to slow drifts in machine load)
        return statistics.median(x / y for x, y in zip(speed[a], speed[b]))

    tk, hfk = "tiktoken gpt2 (reference)", "HF tokenizers (Rust)"
    print("speed ratios (median of per-round ratios; > 1 means ours is faster):")
    print(f"  fast path      ours tiktoken / tiktoken  {fmt_ratio(paired('ours tiktoken backend', tk), FAST_TARGET)}")
    print(f"                 ours tiktoken / HF        {paired('ours tiktoken backend', hfk):6.2f}x")
    for kind in ("warm", "cold"):
        k = f"ours python, {kind} cache"
        print(f"  teaching ({kind}) ours python / tiktoken  {fmt_ratio(paired(k, tk), TEACHING_TARGET)}")
        print(f"                 ours python / HF          {paired(k, hfk):6.2f}x")

    # ---- training --------------------------------------------------------------------------------------------------
    docs = shakespeare("valid" if args.quick else None)
    train_text = join_documents(docs)
    hf_docs = [d.text + "\n\n" for d in docs[:-1]] + [docs[-1].text]  # the same characters, one play per item
    assert "".join(hf_docs) == train_text
    print(
        f"\n-- BPE training: {n_merges:,} merges on {len(train_text.encode('utf-8')) / 1e6:.2f} MB of Shakespeare "
        f"({len(docs)} plays), both from raw text; {train_reps} rounds alternating who goes first, medians --"
    )
    t_ours, t_hf, cpu_ours, cpu_hf, threads, base_threads = [], [], [], [], [], []
    for r in range(train_reps):
        for who in ("ours", "hf") if r % 2 == 0 else ("hf", "ours"):
            gc.collect()
            if who == "ours":
                t, c = time.perf_counter(), time.process_time()
                merges = train_bpe(train_text, n_merges)
                t_ours.append(time.perf_counter() - t)
                cpu_ours.append(time.process_time() - c)
            else:
                stop, samples = thread_sampler()
                time.sleep(0.05)
                base_threads.append(max(samples))  # threads before training, sampler included
                t, c = time.perf_counter(), time.process_time()
                hf_tok = hf_train(hf_docs, n_merges)
                t_hf.append(time.perf_counter() - t)
                cpu_hf.append(time.process_time() - c)
                stop()
                threads.append(max(samples))
    hf_merges = [tuple(m) for m in __import__("json").loads(hf_tok.to_str())["model"]["merges"]]
    b2u = bytes_to_unicode()
    ours_merges = [("".join(b2u[x] for x in a), "".join(b2u[x] for x in b)) for a, b in merges]
    same_prefix = next((i for i, (a, b) in enumerate(zip(ours_merges, hf_merges)) if a != b), len(ours_merges))
    print(
        f"ours  train_bpe: median {statistics.median(t_ours):6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in t_ours)})"
    )
    print(f"HF BpeTrainer  : median {statistics.median(t_hf):6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in t_hf)})")
    print(
        f"  time ratio ours / HF  "
        f"{fmt_ratio(statistics.median(a / b for a, b in zip(t_ours, t_hf)), TRAIN_TARGET, False)}"
        f"  (median of per-round ratios; ratio of medians {statistics.median(t_ours) / statistics.median(t_hf):.2f}x)"
    )
    print(
        f"  CPU-time ratio ours / HF {statistics.median(a / b for a, b in zip(cpu_ours, cpu_hf)):.2f}x  (CPU seconds: "
        f"ours {statistics.median(cpu_ours):.2f}, HF {statistics.median(cpu_hf):.2f}; "
        "less sensitive to other processes "
        f"taking the CPU, fair here because both run on one thread)"
    )
    print(
        f"  HF single-threaded?  CPU time / wall time = {statistics.median(c / w for c, w in zip(cpu_hf, t_hf)):.2f} "
        f"(~1.0 = one busy thread, ~2.0 = two); OS threads in this process during HF training: "
        f"max {max(threads)} vs {max(base_threads)} "
        f"before it (the sampler included) -> "
        + ("yes, no worker threads were started" if max(threads) <= max(base_threads) else "NO: extra threads appeared")
    )
    print(
        f"  merges: ours {len(ours_merges):,}, HF {len(hf_merges):,}; first {same_prefix:,} identical in order, "
        f"{len(set(ours_merges) & set(hf_merges)):,} shared as a set"
        + (
            f"; first difference at merge {same_prefix}: ours {ours_merges[same_prefix]} vs HF {hf_merges[same_prefix]}"
            if same_prefix < min(len(ours_merges), len(hf_merges))
            else ""
        )
    )

    if args.profile:
        print("\n-- cProfile: python encoder, cold cache, whole text --")
        fresh = ours_py.with_backend("python")
        prof = cProfile.Profile()
        prof.enable()
        for p in pieces:
            fresh.encode_ordinary(p)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)
        print(f"-- cProfile: train_bpe({n_merges}) --")
        prof = cProfile.Profile()
        prof.enable()
        train_bpe(train_text, n_merges)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)

    print(
        f"\nNoise caveat: single measurements on this machine swing 3-5x under load (shared CPUs; load average now "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs). Rounds are interleaved and ratios are medians of "
        f"per-round ratios, but re-run on a quiet machine before drawing fine conclusions."
    )
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
