#!/usr/bin/python3
"""Draws the loss curves of a libtrain run from its JSON Lines metrics (train_gpt --metrics FILE) into a PNG:
training loss per logged step and validation loss at each validation, in nats per token.

Usage: tools/plot_metrics.py METRICS.jsonl [OUT.png]   (default: METRICS.png beside the input)"""
import json
import math
import os
import sys


def read_metrics(path):
    train, val = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"plot_metrics: {path}:{number}: not JSON: {e}")
            if "loss" in row:
                train.append((row["step"], row["loss"]))
            if "val_loss" in row:
                val.append((row["step"], row["val_loss"]))
    if not train and not val:
        raise SystemExit(f"plot_metrics: {path} has no loss or val_loss rows")
    return train, val


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    src = argv[1]
    out = argv[2] if len(argv) > 2 else os.path.splitext(src)[0] + ".png"
    if not os.path.exists(src):
        raise SystemExit(f"plot_metrics: {src} does not exist")
    train, val = read_metrics(src)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if train:
        ax.plot(*zip(*train), label="training loss", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(os.path.basename(src))
    ax.grid(alpha=0.3)
    ax.legend()
    right = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
    right.set_ylabel("bits per token")
    fig.tight_layout()
    fig.savefig(out)
    print(f"plot_metrics: wrote {out} ({len(train)} training and {len(val)} validation points)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
