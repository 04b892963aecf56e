"""How the Trainer decides on data parallelism, in this process and without MPI (init is replaced, so MPI is never
initialised here): "auto" stays one process without a launcher, with a world of one, and with a libtrain built
without MPI; distributed=True without MPI raises a clear UnsupportedError. test_dist_mpirun.py runs the real thing."""
import io
import os
import signal
import threading

import pytest

import libtrain as lt
from conftest import ROOT

NO_MPI = ("lt_dist_init_mpi: this libtrain was built without MPI; install libopenmpi-dev and openmpi-bin, then "
          "reconfigure with -DLT_MPI=ON")
LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_RANK")


@pytest.fixture
def shard(tmp_path):
    path = str(tmp_path / "r.bin")
    lt.data.tokenize_bytes(os.path.join(ROOT, "README.md"), path)
    return path


@pytest.fixture
def no_launcher(monkeypatch):
    for v in LAUNCHER_VARS:
        monkeypatch.delenv(v, raising=False)


def config(shard):
    cfg = lt.TrainConfig(data_path=shard, steps=2, batch_size=2, seq_len=16, eval_batches=1, progress=1, threads=1)
    cfg.model.block_size, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd = 16, 1, 2, 16
    return cfg


def init_must_not_run(*a, **k):
    raise AssertionError("libtrain.dist.init was called")


def init_without_mpi(*a, **k):
    raise lt.UnsupportedError(NO_MPI)


def test_launcher_world_size():
    f = lt.dist.launcher_world_size
    assert f({}) is None
    assert f({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "1"}) == 4
    assert f({"PMI_SIZE": "2"}) == 2
    assert f({"MV2_COMM_WORLD_SIZE": "3"}) == 3
    assert f({"PMIX_RANK": "0"}) == 0  # launched, size unknown until MPI says
    assert f({"OMPI_COMM_WORLD_SIZE": "x", "PMI_SIZE": "8"}) == 8


def test_auto_without_a_launcher_changes_nothing(shard, no_launcher, monkeypatch):
    monkeypatch.setattr(lt.dist, "init", init_must_not_run)
    tr = lt.Trainer(config(shard))
    assert tr.dist is None and (tr.rank, tr.world_size, tr.is_main) == (0, 1, True)
    out = io.StringIO()
    history = tr.run(out=out)
    assert [s.step for s in history] == [1, 2] and all(s.loss > 0 for s in history)
    assert "step 2/2 | loss" in out.getvalue() and "done: 2 steps" in out.getvalue()


@pytest.mark.parametrize("env", [{"OMPI_COMM_WORLD_SIZE": "1"}, {"PMI_SIZE": "1"}])
def test_auto_with_a_world_of_one_stays_single(shard, no_launcher, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(lt.dist, "init", init_must_not_run)
    assert lt.Trainer(config(shard)).dist is None


def test_auto_under_mpirun_without_mpi_in_the_build_stays_single(shard, no_launcher, monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    calls = []
    monkeypatch.setattr(lt.dist, "init", lambda *a, **k: calls.append(1) or init_without_mpi())
    tr = lt.Trainer(config(shard))
    assert calls == [1] and tr.dist is None and tr.world_size == 1
    assert tr.run(progress=0)[-1].step == 2


def test_distributed_true_without_mpi_in_the_build_says_so(shard, no_launcher, monkeypatch):
    monkeypatch.setattr(lt.dist, "init", init_without_mpi)
    with pytest.raises(lt.UnsupportedError, match=r"distributed=True.*built without MPI.*-DLT_MPI=ON") as e:
        lt.Trainer(config(shard), distributed=True)
    assert isinstance(e.value, NotImplementedError)


def test_distributed_false_never_initialises(shard, monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(lt.dist, "init", init_must_not_run)
    assert lt.Trainer(config(shard), distributed=False).dist is None


def test_bad_distributed_arguments(shard):
    with pytest.raises(lt.ArgumentError, match="distributed must be"):
        lt.Trainer(config(shard), distributed="yes")
    with pytest.raises(lt.ArgumentError, match="distributed must be"):
        lt.dist.maybe_init("always")
    cfg = config(shard)
    with pytest.raises(lt.ArgumentError, match="TrainConfig.dist must be a libtrain.dist.Dist"):
        cfg.dist = 1234
    assert cfg.dist is None


def test_quiet_run_prints_nothing(shard, no_launcher):
    out = io.StringIO()
    tr = lt.Trainer(config(shard))
    assert len(tr.run(progress=lt.train.PROGRESS_NONE, out=out)) == 2
    assert out.getvalue() == ""


def test_trainer_keeps_its_own_strings(shard, no_launcher, tmp_path):
    # The C trainer borrows the config's strings: changing the TrainConfig afterwards must not reach it.
    cfg = config(shard)
    cfg.ckpt_dir = str(tmp_path / "ckpt")
    tr = lt.Trainer(cfg, distributed=False)
    cfg.ckpt_dir = str(tmp_path / "elsewhere")
    cfg.data_path = "/nonexistent"
    tr.step()
    try:
        tr.run_native()  # lt_trainer_run saves at the end into the ckpt_dir it was created with
    except lt.UnsupportedError:
        pytest.skip("libtrain built without HDF5")
    assert os.path.exists(tmp_path / "ckpt" / "latest") and not os.path.exists(tmp_path / "elsewhere")


def test_is_available_matches_the_build():
    # A build with MPI links libmpi, so loading the library has mapped it; one without has not.
    cache = os.path.join(os.path.dirname(os.path.realpath(lt.LIBRARY_PATH)), "CMakeCache.txt")
    if not os.path.exists(cache):
        pytest.skip(f"no CMakeCache.txt beside {lt.LIBRARY_PATH} to say whether it has MPI")
    assert lt.dist.is_available() == ("LT_MPI:BOOL=ON" in open(cache).read())


def test_help_reads_like_a_manual():
    import pydoc
    text = pydoc.render_doc(lt.dist.Dist, renderer=pydoc.plaintext)
    for word in ("rank", "world_size", "local_rank", "barrier", "allreduce", "broadcast", "gather", "close",
                 "Lifetime"):
        assert word in text
    text = pydoc.render_doc(lt.Trainer, renderer=pydoc.plaintext)
    assert "mpirun" in text and "distributed" in text


def test_a_signal_stops_run_at_a_step_boundary(shard, no_launcher):
    # As lt_trainer_run: SIGUSR1 (or SIGTERM) makes run() return after the current step; the handler comes back.
    mine = lambda *a: None  # noqa: E731 (a stray late signal must not end pytest)
    old = signal.signal(signal.SIGUSR1, mine)
    try:
        cfg = config(shard)
        cfg.steps, cfg.eval_batches = 10 ** 6, 0
        tr = lt.Trainer(cfg)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        out = io.StringIO()
        history = tr.run(out=out)
        assert 0 < tr.steps_done == len(history) < cfg.steps
        assert out.getvalue().splitlines()[-1] == (f"stopped by signal {int(signal.SIGUSR1)} after step "
                                                   f"{tr.steps_done}/{cfg.steps} (no ckpt_dir: not saved)")
        assert signal.getsignal(signal.SIGUSR1) is mine
    finally:
        signal.signal(signal.SIGUSR1, old)
