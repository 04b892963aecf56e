"""The C example and the Python example print the same loss curve, validation losses and sample for one config."""
import os
import re
import subprocess
import sys

import pytest

import libtrain as lt
from conftest import ROOT

ARGS = ["--data", os.path.join(ROOT, "README.md"), "--steps", "8", "--batch", "2", "--seq", "32", "--layers", "1",
        "--heads", "2", "--embd", "32", "--eval-every", "4", "--eval-batches", "2", "--log-every", "2",
        "--sample-tokens", "40", "--seed", "42"]


def c_example():
    exe = os.environ.get("LT_TRAIN_GPT_EXE") or os.path.join(os.path.dirname(lt.LIBRARY_PATH), "examples",
                                                              "train_gpt")
    if not os.path.isfile(exe):
        pytest.skip(f"C example not built ({exe})")
    return exe


def curve(text):
    # everything but timings: loss, lr and norm per logged step, validation losses, the sample
    text = re.sub(r" \| \d+ tok/s \| ETA [0-9:]+", "", text)
    text = re.sub(r"done: .*\n", "", text)
    return [l for l in text.splitlines() if not l.startswith("tokenizing")]


def test_c_and_python_examples_print_the_same_losses(tmp_path):
    exe = c_example()
    c = subprocess.run([exe] + ARGS + ["--cache-dir", str(tmp_path / "c")], capture_output=True, text=True,
                       timeout=300)
    assert c.returncode == 0, c.stderr
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python-bindings-ctypes"),
               LIBTRAIN_LIBRARY=lt.LIBRARY_PATH)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", "train_gpt.py")] + ARGS +
                       ["--cache-dir", str(tmp_path / "p")], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert len([l for l in curve(c.stdout) if "| loss" in l]) == 5
    assert curve(c.stdout) == curve(p.stdout)


def test_trainer_api(tmp_path):
    shard = str(tmp_path / "r.bin")
    lt.data.tokenize_bytes(os.path.join(ROOT, "README.md"), shard)
    cfg = lt.TrainConfig(data_path=shard, steps=2, batch_size=2, seq_len=16, eval_batches=1, progress=0)
    cfg.model.block_size, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd = 16, 1, 2, 16
    tr = lt.Trainer(cfg)
    s = tr.step()
    assert s.step == 1 and s.loss > 0
    assert tr.evaluate() > 0
    tr.run()
    assert tr.steps_done == 2
    with pytest.raises(lt.StateError):
        tr.step()
    ds = lt.data.Dataset(shard, 256)
    loader = lt.data.Loader(ds, 2, 16, seed=1)
    x, y = loader.next()
    assert x.shape == (2, 16) and x.dtype == lt.int32
    assert (x.numpy()[:, 1:] == y.numpy()[:, :-1]).all()
