"""Benchmark gpt2_edu's training on CPU: our training step against HF transformers' GPT2LMHeadModel, then the demo.

1. Training throughput, ours vs HF `GPT2LMHeadModel`, with the same config, the same starting weights, the same
   batches and the same optimizer (AdamW over the same decay / no-decay groups, gradient clipping at 1.0). Ours is the
   library's real step, `Trainer.train_step` (data loading, scheduled lr, clipping and AdamW included); HF's is the
   equivalent hand-written loop on batches drawn beforehand. Two configs: the demo's model (a 2,048-token BPE) and
   the `gpt2-mini` preset with GPT-2's 50,257-token vocabulary (what `gpt2-edu train` uses by default). Variants are
   interleaved step by step and medians reported, because the machine is shared and noisy; threads are pinned.
2. `gpt2-edu demo` end to end (its own process state, same threads): wall time, training tokens/s, final losses.

    python benchmarks/train.py [--threads 2] [--reps 8] [--skip-demo]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from gpt2_edu.model.config import GPTConfig, config_to_hf
from gpt2_edu.model.gpt import GPT
from gpt2_edu.train.data import Batches
from gpt2_edu.train.recipe import TrainConfig, lr_at, make_optimizer
from gpt2_edu.train.trainer import Trainer


def hf_model(ours: GPT):
    "HF GPT2LMHeadModel with our config and our current weights."
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    cfg = {k: v for k, v in config_to_hf(ours.config).items() if k not in ("architectures", "model_type")}
    hf = GPT2LMHeadModel(GPT2Config(**cfg))
    missing, unexpected = hf.load_state_dict(ours.hf_state_dict(), strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
    hf.tie_weights()
    return hf.train()


def compare(name: str, model_config: GPTConfig, batch: int, block: int, reps: int):
    tokens = torch.randint(0, model_config.vocab_size, (200_000,)).numpy().astype("uint16")
    cfg = TrainConfig(steps=10_000, batch_size=batch, block_size=block, lr=1e-3, warmup_steps=10, device="cpu", seed=0)
    ours = Trainer(model_config, cfg, tokens, progress=False)
    hf = hf_model(ours.model)
    hf_opt = make_optimizer(hf, cfg, torch.device("cpu"))
    hf_batches, hf_step = Batches(tokens, block, batch, seed=1), [0]

    def step_hf():
        x, _ = next(hf_batches)
        for g in hf_opt.param_groups:
            g["lr"] = lr_at(hf_step[0], cfg)
        loss = hf(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), cfg.grad_clip)
        hf_opt.step()
        hf_opt.zero_grad(set_to_none=True)
        hf_step[0] += 1

    variants = {"ours (Trainer.train_step)": ours.train_step, "HF GPT2LMHeadModel": step_hf}
    times = {k: [] for k in variants}
    for rep in range(reps + 1):  # rep 0 warms up
        for k, f in variants.items():
            t = time.perf_counter()
            f()
            dt = time.perf_counter() - t
            if rep:
                times[k].append(dt)
    ntok = batch * block
    med = {k: statistics.median(v) for k, v in times.items()}
    attn = getattr(hf.config, "_attn_implementation", "?")
    print(
        f"\n== {name}: {ours.model.num_params() / 1e6:.2f}M parameters "
        f"(n_layer={model_config.n_layer}, n_embd={model_config.n_embd}, "
        f"vocab={model_config.vocab_size:,}), batch {batch} x {block} = {ntok:,} tokens/step; "
        f"median of {reps} interleaved steps =="
    )
    for k in variants:
        lo, hi = min(times[k]), max(times[k])
        print(
            f"  {k:<28} {ntok / med[k]:>8,.0f} tokens/s   "
            f"({med[k] * 1000:6.0f} ms/step, range {lo * 1000:.0f}-{hi * 1000:.0f})"
        )
    ratio = med["HF GPT2LMHeadModel"] / med["ours (Trainer.train_step)"]
    print(
        f"  ratio ours / HF: {ratio:.2f}x   (HF attention: {attn}; ours: {'chunked' if ours.chunked else 'plain'} loss)"
    )
    return ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), "
        f"{os.cpu_count()} CPUs visible"
    )
    from gpt2_edu.cli.demo import DEMO_MODEL, DEMO_TRAIN, DEMO_VOCAB

    demo_model = GPTConfig(vocab_size=DEMO_VOCAB + 1, **DEMO_MODEL)
    r1 = compare("demo model", demo_model, DEMO_TRAIN["batch_size"], DEMO_TRAIN["block_size"], args.reps)
    r2 = compare("gpt2-mini, GPT-2 vocabulary", GPTConfig.from_preset("gpt2-mini", pad_vocab_to=64), 8, 256, args.reps)
    print(f"\nours / HF training tokens/s: {r1:.2f}x (demo model), {r2:.2f}x (gpt2-mini, 50,257 tokens)")
    if args.skip_demo:
        return
    from gpt2_edu.cli.demo import demo_job

    with tempfile.TemporaryDirectory() as d:
        os.environ.setdefault("GPT2_EDU_CACHE", os.path.join(d, "cache"))
        print("\n== gpt2-edu demo, end to end ==", flush=True)
        t = time.perf_counter()
        r = demo_job(os.path.join(d, "demo"), progress=False)
        wall = time.perf_counter() - t
    print(
        f"\ndemo: wall time {wall:.0f} s (training {r['train_seconds']:.0f} s, {r['steps']} steps), "
        f"{r['tokens_per_s']:,.0f} training tokens/s (median per step); validation loss {r['val_loss']:.3f} vs "
        f"unigram {r['unigram']:.3f} nats/token ({r['val_bpb']:.2f} vs {r['unigram_bpb']:.2f} bits/byte)"
    )


if __name__ == "__main__":
    main()
