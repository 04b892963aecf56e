"""ParameterSet: named tensors in one flat buffer (lt_params), with their gradients in another."""
from __future__ import annotations

import os
from ctypes import byref, c_char_p, c_void_p
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _lib
from ._lib import C
from .errors import ArgumentError
from .tensor import Device, DeviceLike, DTypeLike, Tensor, _dtype, _shape_arg, float32

__all__ = ["ParameterSet"]


class ParameterSet:
    """An ordered set of named parameters living in one contiguous buffer (their gradients in another), which is
    what the optimizers, gradient clipping and checkpoints work on.

    ``ParameterSet()`` makes an empty set you can ``add`` to; models hand out their own (``GPT.params``). Tensors
    from a set stay valid after the set is freed. Adding may move the flat buffer: NumPy arrays taken with
    ``numpy()`` before an ``add`` must be taken again."""

    def __init__(self, dtype: DTypeLike = float32, device: DeviceLike = "cpu", *, _handle: Optional[int] = None,
                 _owner: Any = None) -> None:
        self._owner = _owner  # a model that owns the set: kept alive while the set is used
        if _handle is not None:
            self._h, self._owned = _handle, False
            return
        out = c_void_p()
        C.lt_params_create(int(_dtype(dtype)), Device(device)._c(), byref(out))
        self._h, self._owned = out.value, True

    def __del__(self, _free: Any = C.lt_params_free) -> None:
        if getattr(self, "_owned", False) and self._h:
            _free(self._h)
            self._h = None

    def add(self, name: str, *shape: Any) -> Tensor:
        """Adds a zero-initialised parameter that requires grad, and returns it."""
        if not isinstance(name, str) or not name:
            raise ArgumentError("ParameterSet.add: name must be a non-empty str")
        s = _shape_arg(shape, "ParameterSet.add")
        out = c_void_p()
        C.lt_params_add(self._h, name.encode(), _lib.int64_array(s), len(s), byref(out))
        return Tensor._borrow(out.value)

    def __len__(self) -> int:
        return int(C.lt_params_count(self._h))

    def numel(self) -> int:
        """Total elements over all parameters."""
        return int(C.lt_params_numel(self._h))

    def named_parameters(self) -> Iterator[Tuple[str, Tensor]]:
        """(name, tensor) pairs in order of addition."""
        for i in range(len(self)):
            name, t = c_char_p(), c_void_p()
            C.lt_params_get(self._h, i, byref(name), byref(t))
            yield (name.value or b"").decode(), Tensor._borrow(t.value)

    def parameters(self) -> Iterator[Tensor]:
        for _, t in self.named_parameters():
            yield t

    def __getitem__(self, name: str) -> Tensor:
        """The parameter called name (RangeError / IndexError when there is none)."""
        if not isinstance(name, str):
            raise ArgumentError("ParameterSet[name]: name must be a str")
        out = c_void_p()
        C.lt_params_find(self._h, name.encode(), byref(out))
        return Tensor._borrow(out.value)

    def flat(self) -> Tuple[Tensor, Tensor]:
        """1-D views of the whole parameter and gradient buffers."""
        p, g = c_void_p(), c_void_p()
        C.lt_params_flat(self._h, byref(p), byref(g))
        return Tensor._borrow(p.value), Tensor._borrow(g.value)

    def set_decay(self, name: str, decay: bool) -> None:
        """Whether AdamW applies weight decay to the named parameter."""
        C.lt_params_set_decay(self._h, name.encode(), bool(decay))

    def decay(self) -> Dict[str, bool]:
        """name -> whether AdamW decays it."""
        return {n: bool(C.lt_params_get_decay(self._h, i)) for i, (n, _) in enumerate(self.named_parameters())}

    def zero_grad(self, lazy: bool = False) -> None:
        """Sets every gradient to zero. lazy=True only marks them zero (lt_params_zero_grad_lazy): the next backward
        writes them instead of adding, one pass over the buffer fewer; read gradients afresh after it (p.grad)."""
        if lazy:
            C.lt_params_zero_grad_lazy(self._h)
        else:
            C.lt_params_zero_grad(self._h)

    def state_dict(self) -> Dict[str, Any]:
        """name -> a NumPy copy of each parameter."""
        return {n: t.numpy().copy() for n, t in self.named_parameters()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Copies arrays (or Tensors) into the parameters of the same names; every parameter must be present."""
        names = [n for n, _ in self.named_parameters()]
        missing = [n for n in names if n not in state]
        if missing:
            raise ArgumentError(f"load_state_dict: missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        for n in names:
            self[n].copy_(state[n])

    def __repr__(self) -> str:
        return f"ParameterSet({len(self)} parameters, {self.numel()} elements)"


def _path(p: Any, what: str) -> bytes:
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise ArgumentError(f"{what} must be a path (str or os.PathLike), not {type(p).__name__}")
    return os.fsencode(p)
