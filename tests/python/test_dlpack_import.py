"""libtrain.from_dlpack is zero-copy for CPU producers: same pointer, mutations seen both ways, the producer's
deleter called exactly once (after the libtrain tensor dies), round trips without copies, clear errors."""
import ctypes
import gc

import numpy as np
import pytest
import torch

import libtrain as lt
from libtrain import dlpack
from libtrain.dlpack import (DLDataType, DLDevice, DLManagedTensor, DLManagedTensorVersioned, DLPackVersion,
                             DLTensor, _DELETER, _api)

_CAP_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class Producer:
    """A minimal DLPack producer over a ctypes float buffer that counts its deleter's calls (spec behaviour: an
    unconsumed capsule's destructor calls the deleter; a consumed one is renamed "used_dltensor" and does not)."""

    def __init__(self, n=6, versioned=False, read_only=False, device=(1, 0), code=2, bits=32):
        self.buf = (ctypes.c_float * n)(*range(n))
        self.shape = (ctypes.c_int64 * 1)(n)
        self.calls = 0
        self.versioned, self.read_only, self.device, self.code, self.bits = versioned, read_only, device, code, bits
        self.name = ctypes.create_string_buffer(b"dltensor_versioned" if versioned else b"dltensor")

        @_DELETER
        def deleter(addr):
            self.calls += 1

        @_CAP_DESTRUCTOR
        def destructor(cap):
            if _api.PyCapsule_IsValid(cap, self.name):
                deleter(_api.PyCapsule_GetPointer(cap, self.name))
        self._deleter, self._destructor = deleter, destructor

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, max_version=None):
        dl = DLTensor(ctypes.addressof(self.buf), DLDevice(*self.device), 1, DLDataType(self.code, self.bits, 1),
                      self.shape, None, 0)
        if self.versioned:
            self.m = DLManagedTensorVersioned(DLPackVersion(1, 0), None, self._deleter, 1 if self.read_only else 0, dl)
        else:
            self.m = DLManagedTensor(dl, None, self._deleter)
        return _api.PyCapsule_New(ctypes.addressof(self.m), ctypes.addressof(self.name),
                                  ctypes.cast(self._destructor, ctypes.c_void_p).value)


@pytest.mark.parametrize("versioned", [False, True])
def test_producer_deleter_runs_once_after_the_tensor_dies(versioned):
    p = Producer(versioned=versioned)
    t = lt.from_dlpack(p)
    assert t.data_ptr() == ctypes.addressof(p.buf)
    gc.collect()
    assert p.calls == 0  # the capsule is gone, but it was consumed: the tensor owns the memory
    p.buf[2] = 42.0
    assert t[2].item() == 42.0
    v = t[1:4]  # a view keeps the memory alive too
    del t
    gc.collect()
    assert p.calls == 0
    v[0] = -5.0
    assert p.buf[1] == -5.0
    del v
    gc.collect()
    assert p.calls == 1
    gc.collect()
    assert p.calls == 1 and dlpack.live_imports() == 0


def test_read_only_versioned_capsule_is_copied_and_released():
    p = Producer(versioned=True, read_only=True)
    t = lt.from_dlpack(p)
    assert p.calls == 1  # released at once, after the copy
    assert t.data_ptr() != ctypes.addressof(p.buf)
    np.testing.assert_array_equal(t.numpy(), np.arange(6, dtype=np.float32))


def test_errors_leave_the_capsule_to_its_destructor():
    p = Producer(code=5, bits=64)  # complex64: not a libtrain dtype
    with pytest.raises(lt.DTypeError, match="unsupported DLPack dtype"):
        lt.from_dlpack(p)
    gc.collect()
    assert p.calls == 1 and dlpack.live_imports() == 0
    with pytest.raises(lt.UnsupportedError, match="only CPU memory"):
        lt.from_dlpack(Producer(device=(2, 0)))  # refused before __dlpack__ is called
    with pytest.raises(lt.DTypeError):
        lt.from_dlpack(np.zeros(3, np.int8))
    with pytest.raises(lt.DTypeError):
        lt.from_dlpack(np.zeros(3, np.complex64))
    with pytest.raises(lt.ArgumentError, match="negative"):
        lt.from_dlpack(np.zeros(4, np.float32)[::-1])
    with pytest.raises(lt.ArgumentError, match="__dlpack__"):
        lt.from_dlpack([1.0, 2.0])
    if torch.cuda.is_available():
        with pytest.raises(lt.UnsupportedError, match="only CPU memory"):
            lt.from_dlpack(torch.zeros(3, device="cuda"))


def test_numpy_round_trip_without_copies():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = lt.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data and t.dtype == lt.float64 and t.shape == (3, 4)
    a[2, 3] = 100.0
    assert t[2, 3].item() == 100.0
    t[0, 0] = -1.0
    assert a[0, 0] == -1.0
    b = np.from_dlpack(t)
    assert b.ctypes.data == a.ctypes.data
    s = lt.from_dlpack(a[:, 1::2])  # strided: still shared
    assert s.data_ptr() == a.ctypes.data + 8 and s.strides == (4, 2)
    np.testing.assert_array_equal(np.from_dlpack(s), a[:, 1::2])
    del t, b, s
    gc.collect()
    assert dlpack.live_imports() == 0


def test_numpy_array_outlives_its_python_name():
    a = np.arange(5, dtype=np.int64)
    t = lt.from_dlpack(a)
    del a
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), np.arange(5))  # the capsule's reference keeps the array alive


def test_torch_round_trip_without_copies():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = lt.from_dlpack(x)
    assert t.data_ptr() == x.data_ptr() and t.dtype == lt.float32
    x[1, 1] = 7.0
    assert t[1, 1].item() == 7.0
    t[2, 2] = -2.0
    assert x[2, 2].item() == -2.0
    y = torch.from_dlpack(t)
    assert y.data_ptr() == x.data_ptr() and torch.equal(x, y)
    u = lt.from_dlpack(x.t())  # transposed view: strides carried over
    assert u.data_ptr() == x.data_ptr() and u.strides == (1, 4)
    np.testing.assert_array_equal(u.numpy(), x.t().numpy())
    for dt, ldt in ((torch.float64, lt.float64), (torch.int32, lt.int32), (torch.int64, lt.int64),
                    (torch.uint8, lt.uint8), (torch.float16, lt.float16), (torch.bfloat16, lt.bfloat16)):
        z = torch.ones(4, dtype=dt)
        w = lt.from_dlpack(z)
        assert w.dtype == ldt and w.data_ptr() == z.data_ptr()
    # torch's storage stays alive through the libtrain tensor alone
    t2 = lt.from_dlpack(torch.full((1000,), 3.0))
    gc.collect()
    assert t2.sum().item() == 3000.0
    del t, y, u, w, t2
    gc.collect()
    assert dlpack.live_imports() == 0
