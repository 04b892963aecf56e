"""Checks libtrain's GPT against the PyTorch reference: runs tests/model/gpt_dump, loads the same weights into
gpt_reference.GPT, and compares logits, loss, every gradient and 10 AdamW steps (clipping, cosine schedule).
Usage: compare_gpt.py GPT_DUMP_EXE WORK_DIR. Prints one line per check and exits non-zero on any failure."""
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import GPT, adamw, lr_cosine  # noqa: E402

failures = []
passed = []


def check(what, value, limit):
    ok = value < limit
    (passed if ok else failures).append(what)
    print(f"{'PASS' if ok else 'FAIL'} {what}: {value:.3e} (limit {limit:.0e})")


def run(exe, work, dtype_name):
    out = os.path.join(work, dtype_name)
    os.makedirs(out, exist_ok=True)
    subprocess.run([exe, out, dtype_name], check=True)
    load = lambda name: np.load(os.path.join(out, name + ".npy"))
    meta = load("meta")
    lr, min_lr, clip, wd, warmup, steps = meta[0], meta[1], meta[2], meta[3], int(meta[4]), int(meta[5])
    V, Vp, T, L, H, C = (int(v) for v in meta[6:12])
    dtype = torch.float64 if dtype_name == "f64" else torch.float32
    model = GPT(V, Vp, T, L, H, C).to(dtype)
    with torch.no_grad():
        for name, p in model.named():
            p.copy_(torch.from_numpy(load("init." + name)))
    idx = torch.from_numpy(load("idx")).long()
    tgt = torch.from_numpy(load("targets")).long()
    tol = {"f32": (1e-5, 1e-4, 1e-4), "f64": (1e-10, 1e-8, 1e-8)}[dtype_name]

    logits, loss = model(idx[0], tgt[0])
    loss.backward()
    check(f"{dtype_name} logits max abs diff", (torch.from_numpy(load("logits")) - logits).abs().max().item(), tol[0])
    check(f"{dtype_name} loss abs diff", abs(load("loss").item() - loss.item()), tol[0])
    worst, worst_name = 0.0, ""
    for name, p in model.named():
        g = torch.from_numpy(load("grad." + name))
        # relative to the tensor's largest gradient, so that near-zero entries do not make the ratio meaningless
        rel = ((g - p.grad).abs().max() / p.grad.abs().max().clamp_min(1e-30)).item()
        if rel >= worst:
            worst, worst_name = rel, name
    check(f"{dtype_name} worst gradient relative error ({worst_name})", worst, tol[1])

    opt = adamw(model, lr, wd)
    ours = load("losses")
    worst_step = 0.0
    for k in range(steps):
        opt.zero_grad()
        _, loss = model(idx[k], tgt[k])
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in model.named()], clip)
        for group in opt.param_groups:
            group["lr"] = lr_cosine(k, warmup, steps, lr, min_lr)
        opt.step()
        worst_step = max(worst_step, abs(ours[k] - loss.item()))
    check(f"{dtype_name} worst loss difference over {steps} AdamW steps", worst_step, tol[2])
    final = max(((torch.from_numpy(load("final." + n)) - p.detach()).abs().max().item() for n, p in model.named()))
    check(f"{dtype_name} final parameters max abs diff", final, tol[2])


def main():
    exe, work = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    for dtype_name in ("f32", "f64"):
        run(exe, work, dtype_name)
    print(f"{len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
