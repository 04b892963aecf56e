#!/usr/bin/env python3
"""Trains the small byte-level GPT of examples/train_gpt.c from Python through the libtrain bindings, with the same
options, defaults (lt_train_config_init) and output: for the same seed and config it prints the same loss lines.

    python3 examples/python/train_gpt.py --data README.md --steps 20 --layers 1 --heads 2 --embd 32 --seq 32

Under mpirun it trains data-parallel, as examples/pretrain does: N ranks x --batch rows per step, rank 0 tokenizes,
prints and samples (``--distributed auto``, the default; ``on`` initialises MPI without mpirun, ``off`` never):

    mpirun -np 2 python3 examples/python/train_gpt.py --data README.md --steps 20 --threads 1
"""
from __future__ import annotations

import argparse
import os
import sys

import libtrain as lt
from libtrain.data import Dataset, tokenize_bytes

DEFAULT_CORPUS = "/usr/share/games/fortunes"


def prepare_data(data: str, cache_dir: str) -> str:
    """As the C example: a .bin shard (or a directory of shards) is used as it is; text is tokenized once into
    cache_dir/<name>.bytes.bin, reused while the text is older than it."""
    st = os.stat(data)
    is_bin = os.path.isfile(data) and data.endswith(".bin") and len(data) > 4
    if os.path.isdir(data):
        try:
            Dataset(data, 65536)
            is_bin = True
        except lt.LibtrainError:
            is_bin = False
    if is_bin:
        return data
    base = os.path.basename(data.rstrip("/")) or data
    os.makedirs(cache_dir, exist_ok=True)
    shard = os.path.join(cache_dir, base + ".bytes.bin")
    if os.path.exists(shard) and int(os.stat(shard).st_mtime) >= int(st.st_mtime):
        return shard
    print(f"tokenizing {data} into {shard}", flush=True)
    tokenize_bytes(data, shard)
    return shard


def sample_text(ids: list) -> str:
    return "".join(chr(c) if c in (10, 9) or 32 <= c < 127 else f"\\x{c & 0xff:02x}" for c in ids)


def main(argv: list | None = None) -> int:
    cfg = lt.TrainConfig()
    m = cfg.model
    p = argparse.ArgumentParser(description="Trains a small byte-level GPT on a text corpus, then samples from it.")
    p.add_argument("--data", default=DEFAULT_CORPUS, help="text file, directory of text files, .bin shard or shard directory")
    p.add_argument("--cache-dir", default="data", help="where tokenized text shards are kept")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    for name, default, help_ in [("--steps", cfg.steps, "optimizer steps"), ("--batch", cfg.batch_size, "B"),
                                 ("--seq", cfg.seq_len, "T"), ("--grad-accum", cfg.grad_accum, "micro-batches per step"),
                                 ("--layers", m.n_layer, "blocks"), ("--heads", m.n_head, "attention heads"),
                                 ("--embd", m.n_embd, "width"), ("--warmup", cfg.warmup_steps, "warm-up steps"),
                                 ("--eval-every", cfg.eval_every, "steps between validations"),
                                 ("--eval-batches", cfg.eval_batches, "batches per validation"),
                                 ("--log-every", cfg.log_every, "steps between progress lines"),
                                 ("--seed", cfg.seed, "seed"), ("--threads", cfg.threads, "CPU threads, 0 = all"),
                                 ("--sample-tokens", 300, "bytes to sample after training"), ("--top-k", 40, "top-k")]:
        p.add_argument(name, type=int, default=default, help=help_)
    for name, default, help_ in [("--dropout", m.dropout, "dropout"), ("--lr", cfg.lr, "peak lr"),
                                 ("--min-lr", cfg.min_lr, "final lr"), ("--weight-decay", cfg.weight_decay, "AdamW wd"),
                                 ("--clip", cfg.grad_clip, "gradient clip (0: off)"),
                                 ("--val-fraction", cfg.val_fraction, "held-out fraction"),
                                 ("--temperature", 0.8, "sampling temperature")]:
        p.add_argument(name, type=float, default=default, help=help_)
    p.add_argument("--metrics", default=None, help="write metrics as JSON Lines to this file")
    p.add_argument("--prompt", default="\n", help="text the sample starts from")
    p.add_argument("--distributed", choices=("auto", "on", "off"), default="auto",
                   help="MPI data parallelism: auto (when started by mpirun), on (even without), off")
    p.add_argument("--bucket-mb", type=int, default=lt.dist.DEFAULT_BUCKET_BYTES >> 20,
                   help="MiB per gradient all-reduce bucket")
    a = p.parse_args(argv)

    try:
        dist = lt.dist.maybe_init({"auto": "auto", "on": True, "off": False}[a.distributed])
    except lt.LibtrainError as e:
        print(f"train_gpt: {e}", file=sys.stderr)
        return 1
    rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
    # Rank 0 tokenizes into the cache first, so that the others find the shard ready instead of racing to write it;
    # its result is broadcast, so a bad --data ends every rank.
    shard, err = None, None
    if rank == 0:
        try:
            shard = prepare_data(a.data, a.cache_dir)
        except (OSError, lt.LibtrainError) as e:
            err = str(e)
    if world > 1:
        err = dist.broadcast_object(err)
        if err is None and rank != 0:
            try:
                shard = prepare_data(a.data, a.cache_dir)
            except (OSError, lt.LibtrainError) as e:  # this rank alone: the others would wait for it
                print(f"train_gpt: rank {rank} of {world}: {e}", file=sys.stderr)
                dist.abort(2)
    if err is not None:
        if rank == 0:
            print(f"train_gpt: {err}", file=sys.stderr)
        return 2
    cfg.device = a.device
    cfg.data_path = shard
    m.block_size, m.n_layer, m.n_head, m.n_embd, m.dropout = a.seq, a.layers, a.heads, a.embd, a.dropout
    cfg.seq_len, cfg.batch_size, cfg.grad_accum, cfg.steps, cfg.warmup_steps = a.seq, a.batch, a.grad_accum, a.steps, a.warmup
    cfg.lr, cfg.min_lr, cfg.weight_decay, cfg.grad_clip, cfg.val_fraction = a.lr, a.min_lr, a.weight_decay, a.clip, a.val_fraction
    cfg.eval_every, cfg.eval_batches, cfg.log_every = a.eval_every, a.eval_batches, a.log_every
    cfg.metrics_path, cfg.seed, cfg.threads = a.metrics, a.seed, a.threads
    cfg.bucket_bytes = a.bucket_mb << 20
    trainer = None
    try:
        trainer = lt.Trainer(cfg, distributed=dist or False)  # every rank learns of any rank's failure here
        ranks = f", {world} ranks x batch {a.batch}" if world > 1 else ""
        if trainer.is_main:
            print(f"train_gpt: {trainer.model.num_parameters()} parameters, {a.layers} layers, {a.heads} heads, "
                  f"width {a.embd}, context {a.seq}{ranks}, on {cfg.device.type} (libtrain {lt.version()})",
                  flush=True)
        trainer.run()
        if trainer.steps_done < cfg.steps:  # stopped by SIGTERM/SIGUSR1 on some rank: every rank ends cleanly
            return 0
        if a.sample_tokens > 0 and trainer.is_main:
            prompt = list(a.prompt.encode()) or [10]
            ids = trainer.model.generate(prompt, a.sample_tokens, a.temperature, a.top_k, cfg.seed)
            print(f"--- sample (temperature {a.temperature:.2f}, top-k {a.top_k}) ---")
            print(sample_text(ids))
    except lt.LibtrainError as e:
        print(f"train_gpt: rank {rank} of {world}: {e}" if world > 1 else f"train_gpt: {e}", file=sys.stderr)
        # After a successful create a failure may be this rank's alone: the others would wait for it in the next
        # all-reduce, so end the whole job. A failed create is already known to every rank.
        if trainer is not None and world > 1:
            dist.abort(1)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
