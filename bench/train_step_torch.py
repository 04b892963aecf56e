"""PyTorch's side of bench/train_step: the same GPT (tests/reference/gpt_reference.py), step and FLOP count, with
PyTorch at its best settings on this machine (threads set explicitly; bench/run.sh sets the allocator and OpenMP
environment). Prints one RESULT line in the format of bench/train_step.c."""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from gpt_reference import GPT, adamw  # noqa: E402

CONFIGS = {
    "tiny": (256, 256, 128, 2, 4, 128, 8),
    "small": (256, 256, 256, 4, 4, 256, 8),
    "gpt2-124M": (50257, 50304, 64, 12, 12, 768, 4),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="small", choices=CONFIGS)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    V, Vp, T, L, H, C, B = CONFIGS[a.config]
    torch.manual_seed(1)
    model = GPT(V, Vp, T, L, H, C)
    with torch.no_grad():
        for _, p in model.named():
            p.normal_(0, 0.02)
    opt = adamw(model, 1e-4, 0.1)
    tok = torch.randint(0, V, (B * T + 1,))
    x, y = tok[:-1].view(B, T), tok[1:].view(B, T)
    params = [p for _, p in model.named()]
    times = []
    for k in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if k >= a.warmup:
            times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    med = times[len(times) // 2]
    n = sum(p.numel() for p in params)
    flop = (6 * n + 6 * L * C * T) * B * T
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT impl=pytorch config={a.config} ms={med:.2f} tok_s={B * T / (med / 1e3):.0f} "
          f"gflops={flop / (med / 1e3) / 1e9:.1f} rss_mb={rss:.1f} steady_mallocs=- threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
