"""Functional, differentiable layers and losses over libtrain Tensors (the fused ops of ops.h and nn.h).
Every function returns a new Tensor; inputs may be any strided view."""
from __future__ import annotations

from ctypes import byref, c_void_p
from typing import Optional, Tuple

from ._lib import C
from .errors import ArgumentError
from .tensor import Generator, Tensor, _check_int, _h, _new

__all__ = ["linear", "attention", "layer_norm", "embedding", "cross_entropy", "classifier_loss", "dropout", "gelu",
           "relu", "softmax", "log_softmax"]

_REDUCTIONS = {"mean": 0, "sum": 1, "none": 2}


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """y = x @ weight + bias for x [..., in], weight [in, out] (GPT-2's Conv1D layout, NOT torch's [out, in]) and
    bias [out] or None."""
    return _new(C.lt_linear, _h(x, "linear: x"), _h(weight, "linear: weight"), _h(bias, "linear: bias"))


def attention(qkv: Tensor, n_head: int) -> Tensor:
    """Causal multi-head self-attention of qkv [B, T, 3C] (q, k, v concatenated) with n_head heads: y [B, T, C]."""
    n = _check_int(n_head, "attention: n_head")
    if n < 1:
        raise ArgumentError(f"attention: n_head must be >= 1, not {n}")
    return _new(C.lt_attention, _h(qkv, "attention: qkv"), n)


def layer_norm(x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, eps: float = 1e-5,
               return_stats: bool = False) -> "Tensor | Tuple[Tensor, Tensor, Tensor]":
    """Layer norm over the last dim with the biased variance. With return_stats, also (mean, rstd)."""
    out, mean, rstd = c_void_p(), c_void_p(), c_void_p()
    C.lt_layer_norm(_h(x, "layer_norm: x"), _h(weight, "layer_norm: weight"), _h(bias, "layer_norm: bias"),
                    float(eps), byref(out), byref(mean) if return_stats else None,
                    byref(rstd) if return_stats else None)
    y = Tensor._own(out.value)
    if return_stats:
        return y, Tensor._own(mean.value), Tensor._own(rstd.value)
    return y


def embedding(weight: Tensor, idx: Tensor) -> Tensor:
    """weight[idx]: rows of weight [V, C] for integer ids of any shape; the result is idx's shape + [C]."""
    return _new(C.lt_embedding, _h(weight, "embedding: weight"), _h(idx, "embedding: idx"))


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits [N, C] (or [C]) against integer targets [N], as torch.nn.functional.cross_entropy."""
    if reduction not in _REDUCTIONS:
        raise ArgumentError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    return _new(C.lt_cross_entropy, _h(logits, "cross_entropy: logits"), _h(targets, "cross_entropy: targets"),
                _check_int(ignore_index, "cross_entropy: ignore_index"), _REDUCTIONS[reduction])


def classifier_loss(x: Tensor, weight: Tensor, targets: Tensor, vocab_size: int, ignore_index: int = -1) -> Tensor:
    """The LM head and its loss fused: mean cross-entropy of x [N, C] @ weight[:vocab_size].T against targets."""
    return _new(C.lt_classifier_loss, _h(x, "classifier_loss: x"), _h(weight, "classifier_loss: weight"),
                _h(targets, "classifier_loss: targets"), _check_int(vocab_size, "classifier_loss: vocab_size"),
                _check_int(ignore_index, "classifier_loss: ignore_index"))


def dropout(x: Tensor, p: float, generator: Generator) -> Tensor:
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p), drawing from generator."""
    if not isinstance(generator, Generator):
        raise ArgumentError("dropout: generator must be a libtrain.Generator")
    return _new(C.lt_dropout, _h(x, "dropout: x"), float(p), byref(generator._state))


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    return x.gelu(approximate)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)
