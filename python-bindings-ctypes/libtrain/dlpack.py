"""DLPack exchange. Export (``Tensor.__dlpack__``) shares the tensor's memory: ``numpy.from_dlpack(t)`` and
``torch.from_dlpack(t)`` copy nothing, and the consumer keeps the tensor alive until it calls the deleter, which
runs exactly once (or the capsule's destructor runs it when no consumer took the capsule). Both the unversioned
"dltensor" capsule (DLPack 0.x, what NumPy 1.24 and torch 1.13 take) and, when the consumer asks with
max_version >= (1, 0), the versioned "dltensor_versioned" capsule are produced.

Import (``libtrain.from_dlpack``) shares too, for CPU producers: the DLManagedTensor is wrapped with
lt_tensor_from_blob, and the producer's deleter runs exactly once, when the last libtrain tensor viewing it dies.

This module uses only CPython's capsule API through ctypes.pythonapi; the libtrain calls go through _lib.
"""
from __future__ import annotations

import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int32, c_int64, c_uint8, c_uint16, c_uint32,
                    c_uint64, c_void_p, py_object)
from typing import Any, Dict, Optional, Tuple


from . import _lib
from ._lib import C
from .errors import ArgumentError, DTypeError, UnsupportedError
from .tensor import Device, Tensor, dtype, _new

__all__ = ["to_dlpack", "from_dlpack"]

_FLAG_READ_ONLY = 1  # DLPACK_FLAG_BITMASK_READ_ONLY

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


#: managed-struct address -> (versioned, producer object) for every imported capsule whose libtrain tensor lives.
_IMPORTS: Dict[int, Tuple[bool, Any]] = {}


@_lib.DELETER
def _import_deleter(ctx: int, _imports: Dict[int, Tuple[bool, Any]] = _IMPORTS) -> None:
    # lt_tensor_from_blob's deleter: runs once, when the last libtrain tensor viewing the memory is released. It
    # calls the producer's deleter, exactly once. A module-level callback, so it outlives every tensor.
    entry = _imports.pop(ctx, None)  # bound as a default: still reachable while the interpreter shuts down
    if entry is None:
        return
    m: Any = (DLManagedTensorVersioned if entry[0] else DLManagedTensor).from_address(ctx)
    if m.deleter:
        m.deleter(ctx)


def live_imports() -> int:
    """How many imported DLPack tensors still hold their producer's memory (for tests)."""
    return len(_IMPORTS)


def _capsule(x: Any) -> Tuple[Any, bool]:
    """x.__dlpack__(), asking for a versioned capsule first; returns (capsule, versioned)."""
    try:
        cap = x.__dlpack__(max_version=(1, 0))
    except TypeError:  # a DLPack 0.x producer (NumPy < 2, torch < 2.3): no max_version keyword
        cap = x.__dlpack__()
    if _api.PyCapsule_IsValid(id(cap), _NAME_V):
        return cap, True
    if _api.PyCapsule_IsValid(id(cap), _NAME):
        return cap, False
    raise ArgumentError("from_dlpack: __dlpack__ did not return a 'dltensor' capsule (or it was already used)")


def from_dlpack(x: Any) -> Tensor:
    """A Tensor that SHARES the memory of any CPU object implementing __dlpack__ (a NumPy array, a torch tensor,
    ...): no copy, writes through either side are seen by both, and the producer's deleter runs exactly once, when
    the last libtrain tensor viewing the memory dies (views, results of in-place ops, etc. keep it alive).

    Both the versioned ("dltensor_versioned", asked for first) and the unversioned ("dltensor") capsule are taken;
    the capsule is renamed "used_..." as the DLPack spec requires. A versioned capsule flagged read-only is copied
    instead (libtrain tensors are writable). Non-CPU memory raises UnsupportedError; dtypes libtrain lacks (int8,
    bool, complex, vector lanes) raise DTypeError; negative strides raise ArgumentError (from lt_tensor_from_blob).
    On any error the capsule is left unconsumed, so its destructor releases the producer's memory. A libtrain Tensor
    is returned as it is."""
    if isinstance(x, Tensor):
        return x
    if not hasattr(x, "__dlpack__"):
        raise ArgumentError(f"from_dlpack: {type(x).__name__} has no __dlpack__")
    if hasattr(x, "__dlpack_device__"):
        dev_type = int(tuple(x.__dlpack_device__())[0])
        if dev_type != kDLCPU:
            raise UnsupportedError(f"from_dlpack: only CPU memory can be imported (DLPack device type {dev_type}; "
                                   f"move it to the CPU first, e.g. x.cpu())")
    capsule, versioned = _capsule(x)
    name = _NAME_V if versioned else _NAME
    addr = _api.PyCapsule_GetPointer(id(capsule), name)
    m: Any = (DLManagedTensorVersioned if versioned else DLManagedTensor).from_address(addr)
    dl = m.dl_tensor
    if dl.device.device_type != kDLCPU:
        raise UnsupportedError(f"from_dlpack: only CPU memory can be imported (DLPack device type "
                               f"{dl.device.device_type})")
    key = (dl.dtype.code, dl.dtype.bits)
    if dl.dtype.lanes != 1 or key not in _FROM_CODES:
        raise DTypeError(f"from_dlpack: unsupported DLPack dtype (code {dl.dtype.code}, bits {dl.dtype.bits}, lanes "
                         f"{dl.dtype.lanes}); libtrain takes float16/32/64, bfloat16, int32/64, uint8/16")
    d = _FROM_CODES[key]
    ndim = int(dl.ndim)
    if ndim > _lib.LT_MAX_DIMS:
        raise ArgumentError(f"from_dlpack: {ndim} dims, at most {_lib.LT_MAX_DIMS}")
    shape = [int(dl.shape[i]) for i in range(ndim)]
    strides = [int(dl.strides[i]) for i in range(ndim)] if dl.strides else None
    data = (dl.data or 0) + int(dl.byte_offset)
    if versioned and m.flags & _FLAG_READ_ONLY:
        return _copy_and_release(capsule, m, addr, d, shape, strides, data)
    _IMPORTS[addr] = (versioned, None)
    try:
        out = _new(C.lt_tensor_from_blob, data or None, _lib.int64_array(shape), _lib.int64_array(strides), ndim,
                   int(d), Device("cpu")._c(), ctypes.cast(_import_deleter, c_void_p), addr)
    except BaseException:
        _IMPORTS.pop(addr, None)  # on failure lt_tensor_from_blob does not call the deleter; the capsule still owns it
        raise
    # The tensor owns the memory now: the capsule's destructor must not release it too.
    _api.PyCapsule_SetName(capsule, _USED_V if versioned else _USED)
    return out


def _copy_and_release(capsule: Any, m: Any, addr: int, d: dtype, shape: Any, strides: Any, data: int) -> Tensor:
    """The copy path (read-only producers): a new tensor with the values, then the producer's memory is released."""
    try:
        view = _new(C.lt_tensor_from_blob, data or None, _lib.int64_array(shape), _lib.int64_array(strides),
                    len(shape), int(d), Device("cpu")._c(), None, None)
        out = view.clone()  # the copy, while the producer's memory is certainly alive
        del view
    finally:
        _api.PyCapsule_SetName(capsule, _USED_V)
        if m.deleter:
            m.deleter(addr)
    return out
