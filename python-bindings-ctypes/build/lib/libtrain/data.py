"""libtrain.data: memory-mapped token datasets, the byte-level tokenizer and the batch loader."""
from __future__ import annotations

from ctypes import byref, c_void_p
from typing import Any, Iterator, Optional, Tuple

from . import _lib
from ._lib import C
from .errors import ArgumentError
from .params import _path
from .tensor import Device, DeviceLike, Tensor, _check_int

__all__ = ["Dataset", "Loader", "tokenize_bytes"]


def tokenize_bytes(text_path: Any, shard_path: Any) -> None:
    """Writes every byte of a text file (or a directory of text files) as one token into an llm.c shard."""
    C.lt_tokenize_bytes(_path(text_path, "tokenize_bytes: text_path"), _path(shard_path, "tokenize_bytes: shard_path"))


class Dataset:
    """A read-only, memory-mapped token dataset: an llm.c or nanoGPT shard, or a directory of *.bin shards.
    Raises LibtrainIOError for a missing file and FormatError for invalid contents."""

    def __init__(self, path: Any, vocab_size: int = 65536, *, _handle: Optional[int] = None,
                 _parent: Optional["Dataset"] = None) -> None:
        self._parent = _parent
        if _handle is not None:
            self._h = _handle
            return
        out = c_void_p()
        C.lt_dataset_open(_path(path, "Dataset: path"), _check_int(vocab_size, "Dataset: vocab_size"), byref(out))
        self._h = out.value

    def __del__(self, _free: Any = C.lt_dataset_free) -> None:
        if getattr(self, "_h", None):
            _free(self._h)
            self._h = None

    def __len__(self) -> int:
        """Total tokens."""
        return int(C.lt_dataset_tokens(self._h))

    def slice(self, start: int, end: int) -> "Dataset":
        """Tokens [start, end), sharing the mapping (this dataset is kept alive by the slice)."""
        out = c_void_p()
        C.lt_dataset_slice(self._h, _check_int(start, "slice: start"), _check_int(end, "slice: end"), byref(out))
        return Dataset(None, _handle=out.value, _parent=self)


class Loader:
    """Batches (x, y) of i32 tensors [B, T], y being x shifted by one token; windows shuffled per epoch from seed.
    Iterating yields batches forever (epochs roll over); ``state`` saves and restores the cursor."""

    def __init__(self, dataset: Dataset, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0, world: int = 1,
                 device: DeviceLike = "cpu") -> None:
        if not isinstance(dataset, Dataset):
            raise ArgumentError("Loader: dataset must be a libtrain.data.Dataset")
        self.dataset, self.device = dataset, Device(device)
        out = c_void_p()
        C.lt_loader_create(dataset._h, _check_int(batch_size, "batch_size"), _check_int(seq_len, "seq_len"),
                           _check_int(seed, "seed"), _check_int(rank, "rank"), _check_int(world, "world"), byref(out))
        self._h = out.value

    def __del__(self, _free: Any = C.lt_loader_free) -> None:
        if getattr(self, "_h", None):
            _free(self._h)
            self._h = None

    def next(self) -> Tuple[Tensor, Tensor]:
        x, y = c_void_p(), c_void_p()
        C.lt_loader_next(self._h, self.device._c(), byref(x), byref(y))
        return Tensor._own(x.value), Tensor._own(y.value)

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor]]:
        while True:
            yield self.next()

    def batches_per_epoch(self) -> int:
        return int(C.lt_loader_batches_per_epoch(self._h))

    @property
    def state(self) -> Tuple[int, int, int]:
        """(seed, epoch, batch): the cursor."""
        s = _lib.lt_loader_state()
        C.lt_loader_get_state(self._h, byref(s))
        return int(s.seed), int(s.epoch), int(s.batch)

    @state.setter
    def state(self, value: Tuple[int, int, int]) -> None:
        s = _lib.lt_loader_state(*value)
        C.lt_loader_set_state(self._h, byref(s))
