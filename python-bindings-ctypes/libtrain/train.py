"""libtrain.Trainer: the C training loop (lt_trainer_*) driven from Python, with progress, validation, checkpoints
and, under mpirun, data parallelism over MPI (libtrain.dist)."""
from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import signal
import sys
import threading
from ctypes import byref, c_double, c_void_p
from typing import Any, List, Optional, Union

from . import _lib
from ._lib import C
from .dist import Dist, maybe_init
from .errors import ArgumentError, StateError
from .nn import GPT
from .tensor import Device, _dtype

__all__ = ["TrainConfig", "TrainStats", "Trainer", "validate_checkpoint", "PROGRESS_NONE", "PROGRESS_LINES",
           "PROGRESS_LIVE", "PROGRESS_AUTO"]

PROGRESS_NONE, PROGRESS_LINES, PROGRESS_LIVE, PROGRESS_AUTO = 0, 1, 2, 3


class TrainConfig:
    """lt_train_config with lt_train_config_init's defaults (the README's small byte-level GPT). Every C field is
    an attribute (``cfg.steps = 100``; ``cfg.model.n_layer = 2``; ``cfg.data_path = "shard.bin"``); keyword
    arguments set fields at construction.

    Data parallelism: ``dist`` is None (one process, or whatever ``Trainer(distributed=...)`` decides) or a
    ``libtrain.dist.Dist``; ``bucket_bytes`` is the gradient all-reduce bucket (0: 32 MiB). ``batch_size`` is per
    rank: a step of N ranks takes N x batch_size rows. ``mixed_precision = True`` runs the matrix products under bf16
    autocast on a GPU (f32 master weights; no effect on the CPU)."""

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_c", _lib.lt_train_config())
        object.__setattr__(self, "_dist", None)
        C.lt_train_config_init(byref(self._c), ctypes.sizeof(self._c))
        for k, v in fields.items():
            setattr(self, k, v)

    def __getattr__(self, name: str) -> Any:
        c = object.__getattribute__(self, "_c")
        if name not in dict(c._fields_):
            raise AttributeError(f"TrainConfig has no field {name!r}")
        v = getattr(c, name)
        if isinstance(v, bytes):
            return os.fsdecode(v)
        if name == "device":
            return Device._from_c(v)
        if name == "dist":
            return object.__getattribute__(self, "_dist")
        return v

    def __setattr__(self, name: str, value: Any) -> None:
        fields = dict(self._c._fields_)
        if name not in fields:
            raise AttributeError(f"TrainConfig has no field {name!r}")
        if name == "struct_size":
            raise ArgumentError("TrainConfig.struct_size is set by lt_train_config_init")
        if fields[name] is ctypes.c_char_p:
            value = None if value is None else os.fsencode(value)
        elif name == "device":
            value = Device(value)._c()
        elif name == "dtype":
            value = int(_dtype(value))
        elif name == "model":
            raise ArgumentError("set model fields one by one: cfg.model.n_layer = 2")
        elif name == "dist":
            if value is not None and not isinstance(value, Dist):
                raise ArgumentError(f"TrainConfig.dist must be a libtrain.dist.Dist or None, not "
                                    f"{type(value).__name__}")
            object.__setattr__(self, "_dist", value)  # the handle below is borrowed: keep the Dist alive
            value = None if value is None else value._handle("TrainConfig.dist")
        elif fields[name] in (ctypes.c_int64, ctypes.c_uint64, ctypes.c_int) and (
                isinstance(value, bool) or not isinstance(value, int)):
            raise ArgumentError(f"TrainConfig.{name} must be an int, not {type(value).__name__}")
        setattr(self._c, name, value)

    def __repr__(self) -> str:
        parts = [f"{n}={getattr(self, n)!r}" for n, _ in self._c._fields_ if n not in ("struct_size", "model")]
        m = self._c.model
        model = ", ".join(f"{n}={getattr(m, n)}" for n, _ in m._fields_ if n != "struct_size")
        return f"TrainConfig(model=({model}), {', '.join(parts)})"


@dataclasses.dataclass
class TrainStats:
    """What one optimizer step did (lt_train_stats)."""
    step: int
    loss: float
    lr: float
    grad_norm: float
    step_seconds: float
    tokens_per_second: float


def _fmt_duration(s: float) -> str:
    v = int(s + 0.5) if 0 < s < 1e7 else 0
    return f"{v // 3600}:{v // 60 % 60:02d}:{v % 60:02d}" if v >= 3600 else f"{v // 60}:{v % 60:02d}"


class Trainer:
    """The whole loop for a GPT on a token dataset: ``Trainer(cfg).run()``.

    ``step()`` takes one optimizer step (grad_accum micro-batches, clipping, the scheduled lr, AdamW) and returns
    TrainStats; ``evaluate()`` gives the mean validation loss; ``run()`` runs the remaining steps with progress
    (tqdm when installed and stdout is a terminal, else the C trainer's plain lines, identical text) and
    validation; ``model`` is the GPT being trained.

    Checkpoints: ``save(dir, keep_last=3)`` (lt_trainer_save), ``resume(path_or_dir, params_only=False)``
    (lt_trainer_resume) and ``libtrain.validate_checkpoint(path)`` (lt_ckpt_validate). ``run()`` saves like the C
    lt_trainer_run (``run_native()``): with ``config.ckpt_dir`` set, every ``ckpt_every`` steps and at the end.
    Both treat SIGTERM and SIGUSR1 as "save and stop": the run saves (with ckpt_dir) and returns at the next step
    boundary, on every rank at the same step; ``steps_done < config.steps`` tells that it stopped early.

    Data parallelism: started by ``mpirun -np N python3 script.py``, every rank builds the same Trainer and it
    trains as one process would on N x batch_size rows per step: rank 0's seed and parameters, each rank reading
    its part of every global batch, gradients averaged once per step (MPI all-reduce), the reported loss the mean
    over ranks, and only rank 0 printing progress and writing metrics. ``distributed`` decides:

    * ``"auto"`` (default): ``config.dist`` when set; else MPI data parallelism when an MPI launcher started more
      than one process (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK); else one process, exactly as without MPI. A
      libtrain built without MPI quietly stays one process.
    * ``True``: initialise MPI even without mpirun (a world of one); UnsupportedError when libtrain has no MPI.
    * ``False``: one process, whatever the environment says. A ``libtrain.dist.Dist``: that communicator.

    ``dist`` is the communicator in use (None for one process), ``rank`` and ``world_size`` say where this process
    stands, ``is_main`` whether it is rank 0. Every rank must call the same methods in the same order (step, run,
    evaluate, save); printing your own output only ``if trainer.is_main`` keeps logs single."""

    def __init__(self, config: TrainConfig, distributed: Union[bool, str, Dist] = "auto") -> None:
        if not isinstance(config, TrainConfig):
            raise ArgumentError("Trainer: config must be a libtrain.TrainConfig")
        if config._c.data_path is None:
            raise ArgumentError("Trainer: config.data_path is not set")
        if not (isinstance(distributed, (bool, Dist)) or distributed == "auto"):
            raise ArgumentError(f"Trainer: distributed must be True, False, \"auto\" or a libtrain.dist.Dist, not "
                                f"{distributed!r}")
        self.config = config
        if config.dist is not None and distributed is not False and not isinstance(distributed, Dist):
            self.dist: Optional[Dist] = config.dist
        else:
            self.dist = maybe_init(distributed)
        # The C trainer keeps the config's strings (data_path, ckpt_dir, ...) as borrowed pointers: a private copy
        # owns them, so that changing the TrainConfig later cannot leave it a freed string.
        c = _lib.lt_train_config.from_buffer_copy(config._c)
        for name, typ in c._fields_:
            if typ is ctypes.c_char_p:
                setattr(c, name, getattr(config._c, name))
        c.dist = self.dist._handle("Trainer") if self.dist is not None else None
        self._cfg = c
        out = c_void_p()
        C.lt_trainer_create(byref(c), byref(out))
        self._h = out.value
        self.model = GPT(_handle=C.lt_trainer_model(self._h), _owner=self)
        self._seconds = 0.0
        self._last_loss = math.nan
        # steps_done at the last checkpoint saved or resumed from (-1: none), as the C trainer's last_saved
        self._last_saved = self.steps_done if self.steps_done > 0 else -1

    def __del__(self, _free: Any = C.lt_trainer_free) -> None:
        if getattr(self, "_h", None):
            _free(self._h)
            self._h = None

    @property
    def steps_done(self) -> int:
        return int(C.lt_trainer_steps_done(self._h))

    @property
    def rank(self) -> int:
        """This process's rank (0 without data parallelism)."""
        return self.dist.rank if self.dist is not None else 0

    @property
    def world_size(self) -> int:
        """The number of ranks training together (1 without data parallelism)."""
        return self.dist.world_size if self.dist is not None else 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that prints progress and writes metrics."""
        return self.rank == 0

    def step(self) -> TrainStats:
        """One optimizer step (collective under data parallelism: loss is the mean over ranks, tokens_per_second
        counts every rank). StateError when every configured step is done."""
        s = _lib.lt_train_stats()
        s.struct_size = ctypes.sizeof(s)
        C.lt_trainer_step(self._h, byref(s))
        self._seconds += s.step_seconds
        self._last_loss = s.loss
        return TrainStats(s.step, s.loss, s.lr, s.grad_norm, s.step_seconds, s.tokens_per_second)

    def evaluate(self) -> float:
        """Mean validation loss in nats per token (StateError when there is no validation split)."""
        v = c_double()
        C.lt_trainer_evaluate(self._h, byref(v))
        return v.value

    def save(self, dir: "os.PathLike[str] | str", keep_last: int = 3) -> str:
        """Saves the whole training state as dir/step-XXXXXXXX.h5 and points dir/latest at it (lt_trainer_save:
        atomic; dir is created when missing; all but the keep_last newest checkpoints are deleted, keep_last <= 0
        keeps all). Returns the file's path. LibtrainIOError, BackendError (HDF5), UnsupportedError without HDF5."""
        if isinstance(keep_last, bool) or not isinstance(keep_last, int):
            raise ArgumentError(f"Trainer.save: keep_last must be an int, not {type(keep_last).__name__}")
        C.lt_trainer_save(self._h, os.fsencode(dir), keep_last)
        self._last_saved = self.steps_done
        return os.path.join(os.fsdecode(dir), f"step-{self.steps_done:08d}.h5")

    def resume(self, path_or_dir: "os.PathLike[str] | str", params_only: bool = False) -> None:
        """Restores this trainer from a checkpoint file, or from a directory's latest (lt_trainer_resume). Strict by
        default: parameters, optimizer state, RNG, data cursor and step count, and the config must match;
        params_only=True loads only the parameters (fine-tuning) and keeps the rest fresh. Everything is validated
        first, so on failure the trainer is unchanged: FormatError (corrupt or foreign file), LibtrainIOError (no
        such file), ShapeError / DTypeError (a tensor that does not fit), ArgumentError (a config mismatch)."""
        C.lt_trainer_resume(self._h, os.fsencode(path_or_dir), 1 if params_only else 0)
        if not params_only:
            self._last_saved = self.steps_done

    def _save_if(self, due: bool, out: Any, show: bool) -> None:
        # lt__save_if: with ckpt_dir set, save when due unless this step is already saved.
        c = self.config
        if not due or c._c.ckpt_dir is None or self._last_saved == self.steps_done:
            return
        self.save(c.ckpt_dir, c.keep_last)
        if show:
            print(f"saved checkpoint step {self.steps_done} in {c.ckpt_dir}", file=out, flush=True)

    def run_native(self) -> None:
        """Runs the remaining steps in C (lt_trainer_run), with the C trainer's own progress output."""
        C.lt_trainer_run(self._h)

    def _validate(self, out: Any, show: bool) -> None:
        v = self.evaluate()
        if show:
            print(f"step {self.steps_done}/{self.config.steps} | val loss {v:.4f} nats/token ({v / math.log(2):.3f} "
                  f"bits)", file=out, flush=True)

    def run(self, progress: Optional[int] = None, out: Any = None) -> List[TrainStats]:
        """Runs the remaining steps, printing what the C trainer prints (one line per log_every steps, each
        validation and a summary), or a tqdm bar when tqdm is installed and the output is a terminal. Under data
        parallelism only rank 0 prints. Returns the TrainStats of the steps it took.

        While it runs (in the main thread), SIGTERM and SIGUSR1 make it save (with config.ckpt_dir) and return
        after the current step, as lt_trainer_run does; under data parallelism a signal to any rank stops every
        rank after the same step (an all-reduce of the flag each step). The caller's handlers come back after."""
        caught: List[int] = []
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR1):
                previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        try:
            return self._run(progress, out, caught)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, progress: Optional[int], out: Any, caught: List[int]) -> List[TrainStats]:
        out = out or sys.stdout
        c = self.config
        mode = c.progress if progress is None else progress
        if not self.is_main:
            mode = PROGRESS_NONE
        world = self.world_size
        history: List[TrainStats] = []
        bar = None
        if mode in (PROGRESS_AUTO, PROGRESS_LIVE) and getattr(out, "isatty", lambda: False)():
            try:
                import tqdm  # type: ignore[import-not-found]
                bar = tqdm.tqdm(total=c.steps, initial=self.steps_done, file=out, unit="step")
            except ImportError:
                bar = None
        quiet = mode == PROGRESS_NONE
        validate = False
        if self.steps_done == 0:
            try:
                v = self.evaluate()
                validate = True
                if not quiet:
                    print(f"step 0/{c.steps} | val loss {v:.4f} nats/token ({v / math.log(2):.3f} bits)", file=out,
                          flush=True)
            except StateError:
                validate = False
        else:
            validate = c.val_fraction > 0 and c.eval_batches > 0
        while self.steps_done < c.steps:
            stop = float(caught[0]) if caught else 0.0
            if world > 1:  # a signal may reach one rank only: all take the largest flag and stop at one step
                stop = self.dist.allreduce(stop, "max")  # type: ignore[union-attr]
            if stop:
                if bar is not None:
                    bar.close()
                self._save_if(True, out, not quiet)
                if not quiet:
                    print(f"stopped by signal {int(stop)} after step {self.steps_done}/{c.steps}"
                          f"{'' if c._c.ckpt_dir else ' (no ckpt_dir: not saved)'}", file=out, flush=True)
                return history
            s = self.step()
            history.append(s)
            line = s.step == 1 or s.step % c.log_every == 0 or s.step == c.steps
            tok_s = self.steps_done * c.batch_size * c.seq_len * c.grad_accum * world / (self._seconds or 1)
            eta = _fmt_duration(self._seconds / self.steps_done * (c.steps - self.steps_done))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{s.loss:.4f}", lr=f"{s.lr:.2e}")
                if line:
                    bar.write(f"step {s.step}/{c.steps} | loss {s.loss:.4f} | lr {s.lr:.2e} | norm {s.grad_norm:.3f}")
            elif line and not quiet:
                print(f"step {s.step}/{c.steps} | loss {s.loss:.4f} | lr {s.lr:.2e} | norm {s.grad_norm:.3f} | "
                      f"{tok_s:.0f} tok/s | ETA {eta}", file=out, flush=True)
            if validate and c.eval_every > 0 and s.step % c.eval_every == 0 and s.step != c.steps:
                self._validate(out if bar is None else _BarOut(bar), not quiet)
            self._save_if(c.ckpt_every > 0 and s.step % c.ckpt_every == 0, out if bar is None else _BarOut(bar),
                          not quiet)
        if bar is not None:
            bar.close()
        if validate:
            self._validate(out, not quiet)
        self._save_if(True, out, not quiet)
        if not quiet and self.steps_done > 0:
            tokens = self.steps_done * c.batch_size * c.seq_len * c.grad_accum * world
            print(f"done: {self.steps_done} steps in {self._seconds:.1f} s ({tokens / (self._seconds or 1):.0f} "
                  f"tokens/s), final training loss {self._last_loss:.4f}", file=out, flush=True)
        return history


def validate_checkpoint(path: "os.PathLike[str] | str", against: Optional[Trainer] = None) -> dict:
    """Validates a checkpoint file (or a directory's latest) without changing anything (lt_ckpt_validate): the
    structure and every CRC32, and, with against, the strict match with that trainer. Returns what the file says
    about itself (version, step, tokens_seen, world_size, zero_stage, n_params, numel, dtype). Raises as
    Trainer.resume does (FormatError for a corrupt file)."""
    info = _lib.lt_ckpt_info()
    info.struct_size = ctypes.sizeof(info)
    C.lt_ckpt_validate(os.fsencode(path), against._h if against is not None else None, byref(info))
    d = {n: getattr(info, n) for n, _ in info._fields_ if n != "struct_size"}
    if isinstance(d.get("dtype"), bytes):
        d["dtype"] = d["dtype"].decode()
    return d


class _BarOut:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def write(self, s: str) -> None:
        if s.strip():
            self.bar.write(s.rstrip("\n"))

    def flush(self) -> None:
        pass
