"""libtrain.optim: SGD and AdamW over a ParameterSet's flat buffers, gradient clipping and the cosine schedule."""
from __future__ import annotations

from ctypes import byref, c_double, c_void_p
from typing import Any, Optional, Tuple, Union

from . import _lib
from ._lib import C
from .errors import ArgumentError
from .params import ParameterSet
from .tensor import Tensor, _check_int

__all__ = ["Optimizer", "SGD", "AdamW", "clip_grad_norm", "clip_coef", "lr_cosine"]


def _params(p: Any) -> ParameterSet:
    if isinstance(p, ParameterSet):
        return p
    if isinstance(getattr(p, "params", None), ParameterSet):
        return p.params  # a model
    raise ArgumentError(f"expected a ParameterSet or a model with .params, not {type(p).__name__}")


class Optimizer:
    """An optimizer over one ParameterSet (kept alive while the optimizer lives)."""

    def __init__(self, params: Any) -> None:
        self.params = _params(params)
        self._h: Optional[int] = None

    def __del__(self, _free: Any = C.lt_optim_free) -> None:
        if getattr(self, "_h", None):
            _free(self._h)
            self._h = None

    def step(self, grad_scale: float = 1.0) -> None:
        """One update from the current gradients, each multiplied by grad_scale inside the update's own pass (a
        clip factor from clip_coef costs no pass of its own); the gradients themselves are left as they are."""
        C.lt_optim_step_scaled(self._h, float(grad_scale))

    def zero_grad(self, lazy: bool = False) -> None:
        self.params.zero_grad(lazy)

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        C.lt_optim_set_lr(self._h, float(value))
        self._lr = float(value)

    @property
    def steps(self) -> int:
        """Updates taken so far (settable, to resume)."""
        return int(C.lt_optim_steps(self._h))

    @steps.setter
    def steps(self, n: int) -> None:
        C.lt_optim_set_steps(self._h, _check_int(n, "steps"))

    def state(self) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """The state buffers (AdamW's m and v, SGD's velocity and None) as 1-D views, or None where absent."""
        m, v = c_void_p(), c_void_p()
        C.lt_optim_state(self._h, byref(m), byref(v))
        return (Tensor._borrow(m.value) if m.value else None, Tensor._borrow(v.value) if v.value else None)


class SGD(Optimizer):
    """SGD with momentum, as torch.optim.SGD with dampening 0."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params)
        c = _lib.lt_sgd_config(_lib.ctypes.sizeof(_lib.lt_sgd_config), float(lr), float(momentum), float(weight_decay),
                               bool(nesterov))
        out = c_void_p()
        C.lt_sgd_create(self.params._h, byref(c), byref(out))
        self._h, self._lr = out.value, float(lr)


class AdamW(Optimizer):
    """AdamW as torch.optim.AdamW; weight decay only on parameters whose decay flag is set (matrices, not
    embeddings, biases or LayerNorm weights for the GPT)."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params)
        c = _lib.lt_adamw_config(_lib.ctypes.sizeof(_lib.lt_adamw_config), float(lr), float(betas[0]),
                                 float(betas[1]), float(eps), float(weight_decay))
        out = c_void_p()
        C.lt_adamw_create(self.params._h, byref(c), byref(out))
        self._h, self._lr = out.value, float(lr)


def clip_grad_norm(params: Any, max_norm: float) -> float:
    """Scales all gradients so that their global L2 norm is at most max_norm (as torch's clip_grad_norm_);
    returns the norm before clipping. max_norm <= 0 only measures."""
    norm = c_double()
    C.lt_clip_grad_norm(_params(params)._h, float(max_norm), byref(norm))
    return norm.value


def clip_coef(norm: float, max_norm: float) -> float:
    """The factor clip_grad_norm scales the gradients by for a global norm: max_norm / (norm + 1e-6) when below 1,
    else 1 (1 when max_norm <= 0). opt.step(clip_coef(norm, max_norm)) clips inside the update."""
    return float(C.lt_clip_coef(float(norm), float(max_norm)))


def lr_cosine(step: int, warmup_steps: int, total_steps: int, max_lr: float, min_lr: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay from max_lr to min_lr at total_steps."""
    return float(C.lt_lr_cosine(_check_int(step, "step"), _check_int(warmup_steps, "warmup_steps"),
                                _check_int(total_steps, "total_steps"), float(max_lr), float(min_lr)))
