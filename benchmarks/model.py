"""Benchmark gpt2_edu's GPT against HF transformers' GPT2LMHeadModel on CPU.

One run, one config, one batch: training-step throughput (forward + backward + AdamW) and generation speed
(ours with KV cache vs HF `generate` vs our no-cache loop), with the peak memory each variant adds.
Variants are interleaved and medians reported, because the machine is shared and noisy.

    python benchmarks/model.py [--threads 1] [--preset gpt2-mini] [--batch 8] [--seq 256] [--reps 5]
                               [--new-tokens 200] [--gen-reps 3]
"""

import argparse
import os
import statistics
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from gpt2_edu.model.config import GPTConfig
from gpt2_edu.model.gpt import GPT


class PeakRSS:
    "Peak resident memory above the level at entry, sampled from /proc every 2 ms (reused memory may show as +0)."

    def __init__(self):
        self.peak = 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss() - self.base)
            time.sleep(0.002)

    def __enter__(self):
        self.base, self._stop = self.rss(), threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss() - self.base)


def hf_model(cfg: GPTConfig):
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    hcfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        loss_type="ForCausalLM",
    )
    return GPT2LMHeadModel(hcfg)


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPTConfig.from_preset(args.preset)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); preset {args.preset}: n_layer={cfg.n_layer} "
        f"n_embd={cfg.n_embd} n_head={cfg.n_head} vocab={cfg.vocab_size}; batch {args.batch}x{args.seq}"
    )
    hf = hf_model(cfg)
    ours = GPT(cfg)
    ours.load_state_dict(_from_hf(hf, cfg))  # same starting weights as HF
    ours_pad = GPT(GPTConfig.from_preset(args.preset, pad_vocab_to=64))
    ours_pad.load_state_dict(_from_hf(hf, ours_pad.config))
    print(f"parameters: ours {ours.num_params():,}  HF {sum(p.numel() for p in hf.parameters()):,}")

    # generation: batch 1, greedy, fixed length (no end-of-text so every variant makes the same number of tokens)
    ours.eval()
    hf.eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 16))
    n = min(args.new_tokens, cfg.n_positions - prompt.size(1))
    gens = {
        "HF generate (KV cache)": lambda: hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=n,
            min_new_tokens=n,
            pad_token_id=0,
        ),
        "ours generate (KV cache)": lambda: ours.generate(prompt, n, temperature=0),
        "ours generate (no cache)": lambda: ours.generate(prompt, n, temperature=0, use_cache=False),
    }
    gt = {k: [] for k in gens}
    gmem = {k: 0 for k in gens}
    outs = {}
    for rep in range(args.gen_reps + 1):
        for k, f in gens.items():
            with PeakRSS() as pk:
                t = time.perf_counter()
                outs[k] = f()
                dt = time.perf_counter() - t
            if rep:
                gt[k].append(dt)
                gmem[k] = max(gmem[k], pk.peak)
    gmed = {k: statistics.median(v) for k, v in gt.items()}
    same = all(torch.equal(o, outs["HF generate (KV cache)"]) for o in outs.values())
    print(
        f"\n== generation: batch 1, {prompt.size(1)}-token prompt, {n} new tokens (greedy), "
        f"median of {args.gen_reps} =="
    )
    for k in gens:
        print(
            f"{k:40s} {n / gmed[k]:8.1f} tok/s  ({gmed[k]:.2f} s, all: {' '.join(f'{t:.2f}' for t in gt[k])})  "
            f"peak +{gmem[k] / 2**20:.1f} MiB"
        )
    c = "ours generate (KV cache)"
    print(
        f"ours (KV cache) vs HF generate: x{gmed['HF generate (KV cache)'] / gmed[c]:.2f};  "
        f"vs our no-cache loop: x{gmed['ours generate (no cache)'] / gmed[c]:.2f};  identical tokens: {same}"
    )
    gen_ratio = gmed["HF generate (KV cache)"] / gmed[c]

    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1))
    x, y = idx[:, :-1], idx[:, 1:]
    steps = {
        "HF GPT2LMHeadModel": (hf, lambda m: m(x, labels=x).loss),
        "ours (plain logits + cross_entropy)": (ours, lambda m: m(x, y)[1]),
        "ours (padded vocab 64, chunked loss)": (ours_pad, lambda m: m(x, y, return_logits=False)[1]),
    }
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for k, (m, _) in steps.items()}
    times = {k: [] for k in steps}
    mem = {k: 0 for k in steps}
    losses = {}
    for rep in range(args.reps + 1):  # rep 0 is a warm-up, not counted
        for k, (m, loss_fn) in steps.items():
            m.train()
            with PeakRSS() as pk:
                t = time.perf_counter()
                loss = loss_fn(m)
                loss.backward()
                opts[k].step()
                opts[k].zero_grad(set_to_none=True)
                dt = time.perf_counter() - t
            if rep:
                times[k].append(dt)
                mem[k] = max(mem[k], pk.peak)
            if rep == 0:
                losses[k] = loss.item()  # same weights, same batch: same loss
    ntok = args.batch * args.seq
    med = {k: statistics.median(v) for k, v in times.items()}
    hf_key = "HF GPT2LMHeadModel"
    print(
        f"\n== training step: forward + backward + AdamW (fused), {ntok} tokens, median of {args.reps} interleaved =="
    )
    for k in steps:
        print(
            f"{k:40s} {ntok / med[k]:8.0f} tok/s  ({med[k]:.2f} s/step, all: "
            f"{' '.join(f'{t:.2f}' for t in times[k])})  peak +{mem[k] / 2**20:.0f} MiB  "
            f"x{med[hf_key] / med[k]:.2f} vs HF"
        )

    paired = [h / o for h, o in zip(times[hf_key], times["ours (padded vocab 64, chunked loss)"])]
    print(
        "paired per-round ratios HF/ours-fast (same load conditions):",
        " ".join(f"{r:.2f}" for r in paired),
        f"-> median x{statistics.median(paired):.2f}",
    )
    print("first-step losses (identical starting weights):", "  ".join(f"{v:.6f}" for v in losses.values()))
    tr = med[hf_key] / med["ours (padded vocab 64, chunked loss)"]
    print(f"\nSUMMARY train x{tr:.2f} vs HF (target >= 1.2), generate x{gen_ratio:.2f} vs HF (target >= 1)")


def _from_hf(hf, cfg):
    "Our state dict from an in-memory HF model (so both start from the same weights)."
    from gpt2_edu.model.gpt import state_dict_from_hf

    return state_dict_from_hf({k: v.detach() for k, v in hf.state_dict().items()}, cfg)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (pinned; 1 is steadiest on a shared box)")
    p.add_argument("--preset", default="gpt2-mini")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--gen-reps", type=int, default=3)
    run(p.parse_args())
