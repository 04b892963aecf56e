"""libtrain.Tensor: a Python handle on a refcounted C tensor, with NumPy-style operators and autograd.

Lifetime: each Tensor owns exactly one C reference, dropped (lt_tensor_release) when Python frees the object. Views
share storage with their source through the C library's own refcounts, so any tensor may outlive the one it came
from. No C scope is ever opened from Python.
"""
from __future__ import annotations

import enum
import numbers
import operator
from ctypes import byref, c_double, c_void_p
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._lib import C
from .errors import ArgumentError, DeviceError, DTypeError, RangeError, ShapeError

__all__ = ["Tensor", "dtype", "Device", "Generator", "float32", "float64", "bfloat16", "float16", "int32", "int64",
           "uint16", "uint8", "tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange", "rand", "randn",
           "no_grad", "is_grad_enabled", "cat", "split", "where"]


class dtype(enum.IntEnum):
    """Element types, with the values of the C enum lt_dtype."""
    float32 = 0
    float64 = 1
    bfloat16 = 2
    float16 = 3
    int32 = 4
    int64 = 5
    uint16 = 6
    uint8 = 7

    @property
    def itemsize(self) -> int:
        """Bytes per element (lt_dtype_size)."""
        return int(C.lt_dtype_size(int(self)))

    @property
    def is_floating_point(self) -> bool:
        return self in (dtype.float32, dtype.float64, dtype.bfloat16, dtype.float16)

    def __repr__(self) -> str:
        return f"libtrain.{self.name}"

    __str__ = __repr__


float32, float64, bfloat16, float16 = dtype.float32, dtype.float64, dtype.bfloat16, dtype.float16
int32, int64, uint16, uint8 = dtype.int32, dtype.int64, dtype.uint16, dtype.uint8

_TO_NUMPY = {dtype.float32: np.float32, dtype.float64: np.float64, dtype.float16: np.float16,
             dtype.int32: np.int32, dtype.int64: np.int64, dtype.uint16: np.uint16, dtype.uint8: np.uint8}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items()}
_NAMES = {"float32": float32, "f32": float32, "float64": float64, "f64": float64, "bfloat16": bfloat16,
          "bf16": bfloat16, "float16": float16, "f16": float16, "int32": int32, "i32": int32, "int64": int64,
          "i64": int64, "uint16": uint16, "u16": uint16, "uint8": uint8, "u8": uint8}

DTypeLike = Union[dtype, str, np.dtype, type]


def _dtype(d: DTypeLike) -> dtype:
    """A libtrain dtype from a libtrain.dtype, a NumPy dtype (or type) or a name such as "float32"."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, str) and d in _NAMES:
        return _NAMES[d]
    try:
        nd = np.dtype(d)
    except TypeError:
        raise DTypeError(f"not a dtype: {d!r}") from None
    if nd.newbyteorder("=") in _FROM_NUMPY and nd.isnative:
        return _FROM_NUMPY[nd.newbyteorder("=")]
    raise DTypeError(f"libtrain has no dtype for NumPy's {nd} (supported: float32, float64, float16, int32, int64, "
                     f"uint16, uint8; bfloat16 has no NumPy dtype)")


class Device:
    """A device: ``Device("cpu")``, ``Device("cuda:1")`` or ``Device("cuda", 1)``. Compares equal to its string."""
    __slots__ = ("type", "index")

    def __init__(self, type: Union[str, "Device"] = "cpu", index: Optional[int] = None) -> None:
        if isinstance(type, Device):
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise ArgumentError(f"device must be a string such as 'cpu' or 'cuda:0', not {type!r}")
        name, _, num = type.partition(":")
        if name not in ("cpu", "cuda"):
            raise ArgumentError(f"unknown device {type!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        idx = int(num) if num else (index or 0)
        if idx < 0 or (name == "cpu" and idx != 0):
            raise ArgumentError(f"bad device index in {type!r}")
        self.type, self.index = name, idx

    def _c(self) -> _lib.lt_device:
        return _lib.lt_device(0 if self.type == "cpu" else 1, self.index)

    @classmethod
    def _from_c(cls, d: _lib.lt_device) -> "Device":
        return cls("cpu") if d.type == 0 else cls("cuda", d.index)

    def __eq__(self, other: object) -> bool:
        try:
            o = Device(other) if not isinstance(other, Device) else other  # type: ignore[arg-type]
        except ArgumentError:
            return NotImplemented
        return (self.type, self.index) == (o.type, o.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


DeviceLike = Union[str, Device]
_CPU = Device("cpu")


class Generator:
    """A Philox4x32-10 stream (seed, offset), as cuRAND draws it. Functions that draw random numbers advance it,
    so the same generator state gives the same numbers on every backend."""

    def __init__(self, seed: int = 0, offset: int = 0) -> None:
        self._state = _lib.lt_philox(_check_uint(seed, "seed"), _check_uint(offset, "offset"))

    @property
    def seed(self) -> int:
        return int(self._state.seed)

    @property
    def offset(self) -> int:
        return int(self._state.offset)

    def __repr__(self) -> str:
        return f"Generator(seed={self.seed}, offset={self.offset})"


# ---- argument checks, done in Python before any C call ----

def _check_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
        raise ArgumentError(f"{what} must be an int, not {type(v).__name__}")
    return int(v)


def _check_uint(v: Any, what: str) -> int:
    v = _check_int(v, what)
    if v < 0 or v >= 2 ** 64:
        raise ArgumentError(f"{what} must be in [0, 2**64), not {v}")
    return v


def _shape_arg(shape: Tuple[Any, ...], what: str, allow_minus_one: bool = False) -> Tuple[int, ...]:
    """Accepts f(2, 3) and f((2, 3)); checks every entry is an int >= 0 (or one -1 when allowed)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = tuple(_check_int(s, f"{what}: shape entry") for s in shape)
    if len(out) > _lib.LT_MAX_DIMS:
        raise ArgumentError(f"{what}: {len(out)} dims, at most {_lib.LT_MAX_DIMS}")
    minus = sum(1 for s in out if s == -1)
    for s in out:
        if s < -1 or (s == -1 and not allow_minus_one):
            raise ArgumentError(f"{what}: negative size {s} in shape {out}")
    if minus > 1:
        raise ArgumentError(f"{what}: only one size may be -1 in shape {out}")
    return out


def _dims_arg(dim: Union[None, int, Sequence[int]], what: str) -> List[int]:
    if dim is None:
        return []
    if isinstance(dim, (list, tuple)):
        return [_check_int(d, f"{what}: dim") for d in dim]
    return [_check_int(dim, f"{what}: dim")]


def _new(fn: Any, *args: Any) -> "Tensor":
    """Calls a C function whose last argument is `lt_tensor **out`, and wraps the new reference."""
    out = c_void_p()
    fn(*args, byref(out))
    return Tensor._own(out.value)


def _h(x: Any, what: str = "argument") -> Optional[int]:
    if x is None:
        return None
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{what} must be a libtrain.Tensor, not {type(x).__name__}")
    return x._h


def _other(self: "Tensor", x: Any) -> Optional["Tensor"]:
    """The other operand of a binary operator as a Tensor of self's dtype and device, or None for a scalar."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return from_numpy(x.astype(_TO_NUMPY.get(self.dtype, np.float32), copy=False), device=self.device)
    return None


class _ArrayView:
    """Exports a CPU tensor's memory through __array_interface__ and keeps the Tensor alive for the array's life:
    np.asarray(view) has this object as its base."""
    __slots__ = ("__array_interface__", "tensor")

    def __init__(self, t: "Tensor", np_dtype: Any) -> None:
        item = np.dtype(np_dtype).itemsize
        self.tensor = t
        self.__array_interface__ = {"version": 3, "shape": t.shape, "typestr": np.dtype(np_dtype).str,
                                    "data": (C.lt_tensor_data(t._h), False),
                                    "strides": tuple(s * item for s in t.strides)}


class Tensor:
    """An n-dimensional array on a device (CPU; CUDA in builds that have it) that records operations for autograd.

    Creating tensors
        ``libtrain.tensor([[1., 2.], [3., 4.]])``, ``libtrain.from_numpy(array)``, ``libtrain.zeros(2, 3)``,
        ``ones``, ``full``, ``empty``, ``arange``, ``rand``/``randn`` (with a ``Generator``).

    Inspecting
        ``shape`` (a tuple), ``ndim``, ``numel()``, ``dtype`` (a ``libtrain.dtype``), ``device``, ``strides``
        (in elements), ``is_contiguous()``, ``numpy()``, ``tolist()``, ``item()``.

    Arithmetic (NumPy broadcasting; a Python number on either side is a scalar)
        ``a + b``, ``a - b``, ``a * b``, ``a / b``, ``a ** b``, ``-a``, ``a @ b`` (matrix product of the last two
        dims, leading dims broadcast).

    Views (share memory with the source; recorded by autograd)
        ``t[1:3, ::2]`` (ints, slices with step >= 1, ``...``), ``reshape``, ``view``, ``permute``, ``transpose``,
        ``T`` (the last two dims swapped), ``expand``, ``detach``.

    Math
        ``sum``, ``mean``, ``max`` (over ``dim``, an int or a tuple; all dims by default), ``exp``, ``log``,
        ``sqrt``, ``rsqrt``, ``tanh``, ``sigmoid``, ``relu``, ``gelu``, ``softmax``, ``log_softmax``.

    Autograd
        Set ``requires_grad = True`` on a float leaf, compute a scalar loss, call ``loss.backward()``; the
        gradient is in ``leaf.grad``. ``with libtrain.no_grad(): ...`` stops recording.

    NumPy and DLPack
        ``t.numpy()`` shares memory with a contiguous-or-strided CPU tensor (no copy); bfloat16 and device tensors
        are copied. ``np.asarray(t)`` does the same. ``libtrain.from_numpy(a)`` shares the array's memory
        (lt_tensor_from_blob) and keeps it alive. ``numpy.from_dlpack(t)`` and ``torch.from_dlpack(t)`` share
        memory without copying; ``libtrain.from_dlpack(x)`` still copies.

    Lifetime
        The C tensor is released when the Python object is freed. Arrays returned by ``numpy()`` keep their
        Tensor alive, and a Tensor never depends on the array it was made from.

    Errors
        A failed C call raises the ``libtrain.LibtrainError`` subclass of its status (``ShapeError`` for shapes
        that do not fit, ...) with the C library's message; bad Python arguments raise before reaching C.
    """

    __slots__ = ("_h", "__weakref__")
    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any = None, dtype: Optional[DTypeLike] = None, device: DeviceLike = "cpu",
                 requires_grad: bool = False) -> None:
        """Tensor(data) is libtrain.tensor(data): a new tensor holding a copy of data (a nested list, a number or
        an array)."""
        self._h: Optional[int] = None
        if data is None:
            raise ArgumentError("Tensor(data): data is required (use libtrain.empty / zeros for uninitialised "
                                "or zero tensors)")
        t = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        C.lt_tensor_retain(t._h)
        self._h = t._h

    @classmethod
    def _own(cls, handle: Optional[int]) -> "Tensor":
        """Wraps a handle whose reference the caller hands over."""
        if not handle:
            raise _lib.error_for_status(12, "libtrain returned a NULL tensor without an error")
        t = cls.__new__(cls)
        t._h = handle
        return t

    @classmethod
    def _borrow(cls, handle: Optional[int]) -> "Tensor":
        """Wraps a borrowed handle, taking a reference of its own."""
        C.lt_tensor_retain(handle)
        return cls._own(handle)

    def __del__(self, _release: Any = C.lt_tensor_release) -> None:
        h = getattr(self, "_h", None)
        if h:
            self._h = None
            _release(h)

    # ---- inspection ----

    @property
    def shape(self) -> Tuple[int, ...]:
        """The sizes of the dims, as a tuple of ints."""
        buf = (_lib.c_int64 * _lib.LT_MAX_DIMS)()
        C.lt_tensor_shape(self._h, buf)
        return tuple(buf[: C.lt_tensor_ndim(self._h)])

    @property
    def strides(self) -> Tuple[int, ...]:
        """The strides of the dims, in elements (not bytes as NumPy's)."""
        buf = (_lib.c_int64 * _lib.LT_MAX_DIMS)()
        C.lt_tensor_strides(self._h, buf)
        return tuple(buf[: C.lt_tensor_ndim(self._h)])

    @property
    def ndim(self) -> int:
        """The number of dims."""
        return int(C.lt_tensor_ndim(self._h))

    def dim(self) -> int:
        """The number of dims (as torch.Tensor.dim)."""
        return self.ndim

    def size(self, dim: Optional[int] = None) -> Union[int, Tuple[int, ...]]:
        """The shape, or the size of one dim (negative counts from the end)."""
        if dim is None:
            return self.shape
        n = C.lt_tensor_dim(self._h, _check_int(dim, "Tensor.size"))
        if n < 0:
            raise RangeError(f"Tensor.size: dim {dim} out of range for {self.ndim} dims")
        return int(n)

    def numel(self) -> int:
        """The number of elements."""
        return int(C.lt_tensor_numel(self._h))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def dtype(self) -> dtype:
        """The element type, a libtrain.dtype."""
        return dtype(C.lt_tensor_dtype(self._h))

    @property
    def device(self) -> Device:
        """The device the data lives on."""
        return Device._from_c(C.lt_tensor_device(self._h))

    def is_contiguous(self) -> bool:
        """Whether the elements are dense and row-major."""
        return bool(C.lt_tensor_is_contiguous(self._h))

    def data_ptr(self) -> int:
        """The address of element [0, ..., 0] (device memory for CUDA tensors)."""
        return int(C.lt_tensor_data(self._h) or 0)

    # ---- autograd ----

    @property
    def requires_grad(self) -> bool:
        """Whether autograd records operations on this tensor. Set it to True on a float leaf to get its
        gradient in ``grad`` after ``backward()``."""
        return bool(C.lt_tensor_requires_grad(self._h))

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ArgumentError(f"requires_grad must be a bool, not {type(value).__name__}")
        C.lt_tensor_set_requires_grad(self._h, bool(value))

    def requires_grad_(self, value: bool = True) -> "Tensor":
        """Sets requires_grad in place and returns self."""
        self.requires_grad = value
        return self

    @property
    def grad(self) -> Optional["Tensor"]:
        """The accumulated gradient, or None before any backward() reached this tensor."""
        out = c_void_p()
        C.lt_tensor_grad(self._h, byref(out))
        return Tensor._own(out.value) if out.value else None

    def zero_grad(self) -> None:
        """Sets the gradient to zero, keeping its memory."""
        C.lt_tensor_zero_grad(self._h)

    def backward(self, gradient: Optional["Tensor"] = None) -> None:
        """Back-propagates from this tensor: a scalar loss, or any tensor with an upstream ``gradient`` of its
        shape. Gradients accumulate into the leaves' ``grad``; the graph is freed afterwards (a second backward
        through it raises StateError)."""
        if gradient is None:
            C.lt_backward(self._h)
        else:
            C.lt_backward_grad(self._h, _h(gradient, "backward: gradient"))

    def detach(self) -> "Tensor":
        """A view of the same data that autograd does not track."""
        return _new(C.lt_detach, self._h)

    # ---- conversion ----

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array. A CPU tensor of a NumPy dtype is shared, not copied (any strides): writes
        through either are seen by both, and the array keeps this tensor alive. bfloat16 (as float32) and device
        tensors are copied."""
        if self.device.type != "cpu" or self.dtype not in _TO_NUMPY:
            src = self if self.dtype in _TO_NUMPY else self.to(float32)
            out = np.empty(src.shape, dtype=_TO_NUMPY[src.dtype])
            C.lt_tensor_to_host(src._h, out.ctypes.data, out.nbytes)
            return out
        npd = _TO_NUMPY[self.dtype]
        if self.numel() == 0:
            return np.empty(self.shape, dtype=npd)
        return np.asarray(_ArrayView(self, npd))

    def __array__(self, dtype: Any = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def tolist(self) -> Any:
        """The elements as (nested) Python lists."""
        return self.numpy().tolist()

    def item(self) -> Union[float, int]:
        """The value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ShapeError(f"Tensor.item: the tensor has {self.numel()} elements, not 1")
        return self.numpy().reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def to(self, dtype: Optional[DTypeLike] = None, device: Optional[DeviceLike] = None) -> "Tensor":
        """A contiguous copy in another dtype and/or on another device (differentiable between float dtypes)."""
        d = self.dtype if dtype is None else _dtype(dtype)
        dev = self.device if device is None else Device(device)
        return _new(C.lt_tensor_to, self._h, int(d), dev._c())

    def float(self) -> "Tensor":
        return self.to(float32)

    def double(self) -> "Tensor":
        return self.to(float64)

    def contiguous(self) -> "Tensor":
        """Self when contiguous, else a contiguous copy."""
        return _new(C.lt_contiguous, self._h)

    def clone(self) -> "Tensor":
        """A contiguous copy (not a view), recorded by autograd."""
        return self.to(self.dtype)

    def copy_(self, src: Union["Tensor", np.ndarray, float]) -> "Tensor":
        """Copies src into self in place (broadcasting, converting the dtype), unrecorded by autograd."""
        if not isinstance(src, Tensor):
            src = tensor(src, dtype=self.dtype)
        C.lt_tensor_copy(self._h, src._h)
        return self

    # ---- views ----

    def reshape(self, *shape: Any) -> "Tensor":
        """The same elements in a new shape (one entry may be -1): a view when the strides allow, else a copy."""
        s = _shape_arg(shape, "Tensor.reshape", allow_minus_one=True)
        return _new(C.lt_reshape, self._h, _lib.int64_array(s), len(s))

    def view(self, *shape: Any) -> "Tensor":
        """Like reshape, but never copies (ShapeError when the strides do not allow a view)."""
        s = _shape_arg(shape, "Tensor.view", allow_minus_one=True)
        return _new(C.lt_view, self._h, _lib.int64_array(s), len(s))

    def permute(self, *dims: Any) -> "Tensor":
        """The dims reordered: ``t.permute(2, 0, 1)``."""
        d = _dims_arg(list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims),
                      "Tensor.permute")
        if sorted(x % max(self.ndim, 1) for x in d) != list(range(self.ndim)):
            raise ArgumentError(f"Tensor.permute: {tuple(d)} is not a permutation of {self.ndim} dims")
        return _new(C.lt_permute, self._h, _lib.int_array([x % self.ndim for x in d]))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        """dim0 and dim1 swapped (a view)."""
        return _new(C.lt_transpose, self._h, _check_int(dim0, "transpose: dim0"), _check_int(dim1, "transpose: dim1"))

    @property
    def T(self) -> "Tensor":
        """The last two dims swapped (a view); 0-d and 1-d tensors are returned as they are."""
        if self.ndim < 2:
            return self
        return self.transpose(-2, -1)

    @property
    def mT(self) -> "Tensor":
        return self.T

    def expand(self, *shape: Any) -> "Tensor":
        """Size-1 dims (and new leading dims) broadcast to shape without copying."""
        s = _shape_arg(shape, "Tensor.expand")
        return _new(C.lt_expand, self._h, _lib.int64_array(s), len(s))

    def slice(self, dim: int, start: int, end: int, step: int = 1) -> "Tensor":
        """Elements start, start+step, ... < end along dim (a view). Negative start/end count from the end."""
        if _check_int(step, "Tensor.slice: step") < 1:
            raise ArgumentError(f"Tensor.slice: step must be >= 1, not {step}")
        return _new(C.lt_slice, self._h, _check_int(dim, "slice: dim"), _check_int(start, "slice: start"),
                    _check_int(end, "slice: end"), step)

    def __getitem__(self, key: Any) -> "Tensor":
        """Basic indexing: ints, slices with a positive step, and one ``...``. The result is a view."""
        if not isinstance(key, tuple):
            key = (key,)
        if sum(1 for k in key if k is Ellipsis) > 1:
            raise ArgumentError("Tensor index: at most one ...")
        shape = self.shape
        n_real = sum(1 for k in key if k is not Ellipsis)
        if n_real > len(shape):
            raise RangeError(f"Tensor index: {n_real} indices for a tensor of {len(shape)} dims")
        expanded: List[Any] = []
        for k in key:
            if k is Ellipsis:
                expanded.extend([slice(None)] * (len(shape) - n_real))
            else:
                expanded.append(k)
        out, keep = self, []
        for d, k in enumerate(expanded):
            size = shape[d]
            if isinstance(k, slice):
                start, stop, step = k.indices(size)
                if step < 1:
                    raise ArgumentError(f"Tensor index: slice step must be >= 1, not {step}")
                stop = max(stop, start)
                if (start, stop, step) != (0, size, 1):
                    out = _new(C.lt_slice, out._h, d, start, stop, step)
                keep.append(True)
            elif isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, bool):
                i = int(k)
                if not -size <= i < size:
                    raise RangeError(f"Tensor index: index {i} out of range for dim {d} of size {size}")
                i %= size
                out = _new(C.lt_slice, out._h, d, i, i + 1, 1)
                keep.append(False)
            else:
                raise ArgumentError(f"Tensor index: unsupported index {k!r} (ints, slices and ... are supported)")
        keep += [True] * (len(shape) - len(expanded))
        if not all(keep):
            new_shape = [s for s, kp in zip(out.shape, keep) if kp]
            out = _new(C.lt_reshape, out._h, _lib.int64_array(new_shape), len(new_shape))
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        """``t[idx] = value`` copies value (a number, an array or a Tensor, broadcast) into the view t[idx]."""
        self[key].copy_(value)

    # ---- arithmetic ----

    def _binary(self, other: Any, op: str, scalar_op: Optional[str], reverse: bool = False) -> "Tensor":
        o = _other(self, other)
        if o is not None:
            a, b = (o, self) if reverse else (self, o)
            return _new(getattr(C, f"lt_{op}"), a._h, b._h)
        if isinstance(other, bool) or not isinstance(other, (numbers.Real, np.number)):
            return NotImplemented  # type: ignore[return-value]
        s = float(other)
        if op == "add":
            return _new(C.lt_add_scalar, self._h, s)
        if op == "mul":
            return _new(C.lt_mul_scalar, self._h, s)
        if op == "sub":
            return _new(C.lt_rsub_scalar, self._h, s) if reverse else _new(C.lt_add_scalar, self._h, -s)
        if op == "div":
            return _new(C.lt_rdiv_scalar, self._h, s) if reverse else _new(C.lt_mul_scalar, self._h, 1.0 / s)
        if op == "pow":
            if reverse:
                return full_like(self, s)._binary(self, "pow", None)
            return _new(C.lt_pow_scalar, self._h, s)
        return NotImplemented  # type: ignore[return-value]

    def __add__(self, o: Any) -> "Tensor":
        return self._binary(o, "add", "add")

    def __radd__(self, o: Any) -> "Tensor":
        return self._binary(o, "add", "add", reverse=True)

    def __sub__(self, o: Any) -> "Tensor":
        return self._binary(o, "sub", "sub")

    def __rsub__(self, o: Any) -> "Tensor":
        return self._binary(o, "sub", "sub", reverse=True)

    def __mul__(self, o: Any) -> "Tensor":
        return self._binary(o, "mul", "mul")

    def __rmul__(self, o: Any) -> "Tensor":
        return self._binary(o, "mul", "mul", reverse=True)

    def __truediv__(self, o: Any) -> "Tensor":
        return self._binary(o, "div", "div")

    def __rtruediv__(self, o: Any) -> "Tensor":
        return self._binary(o, "div", "div", reverse=True)

    def __pow__(self, o: Any) -> "Tensor":
        return self._binary(o, "pow", "pow")

    def __rpow__(self, o: Any) -> "Tensor":
        return self._binary(o, "pow", "pow", reverse=True)

    def __neg__(self) -> "Tensor":
        return _new(C.lt_neg, self._h)

    def __pos__(self) -> "Tensor":
        return self

    def __matmul__(self, o: Any) -> "Tensor":
        return self.matmul(o)

    def __rmatmul__(self, o: Any) -> "Tensor":
        other = _other(self, o)
        if other is None:
            return NotImplemented  # type: ignore[return-value]
        return other.matmul(self)

    def matmul(self, other: "Tensor", trans_a: bool = False, trans_b: bool = False) -> "Tensor":
        """Matrix product of the last two dims, leading dims broadcast (both need >= 2 dims). trans_a/trans_b
        read self/other transposed without copying."""
        o = _other(self, other)
        if o is None:
            raise ArgumentError(f"matmul: the other operand must be a Tensor or an array, not {type(other).__name__}")
        if self.ndim < 2 or o.ndim < 2:
            raise ShapeError(f"matmul: both operands need at least 2 dims (got {self.ndim} and {o.ndim})")
        return _new(C.lt_matmul, self._h, o._h, bool(trans_a), bool(trans_b))

    # ---- unary and reductions ----

    def exp(self) -> "Tensor":
        return _new(C.lt_exp, self._h)

    def log(self) -> "Tensor":
        return _new(C.lt_log, self._h)

    def sqrt(self) -> "Tensor":
        return _new(C.lt_sqrt, self._h)

    def rsqrt(self) -> "Tensor":
        return _new(C.lt_rsqrt, self._h)

    def tanh(self) -> "Tensor":
        return _new(C.lt_tanh, self._h)

    def sigmoid(self) -> "Tensor":
        return _new(C.lt_sigmoid, self._h)

    def relu(self) -> "Tensor":
        return _new(C.lt_relu, self._h)

    def gelu(self, approximate: str = "tanh") -> "Tensor":
        """GELU: approximate="tanh" (GPT-2's) or "none" (the exact erf form)."""
        modes = {"tanh": 0, "none": 1, "erf": 1}
        if approximate not in modes:
            raise ArgumentError(f"gelu: approximate must be 'tanh' or 'none', not {approximate!r}")
        return _new(C.lt_gelu, self._h, modes[approximate])

    def _reduce(self, fn: Any, dim: Union[None, int, Sequence[int]], keepdim: bool, what: str) -> "Tensor":
        dims = _dims_arg(dim, what)
        return _new(fn, self._h, _lib.int_array(dims), len(dims), bool(keepdim))

    def sum(self, dim: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> "Tensor":
        """The sum over dim (an int or a tuple; every dim when None)."""
        return self._reduce(C.lt_sum, dim, keepdim, "Tensor.sum")

    def mean(self, dim: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> "Tensor":
        """The mean over dim (an int or a tuple; every dim when None)."""
        return self._reduce(C.lt_mean, dim, keepdim, "Tensor.mean")

    def max(self, dim: Union[None, int, Sequence[int]] = None, keepdim: bool = False) -> "Tensor":
        """The maximum over dim; its gradient flows to the first maximal element."""
        return self._reduce(C.lt_max, dim, keepdim, "Tensor.max")

    def softmax(self, dim: int = -1) -> "Tensor":
        return _new(C.lt_softmax, self._h, _check_int(dim, "softmax: dim"))

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return _new(C.lt_log_softmax, self._h, _check_int(dim, "log_softmax: dim"))

    def masked_fill(self, mask: "Tensor", value: float) -> "Tensor":
        """self with value wherever the uint8 mask (broadcast) is non-zero."""
        return _new(C.lt_masked_fill, self._h, _h(mask, "masked_fill: mask"), float(value))

    # ---- DLPack (export shares memory; see dlpack.py) ----

    def __dlpack__(self, stream: Any = None, max_version: Optional[Tuple[int, int]] = None,
                   dl_device: Any = None, copy: Optional[bool] = None) -> Any:
        """A DLPack capsule sharing this tensor's memory (the consumer keeps the tensor alive until it calls the
        deleter). max_version >= (1, 0) gives a versioned "dltensor_versioned" capsule, else "dltensor"."""
        from .dlpack import to_dlpack
        return to_dlpack(self, max_version=max_version, copy=copy)

    def __dlpack_device__(self) -> Tuple[int, int]:
        """(kDLCPU = 1, 0) or (kDLCUDA = 2, ordinal)."""
        d = self.device
        return (1, 0) if d.type == "cpu" else (2, d.index)

    def __repr__(self) -> str:
        if self._h is None:
            return "Tensor(<released>)"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(") if self.numel() <= 1000 else "..."
        extra = f", dtype={self.dtype.name}"
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra}, shape={self.shape})"


# ---- constructors ----

_BLOBS: dict = {}  # id -> the NumPy array a tensor wraps, dropped by the C deleter


@_lib.DELETER
def _blob_deleter(ctx: int) -> None:
    _BLOBS.pop(ctx, None)


def _can_wrap(a: np.ndarray) -> bool:
    item = a.dtype.itemsize
    return ("lt_tensor_from_blob" not in _lib.MISSING and a.flags.writeable and a.flags.aligned
            and a.dtype.isnative and all(s >= 0 and s % item == 0 for s in a.strides))


def from_numpy(array: np.ndarray, device: DeviceLike = "cpu", requires_grad: bool = False) -> Tensor:
    """A CPU Tensor that SHARES the NumPy array's memory (lt_tensor_from_blob): writes through either are seen by
    both, and the tensor keeps the array alive (it is released when the last tensor viewing it dies). Any strided
    layout is shared. The data is copied instead when the array is read-only, unaligned, byte-swapped or has
    negative strides, when the device is not the CPU, or when the library predates lt_tensor_from_blob."""
    if not isinstance(array, np.ndarray):
        raise ArgumentError(f"from_numpy: expected a numpy.ndarray, not {type(array).__name__}")
    d = _dtype(array.dtype)
    if array.ndim > _lib.LT_MAX_DIMS:
        raise ArgumentError(f"from_numpy: {array.ndim} dims, at most {_lib.LT_MAX_DIMS}")
    dev = Device(device)
    if dev.type == "cpu" and _can_wrap(array) and array.size > 0:
        key = id(array)
        while key in _BLOBS:  # the same array wrapped twice: each wrap gets its own key
            key += 1
        _BLOBS[key] = array
        item = array.dtype.itemsize
        try:
            out = _new(C.lt_tensor_from_blob, array.ctypes.data, _lib.int64_array(array.shape),
                       _lib.int64_array([s // item for s in array.strides]), array.ndim, int(d), dev._c(),
                       _lib.ctypes.cast(_blob_deleter, c_void_p), key)
        except BaseException:
            _BLOBS.pop(key, None)  # on failure the deleter is not called
            raise
    else:
        src = array if array.flags.c_contiguous and array.dtype.isnative else np.array(array, order="C")
        if not src.dtype.isnative:
            src = src.astype(src.dtype.newbyteorder("="))
        out = _new(C.lt_tensor_from_host, src.ctypes.data if src.size else None, _lib.int64_array(src.shape),
                   src.ndim, int(d), dev._c())
    if requires_grad:
        out.requires_grad = True
    return out


def tensor(data: Any, dtype: Optional[DTypeLike] = None, device: DeviceLike = "cpu",
           requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of data: a number, a nested list, a NumPy array or a Tensor. Python floats
    become float32 and Python ints int64 unless dtype says otherwise; arrays keep their dtype."""
    if isinstance(data, Tensor):
        out = data.to(dtype, device)
    else:
        if isinstance(data, np.ndarray):
            arr = np.array(data, copy=True)  # tensor() always copies; from_numpy() shares
        else:
            arr = np.asarray(data)
            if arr.dtype == np.float64 and dtype is None:
                arr = arr.astype(np.float32)
            elif arr.dtype == np.bool_:
                arr = arr.astype(np.uint8)
        if dtype is not None:
            d = _dtype(dtype)
            if d == bfloat16:
                return from_numpy(arr.astype(np.float32), device).to(bfloat16)._req(requires_grad)
            arr = arr.astype(_TO_NUMPY[d], copy=False)
        out = from_numpy(arr, device)
    return out._req(requires_grad)


def _req(self: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        self.requires_grad = True
    return self


Tensor._req = _req  # type: ignore[attr-defined]


def _create(fn: Any, shape: Tuple[Any, ...], dtype: DTypeLike, device: DeviceLike, what: str, *extra: Any) -> Tensor:
    s = _shape_arg(shape, what)
    return _new(fn, _lib.int64_array(s), len(s), *extra, int(_dtype(dtype)), Device(device)._c())


def empty(*shape: Any, dtype: DTypeLike = float32, device: DeviceLike = "cpu") -> Tensor:
    """Uninitialised contents."""
    return _create(C.lt_tensor_empty, shape, dtype, device, "empty")


def zeros(*shape: Any, dtype: DTypeLike = float32, device: DeviceLike = "cpu", requires_grad: bool = False) -> Tensor:
    """All zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _create(C.lt_tensor_zeros, shape, dtype, device, "zeros")._req(requires_grad)


def ones(*shape: Any, dtype: DTypeLike = float32, device: DeviceLike = "cpu", requires_grad: bool = False) -> Tensor:
    """All ones."""
    return _create(C.lt_tensor_ones, shape, dtype, device, "ones")._req(requires_grad)


def full(shape: Sequence[int], value: float, dtype: DTypeLike = float32, device: DeviceLike = "cpu") -> Tensor:
    """Every element value (rounded for bf16/f16, truncated for integer dtypes)."""
    if not isinstance(value, (numbers.Real, np.number)):
        raise ArgumentError(f"full: value must be a number, not {type(value).__name__}")
    return _create(C.lt_tensor_full, (tuple(shape),), dtype, device, "full", float(value))


def full_like(t: Tensor, value: float) -> Tensor:
    return full(t.shape, value, t.dtype, t.device)


def arange(start: float, end: Optional[float] = None, step: float = 1, dtype: DTypeLike = float32,
           device: DeviceLike = "cpu") -> Tensor:
    """start, start+step, ... up to but excluding end (``arange(n)`` is 0 .. n-1)."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ArgumentError("arange: step must not be 0")
    return _new(C.lt_tensor_arange, float(start), float(end), float(step), int(_dtype(dtype)), Device(device)._c())


def rand(*shape: Any, generator: Optional[Generator] = None, dtype: DTypeLike = float32,
         device: DeviceLike = "cpu") -> Tensor:
    """Uniform in (0, 1], drawn from generator (advanced; a Generator(0) when None)."""
    g = generator or Generator(0)
    s = _shape_arg(shape, "rand")
    return _new(C.lt_tensor_rand, _lib.int64_array(s), len(s), int(_dtype(dtype)), Device(device)._c(),
                byref(g._state))


def randn(*shape: Any, generator: Optional[Generator] = None, dtype: DTypeLike = float32,
          device: DeviceLike = "cpu") -> Tensor:
    """Standard normal, drawn from generator (advanced; a Generator(0) when None)."""
    g = generator or Generator(0)
    s = _shape_arg(shape, "randn")
    return _new(C.lt_tensor_randn, _lib.int64_array(s), len(s), int(_dtype(dtype)), Device(device)._c(),
                byref(g._state))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenates tensors along dim; all other dims must match."""
    hs = [_h(t, "cat: tensors[i]") for t in tensors]
    if not hs:
        raise ArgumentError("cat: needs at least one tensor")
    return _new(C.lt_cat, _lib.tensor_handles(hs), len(hs), _check_int(dim, "cat: dim"))


def split(t: Tensor, sizes: Sequence[int], dim: int = 0) -> List[Tensor]:
    """Views of t along dim with the given sizes, which must add up to the dim's size."""
    s = [_check_int(x, "split: size") for x in sizes]
    if not s or any(x < 0 for x in s):
        raise ArgumentError(f"split: sizes must be a non-empty list of sizes >= 0, not {sizes}")
    outs = (c_void_p * len(s))()
    C.lt_split(_h(t), _lib.int64_array(s), len(s), _check_int(dim, "split: dim"), outs)
    return [Tensor._own(h) for h in outs]


def where(cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """cond ? a : b elementwise; cond is uint8 (non-zero is true); all three broadcast."""
    return _new(C.lt_where, _h(cond, "where: cond"), _h(a, "where: a"), _h(b, "where: b"))


class no_grad:
    """Context manager (and decorator) that stops autograd recording on this thread."""

    def __enter__(self) -> "no_grad":
        C.lt_no_grad_begin()
        return self

    def __exit__(self, *exc: Any) -> None:
        C.lt_no_grad_end()

    def __call__(self, fn: Any) -> Any:
        import functools

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            with no_grad():
                return fn(*a, **k)
        return wrapper


def is_grad_enabled() -> bool:
    """Whether autograd records operations on this thread."""
    return bool(C.lt_grad_enabled())
