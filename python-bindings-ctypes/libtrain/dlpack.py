"""DLPack exchange. Export (``Tensor.__dlpack__``) shares the tensor's memory: ``numpy.from_dlpack(t)`` and
``torch.from_dlpack(t)`` copy nothing, and the consumer keeps the tensor alive until it calls the deleter, which
runs exactly once (or the capsule's destructor runs it when no consumer took the capsule). Both the unversioned
"dltensor" capsule (DLPack 0.x, what NumPy 1.24 and torch 1.13 take) and, when the consumer asks with
max_version >= (1, 0), the versioned "dltensor_versioned" capsule are produced.

Import (``libtrain.from_dlpack``) COPIES for now: sharing needs a C entry that wraps external memory with a deleter
(lt_tensor_from_blob), which the C library does not export yet.

This module uses only CPython's capsule API through ctypes.pythonapi; the libtrain calls go through _lib.
"""
from __future__ import annotations

import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_uint8, c_uint16, c_uint32,
                    c_uint64, c_void_p, py_object)
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ._lib import C
from .errors import ArgumentError, DTypeError, UnsupportedError
from .tensor import Tensor, dtype, from_numpy, _TO_NUMPY

__all__ = ["to_dlpack", "from_dlpack"]

kDLCPU, kDLCUDA = 1, 2
kDLInt, kDLUInt, kDLFloat, kDLBfloat = 0, 1, 2, 4
_CODES = {dtype.float32: (kDLFloat, 32), dtype.float64: (kDLFloat, 64), dtype.float16: (kDLFloat, 16),
          dtype.bfloat16: (kDLBfloat, 16), dtype.int32: (kDLInt, 32), dtype.int64: (kDLInt, 64),
          dtype.uint16: (kDLUInt, 16), dtype.uint8: (kDLUInt, 8)}
_FROM_CODES = {v: k for k, v in _CODES.items()}


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int32), ("dtype", DLDataType),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


_DELETER = CFUNCTYPE(None, c_void_p)


class DLManagedTensor(Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", _DELETER)]


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", c_void_p), ("deleter", _DELETER), ("flags", c_uint64),
                ("dl_tensor", DLTensor)]


_api = ctypes.pythonapi
_api.PyCapsule_New.restype, _api.PyCapsule_New.argtypes = py_object, [c_void_p, c_void_p, c_void_p]
_api.PyCapsule_IsValid.restype, _api.PyCapsule_IsValid.argtypes = c_int, [c_void_p, c_char_p]
_api.PyCapsule_GetPointer.restype, _api.PyCapsule_GetPointer.argtypes = c_void_p, [c_void_p, c_char_p]
_api.PyCapsule_SetName.restype, _api.PyCapsule_SetName.argtypes = c_int, [py_object, c_char_p]
_api.PyCapsule_IsValid.restype = c_int

# Capsule names must outlive every capsule: module-level buffers.
_NAME = ctypes.create_string_buffer(b"dltensor")
_NAME_V = ctypes.create_string_buffer(b"dltensor_versioned")
_USED = ctypes.create_string_buffer(b"used_dltensor")
_USED_V = ctypes.create_string_buffer(b"used_dltensor_versioned")

#: address of each exported managed struct -> what it keeps alive (the struct, shape/strides, the Tensor).
_LIVE: Dict[int, Tuple[Any, ...]] = {}


@_DELETER
def _deleter(addr: int) -> None:
    # Called by the consumer (or by the capsule destructor) exactly once per export.
    _LIVE.pop(addr, None)


@CFUNCTYPE(None, c_void_p)
def _capsule_destructor(capsule: int) -> None:
    # An unconsumed capsule still has its original name: the producer must release the tensor itself.
    for name in (_NAME, _NAME_V):
        if _api.PyCapsule_IsValid(capsule, name):
            addr = _api.PyCapsule_GetPointer(capsule, name)
            if addr:
                _deleter(addr)
            return


def live_exports() -> int:
    """How many exported capsules have not had their deleter called (for tests)."""
    return len(_LIVE)


def to_dlpack(t: Tensor, max_version: Optional[Tuple[int, int]] = None, copy: Optional[bool] = None) -> Any:
    """A DLPack capsule sharing t's memory (see the module docstring)."""
    if copy:
        t = t.clone()
    versioned = max_version is not None and tuple(max_version)[0] >= 1
    ndim = t.ndim
    shape = (c_int64 * max(ndim, 1))(*t.shape)
    strides = (c_int64 * max(ndim, 1))(*t.strides)
    code, bits = _CODES[t.dtype]
    dev = t.__dlpack_device__()
    dl = DLTensor(C.lt_tensor_data(t._h), DLDevice(*dev), ndim, DLDataType(code, bits, 1), shape, strides, 0)
    if versioned:
        m: Any = DLManagedTensorVersioned(DLPackVersion(1, 0), None, _deleter, 2 if copy else 0, dl)
        name = _NAME_V
    else:
        m = DLManagedTensor(dl, None, _deleter)
        name = _NAME
    addr = ctypes.addressof(m)
    m.manager_ctx = addr
    _LIVE[addr] = (m, shape, strides, t)
    return _api.PyCapsule_New(addr, ctypes.addressof(name), ctypes.cast(_capsule_destructor, c_void_p).value)


def from_dlpack(x: Any) -> Tensor:
    """A Tensor with the contents of any object that implements __dlpack__ (a NumPy array, a torch tensor, ...).

    COPIES for now (see the module docstring); CPU memory only. A libtrain Tensor is returned as it is."""
    if isinstance(x, Tensor):
        return x
    if not hasattr(x, "__dlpack__"):
        raise ArgumentError(f"from_dlpack: {type(x).__name__} has no __dlpack__")
    if hasattr(x, "__dlpack_device__") and tuple(x.__dlpack_device__())[0] != kDLCPU:
        raise UnsupportedError("from_dlpack: only CPU memory can be imported (the copy path reads host memory)")
    capsule = x.__dlpack__()
    capsule_addr = id(capsule)
    if not _api.PyCapsule_IsValid(capsule_addr, _NAME):
        raise ArgumentError("from_dlpack: __dlpack__ did not return a 'dltensor' capsule (or it was already used)")
    addr = _api.PyCapsule_GetPointer(capsule_addr, _NAME)
    m = DLManagedTensor.from_address(addr)
    dl = m.dl_tensor
    key = (dl.dtype.code, dl.dtype.bits)
    if dl.dtype.lanes != 1 or key not in _FROM_CODES:
        raise DTypeError(f"from_dlpack: unsupported DLPack dtype code {dl.dtype.code} bits {dl.dtype.bits}")
    d = _FROM_CODES[key]
    shape = tuple(dl.shape[i] for i in range(dl.ndim))
    item = dl.dtype.bits // 8
    if dl.strides:
        strides = tuple(dl.strides[i] * item for i in range(dl.ndim))
    else:
        strides = tuple(int(s) for s in np.cumprod((1,) + shape[::-1])[:-1][::-1] * item) if shape else ()
    try:
        if d == dtype.bfloat16:
            raise UnsupportedError("from_dlpack: bfloat16 import is not supported yet")
        npd = np.dtype(_TO_NUMPY[d])

        class _View:
            __array_interface__ = {"version": 3, "shape": shape, "typestr": npd.str,
                                   "data": ((dl.data or 0) + dl.byte_offset, True), "strides": strides}
        arr = np.asarray(_View()) if np.prod(shape, dtype=np.int64) > 0 else np.empty(shape, npd)
        out = from_numpy(arr)  # copies
    finally:
        _api.PyCapsule_SetName(capsule, _USED)
        if m.deleter:
            m.deleter(addr)
    return out
