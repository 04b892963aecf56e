"""Data parallelism from Python under mpirun (CTest labels python and mpi): 2 ranks x batch B through
libtrain.Trainer equal 1 process x batch 2B (losses and parameters within 1e-6 relative, as tests/mpi's equivalence
test), both ranks end with the same parameters, only rank 0 prints progress, every libtrain.dist call gives known
values, and an uncaught exception on one rank ends the job instead of leaving the other waiting."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import libtrain as lt

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "dist_worker.py")
MPIRUN = os.environ.get("LT_MPIEXEC") or shutil.which("mpirun") or shutil.which("mpiexec")  # CTest sets the first
LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK", "PMIX_RANK",
                 "MV2_COMM_WORLD_SIZE")
STEPS = 20

pytestmark = [
    pytest.mark.skipif(MPIRUN is None, reason="mpirun not found (install openmpi-bin)"),
    pytest.mark.skipif(not lt.dist.is_available(),
                       reason=f"{lt.LIBRARY_PATH} was built without MPI (install libopenmpi-dev, reconfigure with "
                              f"-DLT_MPI=ON)"),
]


def env():
    e = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    # This interpreter's libtrain package and library, whether from the source tree or a pip install.
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(lt.__file__)))
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
             LIBTRAIN_LIBRARY=lt.LIBRARY_PATH,
             PYTHONPATH=os.pathsep.join([pkg_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return e


def mpirun(np_, *args, outdir, timeout=120):
    """mpirun -np np_ WORKER args; each rank's stdout is also kept apart in outdir (--output-filename)."""
    cmd = [MPIRUN, "-np", str(np_), "--oversubscribe", "--mca", "btl", "self,vader", "--output-filename",
           str(outdir), sys.executable, WORKER, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout)


def by_rank(outdir, world):
    """{rank: [its stdout lines]}: OpenMPI writes rank R's stdout to outdir/1/rank.R/stdout."""
    out = {}
    for r in range(world):
        path = os.path.join(str(outdir), "1", f"rank.{r}", "stdout")
        out[r] = open(path).read().splitlines() if os.path.exists(path) else []
    return out


def workers(lines):
    return [json.loads(l[len("worker: "):]) for l in lines if l.startswith("worker: ")]


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    # A generated text, the same every time: 4000 words from a small vocabulary (byte-level, learnable in 20 steps).
    rng = np.random.RandomState(5)
    words = "the a model trains on every rank and the loss falls while gradients are averaged once per step".split()
    text = " ".join(words[i] for i in rng.randint(0, len(words), 4000)) + "\n"
    d = tmp_path_factory.mktemp("dist")
    (d / "text.txt").write_text(text)
    lt.data.tokenize_bytes(str(d / "text.txt"), str(d / "text.bin"))
    return str(d / "text.bin")


def max_rel(a, b):
    """tests/mpi/dist_tool.c's max_rel: largest |a - b| / max(|a|, |b|, 1e-6)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-6, np.maximum(np.abs(a), np.abs(b)))))


def single(shard, out, batch):
    """The same worker as one process, no launcher in its environment: the Trainer must stay single-process."""
    os.makedirs(out)
    p = subprocess.run([sys.executable, WORKER, "train", shard, out, str(batch), "1", str(STEPS), "auto"],
                       capture_output=True, text=True, env=env(), timeout=120)
    assert p.returncode == 0, p.stderr
    (w,) = workers(p.stdout.splitlines())
    assert w == {"rank": 0, "world": 1, "steps": STEPS, "dist": False, "main": True}
    return json.load(open(os.path.join(out, "rank-0.json")))["losses"], np.load(os.path.join(out, "rank-0.npy")), p


def test_two_ranks_equal_one_process_with_the_combined_batch(shard, tmp_path):
    t0 = time.monotonic()
    two = str(tmp_path / "two")
    os.makedirs(two)
    p = mpirun(2, "train", shard, two, "4", "1", str(STEPS), "auto", outdir=tmp_path / "out")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = by_rank(tmp_path / "out", 2)
    w = {r: workers(lines[r]) for r in (0, 1)}
    assert w[0] == [{"rank": 0, "world": 2, "steps": STEPS, "dist": True, "main": True}], p.stdout
    assert w[1] == [{"rank": 1, "world": 2, "steps": STEPS, "dist": True, "main": False}], p.stdout

    # (c) only rank 0 printed progress: every step's line, and rank 1 printed nothing but its report.
    progress0 = [l for l in lines[0] if re.match(r"step \d+/\d+ \| loss ", l)]
    assert len(progress0) == STEPS and any(l.startswith("done: ") for l in lines[0])
    assert [l for l in lines[1] if not l.startswith("worker: ")] == [], lines[1]

    # (a) both ranks end with bit for bit the same parameters (the worker also ran check_params_equal).
    p0, p1 = np.load(os.path.join(two, "rank-0.npy")), np.load(os.path.join(two, "rank-1.npy"))
    assert p0.size > 10000 and np.array_equal(p0, p1)
    loss2 = json.load(open(os.path.join(two, "rank-0.json")))["losses"]
    assert json.load(open(os.path.join(two, "rank-1.json")))["losses"] == loss2  # the mean over ranks, everywhere

    # (b) the loss curve and the parameters equal one process with batch 2B within 1e-6 relative (f64), and
    # a negative control (one process with batch B) differs, so that the comparison can fail.
    loss1, params1, _ = single(shard, str(tmp_path / "one"), 8)
    assert len(loss1) == len(loss2) == STEPS and loss1[-1] < loss1[0] and loss2[-1] < loss2[0]
    assert max_rel(loss1, loss2) <= 1e-6, (loss1, loss2)
    assert max_rel(params1, p0) <= 1e-6
    loss_half, params_half, _ = single(shard, str(tmp_path / "half"), 4)
    assert max_rel(loss1, loss_half) > 1e-6 and max_rel(params1, params_half) > 1e-6
    print(f"2 ranks vs 1 process: losses {max_rel(loss1, loss2):.3g}, parameters {max_rel(params1, p0):.3g} max "
          f"relative difference; {time.monotonic() - t0:.1f} s")


def test_every_dist_call_on_two_ranks(shard, tmp_path):
    p = mpirun(2, "collectives", shard, outdir=tmp_path / "out")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = by_rank(tmp_path / "out", 2)
    for r in (0, 1):
        (w,) = workers(lines[r])
        assert w["rank"] == r and w["world"] == 2
        assert w["failed"] == [], f"rank {r}: {w['failed']}"
        assert len(w["checks"]) >= 25


def test_an_uncaught_exception_on_one_rank_ends_the_job(tmp_path):
    t0 = time.monotonic()
    p = mpirun(2, "raise", outdir=tmp_path / "out", timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode != 0
    assert "deliberate failure on the last rank" in p.stderr
    assert "rank 1 of 2 ended with an uncaught RuntimeError" in p.stderr
    assert "after barrier" not in p.stdout  # rank 0 never got past the barrier: it was ended
    assert elapsed < 30


def test_explicit_distributed_without_mpirun_is_a_world_of_one(shard, tmp_path):
    out = str(tmp_path / "on")
    os.makedirs(out)
    p = subprocess.run([sys.executable, WORKER, "train", shard, out, "2", "1", "2", "on"], capture_output=True,
                       text=True, env=env(), timeout=120)
    assert p.returncode == 0, p.stderr
    (w,) = workers(p.stdout.splitlines())
    assert w == {"rank": 0, "world": 1, "steps": 2, "dist": True, "main": True}
