"""Lifetime under the garbage collector, zero-copy NumPy and DLPack exchange, and flat memory over many cycles."""
import gc

import numpy as np
import torch

import libtrain as lt
from libtrain import dlpack


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_tensor_outlives_its_array():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = lt.from_numpy(a)
    ref = a.copy()
    del a
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), ref)


def test_from_numpy_shares_memory():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = lt.from_numpy(a)
    assert t.data_ptr() == a.ctypes.data
    a[1, 2] = 99
    assert t[1, 2].item() == 99
    s = lt.from_numpy(a[:, ::2])  # strided: shared too
    assert s.data_ptr() == a.ctypes.data and s.strides == (3, 2)
    ro = a.copy()
    ro.flags.writeable = False
    assert lt.from_numpy(ro).data_ptr() != ro.ctypes.data  # read-only arrays are copied


def test_array_outlives_its_tensor():
    t = lt.arange(10, dtype="f64")
    a = t.numpy()
    assert a.ctypes.data == t.data_ptr()  # zero-copy
    del t
    gc.collect()
    np.testing.assert_array_equal(a, np.arange(10))
    v = lt.arange(12).reshape(3, 4).T.numpy()  # strided view, still shared
    np.testing.assert_array_equal(v, np.arange(12).reshape(3, 4).T)


def test_parameter_outlives_model():
    m = lt.nn.GPT(lt.nn.GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    w = m.params["wte.weight"]
    ref = w.numpy().copy()
    del m
    gc.collect()
    np.testing.assert_array_equal(w.numpy(), ref)


def test_dlpack_round_trip_numpy_and_torch():
    t = lt.arange(6).reshape(2, 3)
    a = np.from_dlpack(t)
    assert a.ctypes.data == t.data_ptr()
    t[0, 0] = 42.0
    assert a[0, 0] == 42.0
    x = torch.from_dlpack(t)
    assert x.data_ptr() == t.data_ptr()
    x[1, 1] = -1.0
    assert t[1, 1].item() == -1.0 and a[1, 1] == -1.0
    assert dlpack.live_exports() == 2
    del a, x
    gc.collect()
    assert dlpack.live_exports() == 0  # each deleter ran once
    cap = t.__dlpack__()
    del cap  # never consumed: the capsule destructor runs the deleter
    cap = t.__dlpack__(max_version=(1, 0))
    del cap
    assert dlpack.live_exports() == 0
    assert t.__dlpack_device__() == (1, 0)
    back = lt.from_dlpack(torch.arange(5.0))
    np.testing.assert_array_equal(back.numpy(), np.arange(5.0))


def test_10000_create_free_cycles_leave_rss_flat():
    def cycle(n):
        for _ in range(n):
            a = np.ones((64, 64), np.float32)
            t = lt.from_numpy(a) * 2.0
            u = t.numpy()
            del a, t, u
    cycle(1000)
    gc.collect()
    before = rss_kb()
    cycle(10000)
    gc.collect()
    after = rss_kb()
    assert after - before < 4096, f"RSS grew by {after - before} KiB over 10,000 cycles"
