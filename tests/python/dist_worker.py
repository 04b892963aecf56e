"""Run by test_dist_mpirun.py, under mpirun or alone: trains the tiny GPT of tests/mpi/dist_tool.c through
libtrain.Trainer and writes what each rank ended with, checks every libtrain.dist call against known values, or
ends one rank with an uncaught exception. Each mode prints one JSON line per rank ("worker": {...}) for the test.

    dist_worker.py train SHARD OUTDIR BATCH ACCUM STEPS auto|on|off
    dist_worker.py collectives SHARD
    dist_worker.py raise
"""
import json
import os
import signal
import sys
import threading

import numpy as np

import libtrain as lt


def launcher_rank():
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 0


def tiny_config(shard, batch, accum, steps):
    """dist_tool.c's tiny_config in f64 (so that 2 x B and 1 x 2B agree far below 1e-6), dropout 0."""
    cfg = lt.TrainConfig(data_path=shard, dtype="float64", seq_len=16, val_fraction=0.0, eval_batches=0,
                         warmup_steps=2, lr=1e-2, min_lr=1e-3, threads=1, batch_size=batch, grad_accum=accum,
                         steps=steps, log_every=1, progress=lt.train.PROGRESS_LINES)
    m = cfg.model
    m.block_size, m.n_layer, m.n_head, m.n_embd, m.dropout = 16, 1, 2, 32, 0.0
    return cfg


def report(**fields):
    print("worker: " + json.dumps(fields), flush=True)


def mode_train(shard, outdir, batch, accum, steps, distributed):
    cfg = tiny_config(shard, int(batch), int(accum), int(steps))
    # Ranks start from different seeds, as in the C test: rank 0's seed and parameters must win.
    cfg.seed = 1234 + 1000 * launcher_rank()
    trainer = lt.Trainer(cfg, distributed={"auto": "auto", "on": True, "off": False}[distributed])
    history = trainer.run()
    if trainer.dist is not None:
        trainer.dist.check_params_equal(trainer)  # raises StateError when any rank differs
    flat, _ = trainer.model.params.flat()
    np.save(os.path.join(outdir, f"rank-{trainer.rank}.npy"), flat.numpy().astype(np.float64))
    with open(os.path.join(outdir, f"rank-{trainer.rank}.json"), "w") as f:
        json.dump({"losses": [s.loss for s in history], "world": trainer.world_size}, f)
    report(rank=trainer.rank, world=trainer.world_size, steps=trainer.steps_done,
           dist=trainer.dist is not None, main=trainer.is_main)


def mode_collectives(shard):
    checks = {}

    def check(name, ok):
        checks[name] = bool(ok)

    def raises(exc, fn, text=""):
        try:
            fn()
        except exc as e:
            return text in str(e)
        return False

    d = lt.dist.init()
    r, w = d.rank, d.world_size
    check("init returns the default again", lt.dist.init() is d and lt.dist.get_default() is d)
    check("rank and world", w == int(os.environ.get("OMPI_COMM_WORLD_SIZE", w)) and 0 <= r < w and r == launcher_rank())
    check("local rank (one node)", d.local_rank == r)
    check("is_main", d.is_main == (r == 0))
    check("allreduce sum", d.allreduce(r + 1.5) == w * (w + 2) / 2)
    check("allreduce mean", d.allreduce(r + 1.5, "mean") == (w + 2) / 2)
    check("allreduce max", d.allreduce(3.0 * r, "max") == 3.0 * (w - 1))
    check("allreduce min", d.allreduce(3.0 * r + 1, "min") == 1.0)
    check("allreduce rejects an unknown op before C", raises(lt.ArgumentError, lambda: d.allreduce(1.0, "avg"), "op"))

    a = np.arange(10, dtype=np.float32) * 1.25 if r == 0 else np.full(10, np.nan, np.float32)
    check("broadcast of an array, in place", d.broadcast(a) is a and np.array_equal(a, np.arange(10) * 1.25))
    t = lt.tensor([[1.5, -2.0], [3.25, 4.0]]) if r == 0 else lt.full((2, 2), float("nan"))
    d.broadcast(t)
    check("broadcast of a CPU tensor", t.tolist() == [[1.5, -2.0], [3.25, 4.0]])
    check("broadcast from the last rank", d.broadcast(np.array([r], np.int64), root=w - 1)[0] == w - 1)
    check("broadcast rejects a bad root, naming lt_dist_broadcast",
          raises(lt.ArgumentError, lambda: d.broadcast(np.zeros(2), root=w), "lt_dist_broadcast"))
    check("broadcast rejects a strided array before C",
          raises(lt.ArgumentError, lambda: d.broadcast(np.zeros((4, 4))[:, 1]), "contiguous"))
    obj = d.broadcast_object({"path": "shard.bin", "steps": 7} if r == 0 else None)
    check("broadcast_object", obj == {"path": "shard.bin", "steps": 7})
    g = d.gather(np.array([r, 10 * r + 1], dtype=np.int32))
    want = np.array([[k, 10 * k + 1] for k in range(w)], dtype=np.int32)
    check("gather at root", (g is not None and np.array_equal(g, want)) if r == 0 else g is None)

    # Models from different seeds differ until rank 0's parameters are broadcast.
    m = lt.nn.GPT(lt.nn.GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=32), seed=7 + r)
    check("check_params_equal names rank 1",
          w == 1 or raises(lt.StateError, lambda: d.check_params_equal(m), "rank 1's parameters differ"))
    d.broadcast_params(m)
    d.check_params_equal(m.params)
    check("broadcast_params", True)
    # Gradients: rank r holds sin(i) * (r + 1) + i * 1e-3; the mean over ranks is sin(i) * (w + 1) / 2 + i * 1e-3.
    _, grads = m.params.flat()
    gv = grads.numpy()
    i = np.arange(gv.size, dtype=np.float64)
    gv[:] = np.sin(i) * (r + 1) + i * 1e-3
    d.allreduce_grads(m, bucket_bytes=100)
    want = np.sin(i) * (w + 1) / 2 + i * 1e-3
    check("allreduce_grads averages in 100-byte buckets",
          np.max(np.abs(gv - want) / np.maximum(1e-3, np.abs(want))) < 1e-5)
    gv[:] = 1.0 + r
    d.allreduce_grads(m.params, average=False)
    check("allreduce_grads sums", np.all(gv == w * (w + 1) / 2))
    check("allreduce_grads rejects a non-model before C", raises(lt.ArgumentError, lambda: d.allreduce_grads(42)))
    d.barrier()

    # A second communicator over a duplicate of the world: a context manager, unusable once closed.
    with lt.dist.Dist() as d2:
        check("second communicator", (d2.rank, d2.world_size) == (r, w) and d2.allreduce(1.0) == w)
    check("closed communicator raises StateError", d2.closed and raises(lt.StateError, d2.barrier, "closed"))

    # The Trainer takes an explicit communicator; ranks with different seeds hold rank 0's parameters.
    cfg = tiny_config(shard, 2, 1, 1)
    cfg.seed = 100 + 17 * r
    tr = lt.Trainer(cfg, distributed=d)
    tr.dist.check_params_equal(tr)
    check("Trainer(distributed=Dist)", tr.dist is d and (tr.rank, tr.world_size) == (r, w))
    cfg.dist = d
    tr2 = lt.Trainer(cfg)
    check("TrainConfig.dist", tr2.dist is d and cfg.dist is d)
    check("TrainConfig.dist rejects a non-Dist", raises(lt.ArgumentError, lambda: setattr(cfg, "dist", 5)))
    # One rank's bad data fails create on every rank, naming the failing one; nobody hangs.
    cfg.data_path = "/nonexistent/shard.bin" if r == w - 1 else shard
    check("a bad path on the last rank fails every rank's create",
          raises(lt.LibtrainIOError if r == w - 1 else lt.StateError, lambda: lt.Trainer(cfg), "" if r == w - 1
                 else "failed to create"))

    # SIGUSR1 to the last rank alone stops every rank's Trainer.run after the same step.
    cfg.data_path, cfg.steps, cfg.progress = shard, 10 ** 6, lt.train.PROGRESS_NONE
    tr = lt.Trainer(cfg, distributed=d)
    signal.signal(signal.SIGUSR1, lambda *a: None)  # a late signal must not end the process: run() restores this
    if r == w - 1:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1)).start()
    tr.run()
    n = tr.steps_done
    check("a signal to one rank stops every rank at one step",
          0 < n < cfg.steps and d.allreduce(n, "min") == d.allreduce(n, "max") == n)
    report(rank=r, world=w, checks=checks, failed=[k for k, ok in checks.items() if not ok])


def mode_raise():
    d = lt.dist.init()
    if d.rank == d.world_size - 1:
        raise RuntimeError("deliberate failure on the last rank")
    d.barrier()  # the last rank never arrives: without the abort this would wait forever
    report(rank=d.rank, reached="after barrier")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"train": mode_train, "collectives": mode_collectives, "raise": mode_raise}[mode](*args)
