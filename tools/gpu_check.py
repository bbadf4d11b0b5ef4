"""The one GPU check, sized for a short lease: every `#| cuda` cell, a 124M bf16 training benchmark, and one table.

Run from the project root:  python tools/gpu_check.py  [--steps 30] [--skip-notebooks]

On one CUDA GPU, in about 8 minutes at most:
1. every `#| cuda` cell of the chapters (`nbdev-test --flags cuda` on the notebooks that have one);
2. GPT-2 124M (`gpt2` preset, vocabulary padded to 50,304), batch 16 x 1,024 tokens, bf16 autocast, trained by the
   library's `Trainer` on random tokens, eager and with `torch.compile`: tokens/s and MFU (medians of the second half
   of the steps, after warm-up and compilation), peak GPU memory;
3. an FSDP smoke run: the 124M model sharded by chapter 06e's `shard_model` (bf16 compute, fp32 reduction) in a
   process group of one, a few optimizer steps: tokens/s and peak memory (a real multi-GPU FSDP run needs `torchrun`
   and several GPUs: `gpt2-edu train --parallel fsdp`).

Without a CUDA device it says so, skips the GPU-only parts, and runs the same benchmark and FSDP code on a tiny model
on the CPU (2 steps; FSDP over gloo) so that the script itself is tested here. It prints one table; its exit status
is 1 if any part failed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_WITH_CUDA_CELLS = ["05_data", "06f_trainer", "10_scaling"]


def notebooks(timeout: int) -> tuple[str, str]:
    "Run every `#| cuda` cell (and the cells around it) of the chapters that have one."
    paths = [str(ROOT / "nbs" / f"{name}.ipynb") for name in NOTEBOOKS_WITH_CUDA_CELLS]
    start = time.perf_counter()
    failed = []
    for path in paths:
        done = subprocess.run(
            ["nbdev-test", "--flags", "cuda", "--n-workers", "0", path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            failed.append(Path(path).stem)
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    seconds = time.perf_counter() - start
    if failed:
        return "FAIL", f"{', '.join(failed)} failed ({seconds:.0f} s)"
    return "ok", f"{len(paths)} notebooks with their cuda cells ({seconds:.0f} s)"


def benchmark(preset: str, device: str, steps: int, compile_model: bool, batch: int, block: int) -> dict:
    "Train `preset` for `steps` steps on random tokens with the library's Trainer; speeds of the second half."
    from gpt2_edu.model.config import GPTConfig
    from gpt2_edu.train.recipe import TrainConfig
    from gpt2_edu.train.trainer import Trainer

    model = GPTConfig.from_preset(preset, vocab_size=50_257, pad_vocab_to=64)
    block = min(block, model.n_positions)
    settings = TrainConfig(
        steps=steps,
        batch_size=batch,
        block_size=block,
        lr=6e-4,
        warmup_steps=min(10, steps - 1),
        eval_every=0,
        ckpt_every=10**6,
        device=device,
        compile=compile_model,
    )
    tokens = np.random.default_rng(0).integers(0, 50_257, 4_000_000 if device != "cpu" else 50_000).astype(np.uint16)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model, settings, tokens, run_dir=None, progress=False)
    history = trainer.fit()
    later = history[len(history) // 2 :]
    return {
        "params": trainer.model.num_params(),
        "tokens_per_s": statistics.median(record["tokens_per_s"] for record in later),
        "mfu": statistics.median(record["mfu"] for record in later) if "mfu" in later[0] else None,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device != "cpu" else None,
        "loss": history[-1]["loss"],
    }


def fsdp_smoke(preset: str, device: str, steps: int, batch: int, block: int) -> dict:
    "Shard `preset` with `shard_model` in a process group of one and take `steps` AdamW steps on random tokens."
    import socket

    import torch.distributed as dist

    from gpt2_edu.model.config import GPTConfig
    from gpt2_edu.model.gpt import GPT
    from gpt2_edu.train.devices import autocast
    from gpt2_edu.train.parallel import shard_model
    from gpt2_edu.train.recipe import TrainConfig, make_optimizer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    where = torch.device(device)
    dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    try:
        model = GPT(GPTConfig.from_preset(preset, vocab_size=50_257, pad_vocab_to=64)).to(where)
        block = min(block, model.config.n_positions)
        shard_model(model, where)
        optimizer = make_optimizer(model, TrainConfig(), where)
        if where.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        speeds = []
        for _ in range(steps):
            ids = torch.randint(0, 50_257, (batch, block + 1), device=where)
            start = time.perf_counter()
            with autocast(where):
                _, loss = model(ids[:, :-1], ids[:, 1:])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if where.type == "cuda":
                torch.cuda.synchronize()
            speeds.append(batch * block / (time.perf_counter() - start))
        peak = torch.cuda.max_memory_allocated() / 2**30 if where.type == "cuda" else None
        return {"tokens_per_s": statistics.median(speeds[len(speeds) // 2 :]), "peak_gib": peak, "loss": loss.item()}
    finally:
        dist.destroy_process_group()


def _row(part: str, status: str, detail: str) -> str:
    return f"| {part} | {status} | {detail} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per benchmark variant")
    parser.add_argument("--skip-notebooks", action="store_true", help="leave out the #| cuda cells")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per notebook at most")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    rows = []
    failed = False
    if cuda:
        name = torch.cuda.get_device_name(0)
        print(f"CUDA device: {name}, torch {torch.__version__}")
    else:
        name = "none"
        print("No CUDA device here: the GPU parts are skipped; the benchmark code runs on a tiny CPU model instead.")
    if args.skip_notebooks:
        rows.append(_row("`cuda` cells", "skipped", "--skip-notebooks"))
    elif not cuda:
        rows.append(_row("`cuda` cells", "skipped", "no CUDA device (they run under nbdev-test --flags cuda)"))
    else:
        status, detail = notebooks(args.timeout)
        failed |= status != "ok"
        rows.append(_row("`cuda` cells", status, detail))
    variants = [("eager", False), ("torch.compile", True)]
    for label, compile_model in variants:
        part = f"124M bf16 train, {label}" if cuda else f"tiny fp32 CPU smoke, {label}"
        if not cuda and compile_model:
            rows.append(_row(part, "skipped", "torch.compile is for the GPU run (43 s+ cold on this CPU)"))
            continue
        try:
            if cuda:
                result = benchmark("gpt2", "cuda", args.steps, compile_model, 16, 1024)
            else:
                result = benchmark("gpt2-tiny", "cpu", 2, False, 2, 32)
        except Exception as error:  # a part that fails is reported in the table, the others still run
            failed = True
            rows.append(_row(part, "FAIL", f"{type(error).__name__}: {str(error)[:120]}"))
            continue
        mfu = f", MFU {result['mfu']:.1%}" if result["mfu"] is not None else ""
        memory = f", peak {result['peak_gib']:.1f} GiB" if result["peak_gib"] is not None else ""
        rows.append(
            _row(
                part,
                "ok",
                f"{result['params'] / 1e6:.0f}M params, {result['tokens_per_s']:,.0f} tokens/s{mfu}{memory}, "
                f"last loss {result['loss']:.2f}",
            )
        )
    part = "FSDP smoke, 124M bf16, 1 GPU" if cuda else "FSDP smoke, tiny fp32, CPU (gloo)"
    try:
        result = fsdp_smoke("gpt2", "cuda", 10, 16, 1024) if cuda else fsdp_smoke("gpt2-tiny", "cpu", 2, 2, 32)
        memory = f", peak {result['peak_gib']:.1f} GiB" if result["peak_gib"] is not None else ""
        rows.append(_row(part, "ok", f"{result['tokens_per_s']:,.0f} tokens/s{memory}, last loss {result['loss']:.2f}"))
    except Exception as error:
        failed = True
        rows.append(_row(part, "FAIL", f"{type(error).__name__}: {str(error)[:120]}"))
    print(f"\n| part ({name}) | status | result |\n|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
