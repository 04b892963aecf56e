"""Exceptions raised by libtrain: one class per C status code, each also deriving from the matching built-in
exception so that ordinary ``except ValueError`` / ``except MemoryError`` handlers keep working.

Every failed C call raises the class of its status, and the message is ``lt_last_error()``'s text, which names the
C function and the values involved (for example ``lt_matmul: inner dims differ (a is 4x3, b is 5x2)``).
Mistakes caught in Python before reaching C (wrong argument types, negative sizes, unsupported NumPy dtypes) raise
the same classes, with a message that names the Python call.
"""
from __future__ import annotations

from typing import Dict, Type

__all__ = [
    "LibtrainError", "ArgumentError", "ShapeError", "DTypeError", "DeviceError", "OutOfMemoryError", "RangeError",
    "LibtrainIOError", "FormatError", "UnsupportedError", "BackendError", "StateError", "InternalError",
    "LibraryNotFoundError", "STATUS_CODES",
]


class LibtrainError(Exception):
    """Base class of every libtrain failure. ``status`` is the C status code (0 for errors raised in Python
    before any C call would have failed the same way, which then carry the code C would have used)."""

    status: int = -1
    status_name: str = "LT_ERR_UNKNOWN"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class ArgumentError(LibtrainError, ValueError):
    """LT_ERR_ARG: a NULL pointer, a negative size or another invalid argument."""
    status, status_name = 1, "LT_ERR_ARG"


class ShapeError(LibtrainError, ValueError):
    """LT_ERR_SHAPE: shapes that do not fit together."""
    status, status_name = 2, "LT_ERR_SHAPE"


class DTypeError(LibtrainError, TypeError):
    """LT_ERR_DTYPE: a dtype the operation does not accept."""
    status, status_name = 3, "LT_ERR_DTYPE"


class DeviceError(LibtrainError):
    """LT_ERR_DEVICE: tensors on different devices, or a device that is not available."""
    status, status_name = 4, "LT_ERR_DEVICE"


class OutOfMemoryError(LibtrainError, MemoryError):
    """LT_ERR_OOM: an allocation failed."""
    status, status_name = 5, "LT_ERR_OOM"


class RangeError(LibtrainError, IndexError):
    """LT_ERR_RANGE: an index or a view out of range."""
    status, status_name = 6, "LT_ERR_RANGE"


class LibtrainIOError(LibtrainError, OSError):
    """LT_ERR_IO: a file could not be opened, read or written."""
    status, status_name = 7, "LT_ERR_IO"


class FormatError(LibtrainError):
    """LT_ERR_FORMAT: a file's contents are invalid."""
    status, status_name = 8, "LT_ERR_FORMAT"


class UnsupportedError(LibtrainError, NotImplementedError):
    """LT_ERR_UNSUPPORTED: valid, but not implemented on this backend or build."""
    status, status_name = 9, "LT_ERR_UNSUPPORTED"


class BackendError(LibtrainError):
    """LT_ERR_BACKEND: a CUDA, cuBLAS, cuRAND, NCCL, MPI or HDF5 call failed."""
    status, status_name = 10, "LT_ERR_BACKEND"


class StateError(LibtrainError):
    """LT_ERR_STATE: called in the wrong state, for example backward twice through a freed graph."""
    status, status_name = 11, "LT_ERR_STATE"


class InternalError(LibtrainError):
    """LT_ERR_INTERNAL: a bug in libtrain; please report it with the message."""
    status, status_name = 12, "LT_ERR_INTERNAL"


class LibraryNotFoundError(ImportError):
    """libtrain.so could not be found, or every copy found has the wrong ABI. The message lists each place
    searched and why each candidate was rejected."""


#: status code -> exception class, for every status except LT_OK.
STATUS_CODES: Dict[int, Type[LibtrainError]] = {
    cls.status: cls
    for cls in (ArgumentError, ShapeError, DTypeError, DeviceError, OutOfMemoryError, RangeError, LibtrainIOError,
                FormatError, UnsupportedError, BackendError, StateError, InternalError)
}


def error_for_status(status: int, message: str) -> LibtrainError:
    """The exception for a failed C status (an unknown code gives a plain LibtrainError)."""
    cls = STATUS_CODES.get(status)
    if cls is None:
        err = LibtrainError(f"{message} (unknown status {status})")
        err.status = status
        return err
    return cls(message)
