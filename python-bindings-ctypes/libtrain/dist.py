"""libtrain.dist: data parallelism over MPI (include/libtrain/dist.h) from Python. Wraps the C communicator only;
it never imports mpi4py itself, and every collective here is a C call (no Python-level MPI).

Start the program with ``mpirun -np N python3 train.py``; in it::

    import libtrain as lt
    with lt.dist.init() as d:               # MPI_COMM_WORLD; MPI is initialised here unless mpi4py already did
        print(d.rank, d.world_size, d.local_rank)
        d.barrier()
        x = d.allreduce(loss, "mean")       # a float over every rank
        d.broadcast(array, root=0)          # a NumPy array or CPU tensor, in place

``libtrain.Trainer`` does this by itself under mpirun (``Trainer(cfg, distributed="auto")``), so a training script
needs none of it. Collectives (every call except ``rank``/``world_size``/``local_rank``) must be made by every rank
in the same order. Use a communicator from one thread.

The default communicator (``init()`` with no argument) is one per process: later ``init()`` calls return it while it
is open. Closing it (``close()``, the ``with`` block's end, or interpreter exit) finalizes MPI when it initialised
MPI, and MPI cannot be initialised again in that process. With more than one rank, an uncaught Python exception on
any rank aborts the whole job (``MPI_Abort``) after printing its traceback, so the other ranks do not wait forever
in their next collective; pass ``abort_on_exception=False`` to keep Python's own handling.

Errors are the package's exceptions: ``UnsupportedError`` when libtrain was built without MPI, ``BackendError``
when an MPI call fails (MPI's text and the rank in the message), ``ArgumentError`` for a bad root, size or buffer,
``StateError`` when the ranks' parameters differ or MPI was already finalized.
"""
from __future__ import annotations

import atexit
import os
import pickle
import sys
import weakref
from ctypes import byref, c_double, c_void_p
from typing import Any, Optional, Union

import numpy as np

from ._lib import C
from .errors import ArgumentError, StateError, UnsupportedError

__all__ = ["Dist", "init", "maybe_init", "launcher_world_size", "is_available", "get_default", "DEFAULT_BUCKET_BYTES"]

#: LT_DIST_DEFAULT_BUCKET_BYTES: the gradient all-reduce bucket when none is given (32 MiB).
DEFAULT_BUCKET_BYTES = 32 << 20

_OPS = {"sum": 0, "mean": 1, "max": 2, "min": 3}  # lt_dist_op

# Environment variables a launcher sets, each holding the world size: OpenMPI's mpirun, MPICH/Hydra, Intel MPI and
# Slurm's PMI/PMI-2, MVAPICH.
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def launcher_world_size(environ: Optional[Any] = None) -> Optional[int]:
    """The number of processes an MPI launcher started, from its environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
    MV2_COMM_WORLD_SIZE), or None when no launcher started this process. A PMIx launcher that sets only
    PMIX_RANK gives 0: launched, size unknown until MPI is initialised. Reads nothing else and starts nothing."""
    env = os.environ if environ is None else environ
    for var in _SIZE_VARS:
        v = env.get(var)
        if v:
            try:
                return int(v)
            except ValueError:
                continue
    if env.get("PMIX_RANK"):
        return 0
    return None


def is_available() -> bool:
    """Whether the loaded libtrain.so was built with MPI, without initialising MPI: True when MPI's library is
    mapped into this process (libtrain links it), which is how a build with -DLT_MPI=ON loads. Where that cannot
    be read (no /proc), True, and init() says UnsupportedError when it is not."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read()
    except OSError:
        return True
    return "/libmpi.so" in maps or "/libmpich.so" in maps or "/libmpi_" in maps


def _params_handle(obj: Any, what: str) -> int:
    """The lt_params handle of a ParameterSet, a GPT (its params) or a Trainer (its model's)."""
    from .nn import GPT
    from .params import ParameterSet
    if hasattr(obj, "model") and isinstance(getattr(obj, "model"), GPT):  # a Trainer
        obj = obj.model
    if isinstance(obj, GPT):
        obj = obj.params
    if not isinstance(obj, ParameterSet):
        raise ArgumentError(f"{what}: expected a ParameterSet, a GPT or a Trainer, not {type(obj).__name__}")
    return obj._h


def _buffer(buf: Any, what: str, writable: bool) -> "tuple[int, int, Any]":
    """(address, nbytes, keep-alive) of a C-contiguous CPU buffer: a NumPy array or a libtrain Tensor."""
    from .tensor import Tensor
    if isinstance(buf, Tensor):
        if buf.device.type != "cpu":
            raise ArgumentError(f"{what}: the tensor is on {buf.device}; MPI works on CPU memory")
        if not buf.is_contiguous():
            raise ArgumentError(f"{what}: the tensor is not contiguous (use .contiguous())")
        return buf.data_ptr(), buf.numel() * buf.dtype.itemsize, buf
    if not isinstance(buf, np.ndarray):
        raise ArgumentError(f"{what}: expected a NumPy array or a libtrain Tensor, not {type(buf).__name__}")
    if not buf.flags.c_contiguous:
        raise ArgumentError(f"{what}: the array is not C-contiguous (use numpy.ascontiguousarray)")
    if writable and not buf.flags.writeable:
        raise ArgumentError(f"{what}: the array is read-only")
    return (buf.ctypes.data if buf.nbytes else 0), buf.nbytes, buf


def _root(root: Any, what: str) -> int:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise ArgumentError(f"{what}: root must be an int, not {type(root).__name__}")
    return int(root)


def _comm_address(comm: Any) -> "tuple[Optional[int], Any]":
    """(address of an MPI_Comm, keep-alive) for lt_dist_init_mpi: None for MPI_COMM_WORLD; an mpi4py communicator
    (MPI._addressof); or an int, the address of an MPI_Comm handle that some other extension owns."""
    if comm is None:
        return None, None
    if isinstance(comm, bool):
        raise ArgumentError("Dist: comm must be None, an mpi4py communicator or the address of an MPI_Comm")
    if isinstance(comm, int):
        if comm <= 0:
            raise ArgumentError(f"Dist: comm must be a valid MPI_Comm address, not {comm}")
        return comm, None
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and isinstance(comm, mpi.Comm):
        return int(mpi._addressof(comm)), comm
    raise ArgumentError(f"Dist: comm must be None, an mpi4py communicator or the address of an MPI_Comm, not "
                        f"{type(comm).__name__}")


class Dist:
    """A communicator over MPI ranks (lt_dist): the rank, the world size, the local rank, and the collectives that
    data-parallel training needs, on CPU memory.

    ``Dist()`` (or ``libtrain.dist.init()``, which shares one per process) uses MPI_COMM_WORLD and initialises MPI
    unless something else did; ``Dist(comm)`` duplicates an mpi4py communicator (mpi4py must be built against the
    MPI libtrain links). Every rank must create it (collective).

    Lifetime: ``close()``, a ``with`` block or the finaliser frees it (collective); closing the communicator that
    initialised MPI finalizes MPI. A Trainer keeps the Dist it trains with alive.

    Attributes and calls
        ``rank``, ``world_size``, ``local_rank`` (rank among the processes of this node, for one GPU per process),
        ``is_main`` (rank 0), ``barrier()``, ``allreduce(value, op)`` for floats, ``broadcast(array, root)`` in
        place, ``broadcast_object(obj, root)`` (pickle), ``gather(array, root)``, ``allreduce_grads(params)``,
        ``broadcast_params(params)``, ``check_params_equal(params)``, ``abort(code)``.
    """

    def __init__(self, comm: Any = None) -> None:
        self._h: Optional[int] = None
        addr, keep = _comm_address(comm)
        self._comm_ref = keep
        out = c_void_p()
        C.lt_dist_init_mpi(c_void_p(addr) if addr is not None else None, byref(out))  # reads *(MPI_Comm *)addr
        self._h = out.value
        _live.add(self)
        self._rank = int(C.lt_dist_rank(self._h))
        self._world = int(C.lt_dist_world(self._h))
        self._local = int(C.lt_dist_local_rank(self._h))

    def __del__(self, _free: Any = C.lt_dist_free) -> None:
        h = getattr(self, "_h", None)
        if h:
            self._h = None
            _free(h)

    def close(self) -> None:
        """Frees the communicator (collective), and finalizes MPI when this communicator initialised it. Idempotent."""
        global _default
        h, self._h = self._h, None
        if _default is self:
            _default = None
        if h:
            C.lt_dist_free(h)

    def __enter__(self) -> "Dist":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _handle(self, what: str) -> int:
        if not self._h:
            raise StateError(f"{what}: the communicator is closed")
        return self._h

    @property
    def closed(self) -> bool:
        return not self._h

    @property
    def rank(self) -> int:
        """This process's rank, in [0, world_size)."""
        return self._rank

    @property
    def world_size(self) -> int:
        """The number of ranks."""
        return self._world

    @property
    def local_rank(self) -> int:
        """This process's rank among the processes on its node."""
        return self._local

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that prints and writes."""
        return self._rank == 0

    def barrier(self) -> None:
        """Returns when every rank has called it."""
        C.lt_dist_barrier(self._handle("Dist.barrier"))

    def allreduce(self, value: float, op: str = "sum") -> float:
        """value reduced over every rank: op is "sum", "mean" (the sum over the world size), "max" or "min". For
        metrics and for agreeing on flags (max of a stop flag)."""
        if op not in _OPS:
            raise ArgumentError(f"Dist.allreduce: op must be one of {sorted(_OPS)}, not {op!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ArgumentError(f"Dist.allreduce: value must be a number, not {type(value).__name__}")
        v = c_double(float(value))
        C.lt_dist_allreduce_scalar(self._handle("Dist.allreduce"), byref(v), _OPS[op])
        return v.value

    def broadcast(self, buf: Any, root: int = 0) -> Any:
        """Copies root's buf (a C-contiguous NumPy array or a contiguous CPU Tensor) into every rank's buf, in place,
        and returns buf. Every rank passes a buffer of the same size."""
        addr, nbytes, keep = _buffer(buf, "Dist.broadcast", writable=True)
        C.lt_dist_broadcast(self._handle("Dist.broadcast"), addr or None, nbytes, _root(root, "Dist.broadcast"))
        del keep
        return buf

    def broadcast_object(self, obj: Any = None, root: int = 0) -> Any:
        """Root's obj on every rank (pickled there, unpickled everywhere; obj is ignored on the other ranks). For
        small things: a path, a config, a decision."""
        r = _root(root, "Dist.broadcast_object")
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) if self._rank == r else b""
        size = np.array([len(payload)], dtype=np.int64)
        self.broadcast(size, r)
        data = np.frombuffer(payload, dtype=np.uint8).copy() if self._rank == r else np.empty(int(size[0]), np.uint8)
        self.broadcast(data, r)
        return obj if self._rank == r else pickle.loads(data.tobytes())

    def gather(self, buf: Any, root: int = 0) -> Optional[np.ndarray]:
        """Every rank's buf (a NumPy array or CPU Tensor of the same shape and dtype on every rank) stacked at root
        into a new array of shape (world_size, *buf.shape); None on the other ranks."""
        from .tensor import Tensor
        arr = buf.numpy() if isinstance(buf, Tensor) and buf.device.type == "cpu" else buf
        if isinstance(arr, np.ndarray) and not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        addr, nbytes, keep = _buffer(arr, "Dist.gather", writable=False)
        r = _root(root, "Dist.gather")
        out = np.empty((self._world,) + arr.shape, dtype=arr.dtype) if self._rank == r else None
        raddr = out.ctypes.data if out is not None and out.nbytes else None
        C.lt_dist_gather(self._handle("Dist.gather"), addr or None, nbytes, raddr, r)
        del keep
        return out

    def allreduce_grads(self, params: Any, average: bool = True, bucket_bytes: int = 0) -> None:
        """Replaces every rank's gradients of params (a ParameterSet, a GPT or a Trainer) by their mean (or sum,
        average=False), in buckets of bucket_bytes (0: DEFAULT_BUCKET_BYTES) reduced in buffer order. Every rank
        passes the same model and arguments. The Trainer does this itself once per step."""
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int):
            raise ArgumentError("Dist.allreduce_grads: bucket_bytes must be an int")
        C.lt_dist_allreduce_grads(self._handle("Dist.allreduce_grads"), _params_handle(params, "Dist.allreduce_grads"),
                                  bucket_bytes, bool(average))

    def broadcast_params(self, params: Any) -> None:
        """Overwrites every rank's parameters (a ParameterSet, a GPT or a Trainer) with rank 0's."""
        C.lt_dist_broadcast_params(self._handle("Dist.broadcast_params"),
                                   _params_handle(params, "Dist.broadcast_params"))

    def check_params_equal(self, params: Any) -> None:
        """Returns when every rank holds bit for bit the same parameters; raises StateError naming the first rank
        that differs from rank 0 otherwise (on every rank)."""
        C.lt_dist_check_params_equal(self._handle("Dist.check_params_equal"),
                                     _params_handle(params, "Dist.check_params_equal"))

    def abort(self, errorcode: int = 1) -> None:
        """Ends every rank of the job now (MPI_Abort), after a failure the other ranks cannot see. Does not return
        while MPI works."""
        sys.stdout.flush()
        sys.stderr.flush()
        C.lt_dist_abort(self._handle("Dist.abort"), int(errorcode))

    def __repr__(self) -> str:
        if not self._h:
            return "Dist(closed)"
        return f"Dist(rank={self._rank}, world_size={self._world}, local_rank={self._local})"


_default: Optional[Dist] = None  # init()'s communicator, kept alive by the module until close() or exit
_live: "weakref.WeakSet[Dist]" = weakref.WeakSet()  # every open Dist, closed at exit (before MPI_Finalize)
_hook_installed = False


def get_default() -> Optional[Dist]:
    """The open default communicator (init() with no argument), or None."""
    return _default if _default is not None and not _default.closed else None


@atexit.register
def _close_at_exit() -> None:
    # Python's atexit handlers run before C-level ones (Py_AtExit), where mpi4py finalizes MPI, so every
    # communicator is freed while MPI is up. The default closes last: it may be the one that owns MPI.
    for d in list(_live):
        if d is not _default:
            d.close()
    if _default is not None:
        _default.close()


def _install_abort_hook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        previous(exc_type, exc, tb)
        d = get_default()
        if d is not None and d.world_size > 1 and not issubclass(exc_type, KeyboardInterrupt):
            sys.stderr.write(f"libtrain.dist: rank {d.rank} of {d.world_size} ended with an uncaught "
                             f"{exc_type.__name__}; aborting the job so that the other ranks do not wait for it\n")
            d.abort(1)

    sys.excepthook = hook


def init(comm: Any = None, abort_on_exception: bool = True) -> Dist:
    """The communicator for this process. With comm None: the default one over MPI_COMM_WORLD, created (and MPI
    initialised) at the first call and returned again by later calls while it is open; it closes at interpreter
    exit. With an mpi4py communicator (or the address of an MPI_Comm): a new Dist over a duplicate of it.

    abort_on_exception (default communicator, more than one rank): an uncaught exception on any rank ends the
    whole job after its traceback, instead of leaving the other ranks waiting. Collective. UnsupportedError
    without MPI, StateError once MPI was finalized in this process."""
    global _default
    if comm is not None:
        return Dist(comm)
    d = get_default()
    if d is None:
        d = _default = Dist()
    if abort_on_exception and d.world_size > 1:
        _install_abort_hook()
    return d


def maybe_init(distributed: Union[bool, str, Dist, None] = "auto") -> Optional[Dist]:
    """The communicator a training program should use, or None for a single process:

    * ``"auto"``: init() when an MPI launcher started more than one process (launcher_world_size() > 1, or a
      PMIx launcher of unknown size), else None. A libtrain built without MPI quietly gives None.
    * ``True``: init() (MPI is initialised even without mpirun: a world of one); UnsupportedError, saying how to
      build with MPI, when libtrain has none.
    * ``False`` or None: None. A Dist: that Dist."""
    if isinstance(distributed, Dist):
        return distributed
    if distributed is None or distributed is False:
        return None
    if distributed is True:
        try:
            return init()
        except UnsupportedError as e:
            raise UnsupportedError(f"distributed=True, but {e}") from None
    if distributed != "auto":
        raise ArgumentError(f"distributed must be True, False, \"auto\" or a libtrain.dist.Dist, not {distributed!r}")
    n = launcher_world_size()
    if n is None or n == 1:
        return None
    try:
        return init()
    except UnsupportedError:
        return None
