"""Checkpoints from Python: Trainer.save / Trainer.resume / libtrain.validate_checkpoint over lt_trainer_save /
lt_trainer_resume / lt_ckpt_validate, and Trainer.run() saving every ckpt_every steps like lt_trainer_run."""
import io
import os
import shutil

import pytest

import libtrain as lt
from conftest import ROOT


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "readme.bin")
    lt.data.tokenize_bytes(os.path.join(ROOT, "README.md"), path)
    return path


def config(shard, **kw):
    cfg = lt.TrainConfig(data_path=shard, steps=6, batch_size=2, seq_len=16, eval_batches=1, progress=0, seed=7,
                         warmup_steps=2, **kw)
    cfg.model.block_size, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd = 16, 1, 2, 16
    return cfg


def needs_hdf5(tr, tmp_path):
    try:
        return tr.save(str(tmp_path / "probe"))
    except lt.UnsupportedError:
        pytest.skip("libtrain built without HDF5")


def test_resume_continues_the_same_loss_curve(shard, tmp_path):
    ref = lt.Trainer(config(shard))
    ref_losses = [ref.step().loss for _ in range(6)]

    a = lt.Trainer(config(shard))
    needs_hdf5(a, tmp_path)
    first = [a.step().loss for _ in range(3)]
    assert first == ref_losses[:3]
    path = a.save(str(tmp_path / "ck"), keep_last=2)
    assert os.path.basename(path) == "step-00000003.h5" and os.path.isfile(path)
    assert os.path.exists(str(tmp_path / "ck" / "latest"))
    info = lt.validate_checkpoint(path)
    assert info["step"] == 3 and info["version"] == 1 and info["n_params"] > 0 and info["dtype"] == "f32"
    assert lt.validate_checkpoint(str(tmp_path / "ck"), against=a)["step"] == 3  # a directory: its latest
    del a

    b = lt.Trainer(config(shard))  # a fresh trainer, in the same process
    b.resume(str(tmp_path / "ck"))
    assert b.steps_done == 3
    rest = [b.step().loss for _ in range(3)]
    assert rest == ref_losses[3:]  # bit-identical to the uninterrupted run

    c = lt.Trainer(config(shard))  # params_only: the weights, but a fresh step count and optimizer
    c.resume(path, params_only=True)
    assert c.steps_done == 0


def test_keep_last_and_run_honours_ckpt_every(shard, tmp_path):
    d = tmp_path / "run"
    cfg = config(shard, ckpt_dir=str(d), ckpt_every=2, keep_last=2)
    cfg.progress = lt.train.PROGRESS_LINES
    tr = lt.Trainer(cfg)
    needs_hdf5(tr, tmp_path)
    out = io.StringIO()
    tr.run(out=out)
    text = out.getvalue()
    assert [l for l in text.splitlines() if l.startswith("saved checkpoint")] == [
        f"saved checkpoint step {s} in {d}" for s in (2, 4, 6)]  # step 6 is due and the end: saved once
    assert sorted(f for f in os.listdir(d) if f.endswith(".h5")) == ["step-00000004.h5", "step-00000006.h5"]
    assert lt.validate_checkpoint(str(d))["step"] == 6


def test_corrupt_or_missing_checkpoint_raises_and_leaves_the_trainer(shard, tmp_path):
    tr = lt.Trainer(config(shard))
    needs_hdf5(tr, tmp_path)
    tr.step()
    good = tr.save(str(tmp_path / "ck"))
    bad = str(tmp_path / "truncated.h5")
    shutil.copyfile(good, bad)
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(good) // 2)
    fresh = lt.Trainer(config(shard))
    with pytest.raises(lt.FormatError):
        lt.validate_checkpoint(bad)
    with pytest.raises(lt.FormatError):
        fresh.resume(bad)
    assert fresh.steps_done == 0
    junk = str(tmp_path / "junk.h5")
    with open(junk, "wb") as f:
        f.write(b"not a checkpoint" * 100)
    with pytest.raises(lt.FormatError):
        fresh.resume(junk)
    with pytest.raises(lt.LibtrainIOError):
        fresh.resume(str(tmp_path / "nowhere.h5"))
    other = config(shard)
    other.model.n_embd = 32
    with pytest.raises((lt.ShapeError, lt.ArgumentError)):
        lt.Trainer(other).resume(good)
    # the interpreter and the trainer keep working
    assert fresh.step().step == 1
    fresh.resume(good)
    assert fresh.steps_done == 1
