"""libtrain: tensors, autograd and GPT training in C, from Python through ctypes.

    import libtrain as lt
    x = lt.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    loss = (x @ x.T).sum()
    loss.backward()
    x.grad.numpy()

Modules: libtrain.nn (GPT, layers, functional), libtrain.optim (AdamW, SGD, clip_grad_norm, lr_cosine),
libtrain.data (Dataset, Loader, tokenize_bytes), libtrain.dist (MPI data parallelism: Dist, init), and the Trainer,
which trains data-parallel by itself when started by ``mpirun -np N``. Errors are libtrain.LibtrainError subclasses
(ShapeError, DTypeError, ...), one per C status code.

The shared library is found from $LIBTRAIN_LIBRARY, a copy next to this package, a CMake build tree above it, or
the system loader; ``libtrain.LIBRARY_PATH`` says which was loaded.
"""
from __future__ import annotations

from ._lib import ABI_VERSION, LIBRARY_PATH, VERSION as __libtrain_version__
from .errors import (ArgumentError, BackendError, DeviceError, DTypeError, FormatError, InternalError,
                     LibraryNotFoundError, LibtrainError, LibtrainIOError, OutOfMemoryError, RangeError, ShapeError,
                     StateError, UnsupportedError)
from .tensor import (Device, Generator, Tensor, arange, bfloat16, cat, dtype, empty, float16, float32, float64,
                     from_numpy, full, int32, int64, is_grad_enabled, no_grad, ones, rand, randn, split, tensor, uint8,
                     uint16, where, zeros)
from .dlpack import from_dlpack
from .params import ParameterSet
from . import data, dist, functional, nn, optim
from .dist import Dist
from .train import TrainConfig, Trainer, TrainStats, validate_checkpoint
from ._lib import C as _C

__version__ = "0.1.0"


def version() -> str:
    """The C library's version (lt_version)."""
    return __libtrain_version__


def set_num_threads(n: int) -> None:
    """Threads for CPU kernels and OpenBLAS (0: all cores)."""
    _C.lt_set_num_threads(int(n))


def get_num_threads() -> int:
    return int(_C.lt_get_num_threads())


def memory_stats(device: str = "cpu") -> dict:
    """The caching allocator's statistics for a device (lt_alloc_get_stats)."""
    from ctypes import byref, sizeof
    from ._lib import lt_alloc_stats
    s = lt_alloc_stats()
    s.struct_size = sizeof(s)
    _C.lt_alloc_get_stats(Device(device)._c(), byref(s))
    return {n: int(getattr(s, n)) for n, _ in s._fields_ if n != "struct_size"}


def empty_cache(device: str = "cpu") -> None:
    """Returns the allocator's cached blocks to the system."""
    _C.lt_alloc_empty_cache(Device(device)._c())
