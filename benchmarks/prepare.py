"""Corpus preparation speed: `prepare_shards` (streaming, worker processes, shards) vs tiktoken in one process.

Run from the project root:  python benchmarks/prepare.py  [--megabytes 40] [--workers 2] [--repeats 3]

The corpus is Shakespeare's 38 plays (the embedded corpus), repeated to about `--megabytes` MB, written as a JSON
Lines file, one play per line. The peer reads the whole file into memory and encodes it with tiktoken's own `gpt2`
encoding (`encode_ordinary_batch`, `--workers` threads), then writes one token file: the one-process pipeline of
chapter 5. Ours streams the same file through `prepare_shards` with `--workers` processes into 10M-token shards (its
ids equal the peer's, checked here). Rounds are interleaved; medians are reported. A ratio above 1 means ours is
faster. Startup of the worker processes is included in our time.
"""

import os

os.environ.update(HF_HUB_OFFLINE="1", TIKTOKEN_CACHE_DIR="")

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gpt2_edu.corpus import shakespeare
from gpt2_edu.tokenizer.tokenizer import reference_gpt2_encoding
from gpt2_edu.train.prepare import prepare_shards


def write_corpus(path: Path, megabytes: int) -> list[str]:
    "The plays, repeated to about `megabytes` MB, one JSON line each; returns the texts in order."
    plays = [doc.text for doc in shakespeare()]
    texts = []
    while sum(len(text) for text in texts) < megabytes * 1_000_000:
        texts += plays
    with open(path, "w", encoding="utf-8") as file:
        for text in texts:
            file.write(json.dumps({"text": text}) + "\n")
    return texts


def peer(path: Path, out: Path, workers: int) -> np.ndarray:
    "tiktoken in one process: read every document, encode them all, write one token file."
    encoding = reference_gpt2_encoding()
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    pieces = encoding.encode_ordinary_batch(texts, num_threads=workers)
    ids = np.fromiter((i for piece in pieces for i in [*piece, encoding.eot_token]), dtype=np.uint16)
    ids.tofile(out)
    return ids


def ours(path: Path, out: Path, workers: int) -> np.ndarray:
    "prepare_shards: stream, tokenize in worker processes, write shards and a manifest."
    manifest = prepare_shards(path, out, workers=workers, shard_tokens=10_000_000, val_tokens=0, progress=False)
    return np.concatenate([np.fromfile(out / record["file"], dtype=np.uint16) for record in manifest["shards"]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        source = scratch / "corpus.jsonl"
        texts = write_corpus(source, args.megabytes)
        size = source.stat().st_size / 1e6
        times = {"ours": [], "peer": []}
        reference = None
        for round_ in range(args.repeats):
            for name, job in (("peer", peer), ("ours", ours)):
                out = scratch / f"{name}-{round_}"
                out.mkdir()
                start = time.perf_counter()
                ids = job(source, out if name == "ours" else out / "tokens.bin", args.workers)
                times[name].append(time.perf_counter() - start)
                if name == "peer" and reference is None:
                    reference = ids
                assert np.array_equal(ids, reference), "the shards differ from tiktoken's ids"
                shutil.rmtree(out)
        print(
            f"{size:.1f} MB of JSON Lines, {len(texts)} documents, {len(reference):,} tokens, "
            f"{args.workers} workers, median of {args.repeats}"
        )
        for name in ("peer", "ours"):
            median = statistics.median(times[name])
            print(f"  {name}: {median:6.2f} s  {size / median:6.1f} MB/s")
        ratio = statistics.median(times["peer"]) / statistics.median(times["ours"])
        print(f"speed ratio (tiktoken one process / prepare_shards): {ratio:.2f}x  (ids identical)")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
