"""The C boundary: finds and loads libtrain.so, checks its ABI, and declares the argtypes and restype of every C
function the package binds. No other module touches the shared library directly: they call the checked,
prototyped functions on ``C`` (``_lib.C.lt_add(...)``), whose failed statuses raise the exception of their code with
``lt_last_error()``'s message (see errors.py).

Library search order: $LIBTRAIN_LIBRARY (a path), a copy next to this package, a CMake build tree above the package
(build*/libtrain.so*, newest first, sanitizer builds skipped), then the system loader.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t,
                    c_uint64, c_void_p)
from typing import Any, Dict, List, Optional, Tuple

from .errors import LibraryNotFoundError, error_for_status

#: The ABI number (the SONAME's, libtrain.so.<ABI>) that these bindings are written against.
ABI_VERSION = 1

LT_MAX_DIMS = 8

# ---- C structs, mirrored field by field from include/libtrain/*.h ----


class lt_device(Structure):
    """core.h: lt_device, passed by value."""
    _fields_ = [("type", c_int32), ("index", c_int32)]


class lt_philox(Structure):
    """tensor.h: lt_philox, a Philox4x32-10 (seed, offset) stream owned by the caller."""
    _fields_ = [("seed", c_uint64), ("offset", c_uint64)]


class lt_alloc_stats(Structure):
    """core.h: lt_alloc_stats."""
    _fields_ = [("struct_size", c_size_t), ("bytes_in_use", c_size_t), ("peak_bytes", c_size_t),
                ("bytes_cached", c_size_t), ("system_allocs", c_uint64), ("system_frees", c_uint64),
                ("cache_hits", c_uint64)]


class lt_sgd_config(Structure):
    """optim.h: lt_sgd_config."""
    _fields_ = [("struct_size", c_size_t), ("lr", c_double), ("momentum", c_double), ("weight_decay", c_double),
                ("nesterov", c_bool)]


class lt_adamw_config(Structure):
    """optim.h: lt_adamw_config."""
    _fields_ = [("struct_size", c_size_t), ("lr", c_double), ("beta1", c_double), ("beta2", c_double),
                ("eps", c_double), ("weight_decay", c_double)]


class lt_gpt_config(Structure):
    """nn.h: lt_gpt_config."""
    _fields_ = [("struct_size", c_size_t), ("vocab_size", c_int64), ("padded_vocab_size", c_int64),
                ("block_size", c_int64), ("n_layer", c_int64), ("n_head", c_int64), ("n_embd", c_int64),
                ("dropout", c_double)]


class lt_train_config(Structure):
    """train.h: lt_train_config, in declaration order. Fields appended to the C struct must be appended here."""
    _fields_ = [("struct_size", c_size_t), ("model", lt_gpt_config), ("dtype", c_int), ("device", lt_device),
                ("seed", c_uint64), ("data_path", c_char_p), ("val_fraction", c_double),
                ("batch_size", c_int64), ("seq_len", c_int64), ("grad_accum", c_int64),
                ("steps", c_int64), ("warmup_steps", c_int64),
                ("lr", c_double), ("min_lr", c_double), ("beta1", c_double), ("beta2", c_double), ("eps", c_double),
                ("weight_decay", c_double), ("grad_clip", c_double),
                ("eval_every", c_int64), ("eval_batches", c_int64), ("log_every", c_int64),
                ("progress", c_int), ("metrics_path", c_char_p), ("threads", c_int),
                # checkpoints (ckpt.h), appended to the C struct
                ("ckpt_dir", c_char_p), ("ckpt_every", c_int64), ("keep_last", c_int), ("resume", c_char_p),
                # data parallelism (dist.h), appended to the C struct; lt_train_config_init writes them too
                ("dist", c_void_p), ("bucket_bytes", c_int64),
                # mixed precision (docs/mixed-precision.md), appended to the C struct
                ("mixed_precision", c_bool),
                # ZeRO stage (dist.h), appended to the C struct
                ("zero_stage", c_int)]


class lt_ckpt_info(Structure):
    """ckpt.h: lt_ckpt_info."""
    _fields_ = [("struct_size", c_size_t), ("version", c_int), ("step", c_int64), ("tokens_seen", c_int64),
                ("world_size", c_int), ("zero_stage", c_int), ("n_params", c_int), ("numel", c_int64),
                ("dtype", ctypes.c_char * 8)]


class lt_train_stats(Structure):
    """train.h: lt_train_stats."""
    _fields_ = [("struct_size", c_size_t), ("step", c_int64), ("loss", c_double), ("lr", c_double),
                ("grad_norm", c_double), ("step_seconds", c_double), ("tokens_per_second", c_double)]


class lt_loader_state(Structure):
    """data.h: lt_loader_state."""
    _fields_ = [("seed", c_uint64), ("epoch", c_uint64), ("batch", c_uint64)]


# ---- Prototypes ----

STATUS = "status"  # restype marker: lt_status, checked (non-zero raises)
H = c_void_p       # every opaque handle (lt_tensor *, lt_params *, lt_gpt *, ...)
HP = POINTER(c_void_p)
I64P = POINTER(c_int64)
IP = POINTER(c_int)

# name -> (restype, argtypes). restype STATUS means lt_status with an errcheck that raises.
PROTOTYPES: Dict[str, Tuple[Any, List[Any]]] = {
    # core.h
    "lt_last_error": (c_char_p, []),
    "lt_status_name": (c_char_p, [c_int]),
    "lt_dtype_size": (c_size_t, [c_int]),
    "lt_dtype_name": (c_char_p, [c_int]),
    "lt_version": (c_char_p, []),
    "lt_abi_version": (c_int, []),
    "lt_device_check": (STATUS, [lt_device]),
    "lt_device_synchronize": (STATUS, [lt_device]),
    "lt_alloc_get_stats": (STATUS, [lt_device, POINTER(lt_alloc_stats)]),
    "lt_alloc_empty_cache": (STATUS, [lt_device]),
    "lt_set_num_threads": (STATUS, [c_int]),
    "lt_get_num_threads": (c_int, []),
    # tensor.h
    "lt_tensor_retain": (None, [H]),
    "lt_tensor_release": (None, [H]),
    "lt_tensor_empty": (STATUS, [I64P, c_int, c_int, lt_device, HP]),
    "lt_tensor_zeros": (STATUS, [I64P, c_int, c_int, lt_device, HP]),
    "lt_tensor_ones": (STATUS, [I64P, c_int, c_int, lt_device, HP]),
    "lt_tensor_full": (STATUS, [I64P, c_int, c_double, c_int, lt_device, HP]),
    "lt_tensor_arange": (STATUS, [c_double, c_double, c_double, c_int, lt_device, HP]),
    "lt_tensor_rand": (STATUS, [I64P, c_int, c_int, lt_device, POINTER(lt_philox), HP]),
    "lt_tensor_randn": (STATUS, [I64P, c_int, c_int, lt_device, POINTER(lt_philox), HP]),
    "lt_tensor_from_host": (STATUS, [c_void_p, I64P, c_int, c_int, lt_device, HP]),
    "lt_tensor_from_blob": (STATUS, [c_void_p, I64P, I64P, c_int, c_int, lt_device, c_void_p, c_void_p, HP]),
    "lt_tensor_ndim": (c_int, [H]),
    "lt_tensor_dim": (c_int64, [H, c_int]),
    "lt_tensor_shape": (STATUS, [H, I64P]),
    "lt_tensor_strides": (STATUS, [H, I64P]),
    "lt_tensor_numel": (c_int64, [H]),
    "lt_tensor_dtype": (c_int, [H]),
    "lt_tensor_device": (lt_device, [H]),
    "lt_tensor_is_contiguous": (c_bool, [H]),
    "lt_tensor_data": (c_void_p, [H]),
    "lt_tensor_to_host": (STATUS, [H, c_void_p, c_size_t]),
    "lt_tensor_copy": (STATUS, [H, H]),
    "lt_tensor_to": (STATUS, [H, c_int, lt_device, HP]),
    "lt_reshape": (STATUS, [H, I64P, c_int, HP]),
    "lt_view": (STATUS, [H, I64P, c_int, HP]),
    "lt_permute": (STATUS, [H, IP, HP]),
    "lt_transpose": (STATUS, [H, c_int, c_int, HP]),
    "lt_slice": (STATUS, [H, c_int, c_int64, c_int64, c_int64, HP]),
    "lt_expand": (STATUS, [H, I64P, c_int, HP]),
    "lt_contiguous": (STATUS, [H, HP]),
    "lt_tensor_set_requires_grad": (STATUS, [H, c_bool]),
    "lt_tensor_requires_grad": (c_bool, [H]),
    "lt_tensor_grad": (STATUS, [H, HP]),
    "lt_tensor_zero_grad": (STATUS, [H]),
    "lt_detach": (STATUS, [H, HP]),
    "lt_backward": (STATUS, [H]),
    "lt_backward_grad": (STATUS, [H, H]),
    "lt_no_grad_begin": (None, []),
    "lt_no_grad_end": (None, []),
    "lt_grad_enabled": (c_bool, []),
    # ops.h
    **{f"lt_{op}": (STATUS, [H, H, HP]) for op in ("add", "sub", "mul", "div", "pow")},
    "lt_neg": (STATUS, [H, HP]),
    **{f"lt_{op}_scalar": (STATUS, [H, c_double, HP]) for op in ("add", "mul", "pow", "rsub", "rdiv")},
    **{f"lt_{op}": (STATUS, [H, HP]) for op in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu")},
    "lt_gelu": (STATUS, [H, c_int, HP]),
    **{f"lt_{op}": (STATUS, [H, IP, c_int, c_bool, HP]) for op in ("sum", "mean", "max")},
    "lt_matmul": (STATUS, [H, H, c_bool, c_bool, HP]),
    "lt_autocast_begin": (STATUS, [c_int]),
    "lt_autocast_end": (None, []),
    "lt_autocast_dtype": (c_int, []),
    "lt_softmax": (STATUS, [H, c_int, HP]),
    "lt_log_softmax": (STATUS, [H, c_int, HP]),
    "lt_layer_norm": (STATUS, [H, H, H, c_double, HP, HP, HP]),
    "lt_cross_entropy": (STATUS, [H, H, c_int64, c_int, HP]),
    "lt_embedding": (STATUS, [H, H, HP]),
    "lt_where": (STATUS, [H, H, H, HP]),
    "lt_masked_fill": (STATUS, [H, H, c_double, HP]),
    "lt_cat": (STATUS, [HP, c_int, c_int, HP]),
    "lt_split": (STATUS, [H, I64P, c_int, c_int, HP]),
    "lt_dropout": (STATUS, [H, c_double, POINTER(lt_philox), HP]),
    # params.h
    "lt_params_create": (STATUS, [c_int, lt_device, HP]),
    "lt_params_free": (None, [H]),
    "lt_params_add": (STATUS, [H, c_char_p, I64P, c_int, HP]),
    "lt_params_reserve": (STATUS, [H, c_int64]),
    "lt_params_count": (c_int, [H]),
    "lt_params_numel": (c_int64, [H]),
    "lt_params_get": (STATUS, [H, c_int, POINTER(c_char_p), HP]),
    "lt_params_find": (STATUS, [H, c_char_p, HP]),
    "lt_params_flat": (STATUS, [H, HP, HP]),
    "lt_params_set_decay": (STATUS, [H, c_char_p, c_bool]),
    "lt_params_get_decay": (c_bool, [H, c_int]),
    "lt_params_zero_grad": (STATUS, [H]),
    "lt_params_zero_grad_lazy": (STATUS, [H]),
    # optim.h
    "lt_sgd_create": (STATUS, [H, POINTER(lt_sgd_config), HP]),
    "lt_adamw_create": (STATUS, [H, POINTER(lt_adamw_config), HP]),
    "lt_optim_step": (STATUS, [H]),
    "lt_optim_step_scaled": (STATUS, [H, c_double]),
    "lt_optim_set_lr": (STATUS, [H, c_double]),
    "lt_optim_steps": (c_int64, [H]),
    "lt_optim_state": (STATUS, [H, HP, HP]),
    "lt_optim_set_steps": (STATUS, [H, c_int64]),
    "lt_clip_grad_norm": (STATUS, [H, c_double, POINTER(c_double)]),
    "lt_clip_coef": (c_double, [c_double, c_double]),
    "lt_lr_cosine": (c_double, [c_int64, c_int64, c_int64, c_double, c_double]),
    "lt_optim_free": (None, [H]),
    # nn.h
    "lt_linear": (STATUS, [H, H, H, HP]),
    "lt_attention": (STATUS, [H, c_int, HP]),
    "lt_residual_layer_norm": (STATUS, [H, H, H, H, c_double, HP, HP]),
    "lt_classifier_loss": (STATUS, [H, H, H, c_int64, c_int64, HP]),
    "lt_gpt_create": (STATUS, [POINTER(lt_gpt_config), c_int, lt_device, c_uint64, HP]),
    "lt_gpt_free": (None, [H]),
    "lt_gpt_params": (H, [H]),
    "lt_gpt_get_config": (STATUS, [H, POINTER(lt_gpt_config)]),
    "lt_gpt_rng": (POINTER(lt_philox), [H]),
    "lt_gpt_forward": (STATUS, [H, H, H, c_bool, HP, HP]),
    "lt_gpt_sample": (STATUS, [H, POINTER(c_int32), c_int, c_int, c_double, c_int, c_uint64, POINTER(c_int32)]),
    # data.h
    "lt_dataset_open": (STATUS, [c_char_p, c_int64, HP]),
    "lt_dataset_free": (None, [H]),
    "lt_dataset_tokens": (c_int64, [H]),
    "lt_dataset_slice": (STATUS, [H, c_int64, c_int64, HP]),
    "lt_tokenize_bytes": (STATUS, [c_char_p, c_char_p]),
    "lt_loader_create": (STATUS, [H, c_int64, c_int64, c_uint64, c_int, c_int, HP]),
    "lt_loader_free": (None, [H]),
    "lt_loader_next": (STATUS, [H, lt_device, HP, HP]),
    "lt_loader_get_state": (STATUS, [H, POINTER(lt_loader_state)]),
    "lt_loader_set_state": (STATUS, [H, POINTER(lt_loader_state)]),
    "lt_loader_batches_per_epoch": (c_int64, [H]),
    # train.h
    "lt_train_config_init": (None, [POINTER(lt_train_config), c_size_t]),
    "lt_trainer_create": (STATUS, [POINTER(lt_train_config), HP]),
    "lt_trainer_free": (None, [H]),
    "lt_trainer_step": (STATUS, [H, POINTER(lt_train_stats)]),
    "lt_trainer_evaluate": (STATUS, [H, POINTER(c_double)]),
    "lt_trainer_run": (STATUS, [H]),
    "lt_trainer_model": (H, [H]),
    "lt_trainer_steps_done": (c_int64, [H]),
    # ckpt.h
    "lt_trainer_save": (STATUS, [H, c_char_p, c_int]),
    "lt_trainer_resume": (STATUS, [H, c_char_p, c_int]),
    "lt_ckpt_validate": (STATUS, [c_char_p, H, POINTER(lt_ckpt_info)]),
    # dist.h (libtrain.dist wraps these). lt_dist_init_mpi's first argument is NULL or the address of an MPI_Comm.
    "lt_dist_init_mpi": (STATUS, [c_void_p, HP]),
    "lt_dist_free": (None, [H]),
    "lt_dist_rank": (c_int, [H]),
    "lt_dist_world": (c_int, [H]),
    "lt_dist_local_rank": (c_int, [H]),
    "lt_dist_allreduce_grads": (STATUS, [H, H, c_int64, c_bool]),
    "lt_dist_broadcast_params": (STATUS, [H, H]),
    "lt_dist_check_params_equal": (STATUS, [H, H]),
    "lt_dist_allreduce_scalar": (STATUS, [H, POINTER(c_double), c_int]),
    "lt_dist_broadcast": (STATUS, [H, c_void_p, c_int64, c_int]),
    "lt_dist_gather": (STATUS, [H, c_void_p, c_int64, c_void_p, c_int]),
    "lt_dist_barrier": (STATUS, [H]),
    "lt_dist_abort": (None, [H, c_int]),
}

#: LT_API functions that are deliberately not bound, each with the reason. tests/python/test_coverage.py checks
#: that every LT_API function in include/libtrain/*.h is either in PROTOTYPES or here.
DELIBERATELY_UNBOUND: Dict[str, str] = {
    "lt_scope_begin": "scopes are C autorelease pools; Python owns every tensor by refcount, outside any scope",
    "lt_scope_end": "see lt_scope_begin",
    # ZeRO-1 (dist.h, optim.h): the Trainer runs it from lt_train_config.zero_stage; its parts are not bound one by one
    "lt_adamw_create_range": "ZeRO-1's shard optimizer, made by the Trainer (zero_stage 1)",
    "lt_optim_range": "the range of a ZeRO-1 shard optimizer, which Python never holds",
    "lt_grad_sumsq": "ZeRO-1's clipping in parts, inside lt_dist_zero_step",
    "lt_clip_grad_range": "ZeRO-1's clipping in parts, inside lt_dist_zero_step",
    "lt_dist_shard_of": "ZeRO-1's partition, used by the Trainer and its checkpoints",
    "lt_dist_reduce_scatter_grads": "ZeRO-1's collective, run by lt_dist_zero_step inside the Trainer",
    "lt_dist_allgather_params": "ZeRO-1's collective, run by lt_dist_zero_step inside the Trainer",
    "lt_dist_gather_shards": "ZeRO-1's checkpoint collective, inside the Trainer's save",
    "lt_dist_scatter_shards": "ZeRO-1's checkpoint collective, inside the Trainer's resume",
    "lt_dist_zero_step": "ZeRO-1's step, run by the Trainer (zero_stage 1)",
    "lt_trainer_optimizer": "the Trainer does not expose its optimizer to Python",
    # The deadline (dist.h): LIBTRAIN_DIST_TIMEOUT sets it for a Dist; setters not bound yet
    "lt_dist_set_timeout": "the deadline comes from LIBTRAIN_DIST_TIMEOUT (read by lt_dist_init_mpi) for now",
    "lt_dist_timeout": "see lt_dist_set_timeout",
    "lt_dist_aborts_on_timeout": "see lt_dist_set_timeout",
    # NCCL (dist.h): the Trainer calls it for a GPU device with more than one rank
    "lt_dist_init_nccl": "called by the Trainer (lt_trainer_create) for a GPU device with more than one rank",
}

# ---- Loading ----


def _candidates() -> List[Tuple[str, str]]:
    """(path or loader name, where it came from), in search order."""
    out: List[Tuple[str, str]] = []
    env = os.environ.get("LIBTRAIN_LIBRARY")
    if env:
        # An explicit choice is authoritative: when it is unusable, say so rather than load another copy.
        return [(env, "$LIBTRAIN_LIBRARY")]
    here = os.path.dirname(os.path.abspath(__file__))
    for p in sorted(glob.glob(os.path.join(here, "libtrain.so*"))):
        out.append((p, "next to the package"))
    # A build tree: any build*/libtrain.so* in a directory above the package, newest first. Sanitizer builds are
    # skipped: an ASan library cannot be loaded into a Python that was not started with the ASan runtime.
    found: List[Tuple[float, str]] = []
    d = os.path.dirname(here)
    for _ in range(4):
        for p in glob.glob(os.path.join(d, "build*", "libtrain.so*")):
            cache = os.path.join(os.path.dirname(p), "CMakeCache.txt")
            try:
                with open(cache, encoding="utf-8", errors="replace") as f:
                    if "LT_SANITIZE:BOOL=ON" in f.read():
                        continue
            except OSError:
                pass
            if os.path.isfile(p):
                found.append((os.path.getmtime(p), p))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    seen = set()
    for _, p in sorted(found, key=lambda x: -x[0]):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append((p, "build tree"))
    system = ctypes.util.find_library("train")
    if system:
        out.append((system, "system loader (find_library)"))
    out.append((f"libtrain.so.{ABI_VERSION}", "system loader"))
    return out


def _load() -> Tuple[ctypes.CDLL, str]:
    tried: List[str] = []
    for path, origin in _candidates():
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"  {origin}: {path}: {e}")
            continue
        try:
            abi = dll.lt_abi_version
            abi.restype, abi.argtypes = c_int, []
            ver = dll.lt_version
            ver.restype, ver.argtypes = c_char_p, []
            got, version = abi(), ver().decode()
        except AttributeError as e:
            tried.append(f"  {origin}: {path}: not libtrain ({e})")
            continue
        if got != ABI_VERSION:
            tried.append(f"  {origin}: {path}: libtrain {version} has ABI {got}, these bindings need ABI {ABI_VERSION}")
            continue
        return dll, path
    raise LibraryNotFoundError(
        f"libtrain: no usable libtrain.so (ABI {ABI_VERSION}) found. Build it (cmake -S . -B build && cmake --build "
        f"build), or set LIBTRAIN_LIBRARY to its path. Looked in:\n" + "\n".join(tried))


def _errcheck(result: int, func: Any, args: Tuple[Any, ...]) -> int:
    if result != 0:
        msg = _dll.lt_last_error()
        text = msg.decode("utf-8", "replace") if msg else ""
        raise error_for_status(result, text or f"{func.__name__} failed with status {result}")
    return result


class _Bound:
    """The bound functions, as attributes: ``C.lt_add(a, b, byref(out))``."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"libtrain C function {name} is not bound (add it to _lib.PROTOTYPES)")


_dll, LIBRARY_PATH = _load()
C = _Bound()
#: Names in PROTOTYPES that this library does not export (an older library): calling them raises AttributeError.
MISSING: List[str] = []
for _name, (_res, _args) in PROTOTYPES.items():
    try:
        _f = getattr(_dll, _name)
    except AttributeError:
        MISSING.append(_name)
        continue
    _f.argtypes = _args
    if _res is STATUS:
        _f.restype = c_int
        _f.errcheck = _errcheck
    else:
        _f.restype = _res
    setattr(C, _name, _f)

VERSION: str = C.lt_version().decode()


def last_error() -> str:
    """lt_last_error(): the message of the last failed call on this thread."""
    return C.lt_last_error().decode("utf-8", "replace")


def new_handle() -> c_void_p:
    """An out-parameter for a C function that returns a handle."""
    return c_void_p()


def int64_array(values: Optional[Any]) -> Any:
    """A C int64_t[] holding values (None gives NULL)."""
    if values is None:
        return None
    vals = list(values)
    return (c_int64 * max(len(vals), 1))(*vals)


def int_array(values: Any) -> Any:
    vals = list(values)
    return (c_int * max(len(vals), 1))(*vals)


def tensor_handles(handles: List[Any]) -> Any:
    return (c_void_p * max(len(handles), 1))(*handles)


DELETER = CFUNCTYPE(None, c_void_p)
