"""libtrain.nn: the GPT model (lt_gpt) and small layer modules over ParameterSets, plus ``functional``."""
from __future__ import annotations

import dataclasses
from ctypes import POINTER, byref, c_int32, c_void_p
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _lib
from . import functional
from ._lib import C
from .errors import ArgumentError
from .params import ParameterSet
from .tensor import (Device, DeviceLike, DTypeLike, Generator, Tensor, _check_int, _dtype, _h, float32, from_numpy,
                     randn)

__all__ = ["GPTConfig", "GPT", "Module", "Linear", "Embedding", "LayerNorm", "CausalSelfAttention", "functional"]


@dataclasses.dataclass
class GPTConfig:
    """lt_gpt_config. padded_vocab_size 0 means vocab_size; dropout applies in training mode only."""
    vocab_size: int = 256
    padded_vocab_size: int = 0
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def _c(self) -> _lib.lt_gpt_config:
        c = _lib.lt_gpt_config()
        c.struct_size = _lib.ctypes.sizeof(c)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "dropout":
                v = _check_int(v, f"GPTConfig.{f.name}")
            setattr(c, f.name, v)
        return c

    @classmethod
    def _from_c(cls, c: _lib.lt_gpt_config) -> "GPTConfig":
        return cls(**{f.name: getattr(c, f.name) for f in dataclasses.fields(cls)})


class GPT:
    """A GPT-2 model (lt_gpt): GPT-2's parameter names and initialisation from Philox(seed), LM head tied to wte.

    ``logits, loss = model(idx, targets)``; ``model.parameters()``, ``model.named_parameters()``,
    ``model.params`` (the ParameterSet that optimizers take), ``model.generate(prompt, n_new)``."""

    def __init__(self, config: Optional[GPTConfig] = None, dtype: DTypeLike = float32, device: DeviceLike = "cpu",
                 seed: int = 1337, *, _handle: Optional[int] = None, _owner: Any = None, **overrides: Any) -> None:
        self._owner = _owner
        if _handle is not None:
            self._h, self._owned = _handle, False
        else:
            cfg = dataclasses.replace(config or GPTConfig(), **overrides)
            c = cfg._c()
            out = c_void_p()
            C.lt_gpt_create(byref(c), int(_dtype(dtype)), Device(device)._c(), _check_int(seed, "GPT: seed"),
                            byref(out))
            self._h, self._owned = out.value, True
        self.params = ParameterSet(_handle=C.lt_gpt_params(self._h), _owner=self)

    def __del__(self, _free: Any = C.lt_gpt_free) -> None:
        if getattr(self, "_owned", False) and self._h:
            _free(self._h)
            self._h = None

    @property
    def config(self) -> GPTConfig:
        c = _lib.lt_gpt_config()
        c.struct_size = _lib.ctypes.sizeof(c)
        C.lt_gpt_get_config(self._h, byref(c))
        return GPTConfig._from_c(c)

    @property
    def rng(self) -> Tuple[int, int]:
        """The dropout stream's (seed, offset)."""
        p = C.lt_gpt_rng(self._h).contents
        return int(p.seed), int(p.offset)

    @rng.setter
    def rng(self, state: Tuple[int, int]) -> None:
        p = C.lt_gpt_rng(self._h).contents
        p.seed, p.offset = state

    def parameters(self) -> Iterator[Tensor]:
        return self.params.parameters()

    def named_parameters(self) -> Iterator[Tuple[str, Tensor]]:
        return self.params.named_parameters()

    def num_parameters(self) -> int:
        return self.params.numel()

    def zero_grad(self, lazy: bool = False) -> None:
        self.params.zero_grad(lazy)

    def forward(self, idx: Any, targets: Any = None, train: bool = False,
                return_logits: bool = True) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Runs the model on ids idx [B, T] (a Tensor or an integer array). Returns (logits [B, T, padded_vocab],
        loss): loss is None without targets; logits is None with return_logits=False (cheaper in training)."""
        idx_t = idx if isinstance(idx, Tensor) else from_numpy(np.asarray(idx, dtype=np.int32))
        tgt_t = None if targets is None else (
            targets if isinstance(targets, Tensor) else from_numpy(np.asarray(targets, dtype=np.int32)))
        if not return_logits and tgt_t is None:
            raise ArgumentError("GPT.forward: without targets, logits must be returned")
        lo, ls = c_void_p(), c_void_p()
        C.lt_gpt_forward(self._h, idx_t._h, _h(tgt_t), bool(train), byref(lo) if return_logits else None,
                         byref(ls) if tgt_t is not None else None)
        return (Tensor._own(lo.value) if return_logits else None,
                Tensor._own(ls.value) if tgt_t is not None else None)

    __call__ = forward

    def generate(self, prompt: Sequence[int], n_new: int, temperature: float = 1.0, top_k: int = 0,
                 seed: int = 0) -> List[int]:
        """prompt followed by n_new ids sampled with temperature and top_k (0: all tokens) from Philox(seed)."""
        ids = [_check_int(i, "generate: prompt id") for i in prompt]
        n = _check_int(n_new, "generate: n_new")
        if not ids or n < 0:
            raise ArgumentError("generate: needs a non-empty prompt and n_new >= 0")
        buf = (c_int32 * (len(ids) + n))(*ids)
        C.lt_gpt_sample(self._h, buf, len(ids), n, float(temperature), _check_int(top_k, "generate: top_k"),
                        _check_int(seed, "generate: seed"), buf)
        return list(buf)

    def __repr__(self) -> str:
        return f"GPT({self.config}, {self.num_parameters()} parameters)"


class Module:
    """A layer holding its parameters in a ParameterSet (its own, or one shared by several modules via
    ``params=``, under a name prefix)."""

    def __init__(self, params: Optional[ParameterSet], prefix: str) -> None:
        self.params = params if params is not None else ParameterSet()
        self.prefix = prefix

    def _add(self, name: str, *shape: int) -> Tensor:
        return self.params.add(f"{self.prefix}{name}", *shape)

    def parameters(self) -> Iterator[Tensor]:
        return (t for n, t in self.named_parameters())

    def named_parameters(self) -> Iterator[Tuple[str, Tensor]]:
        return ((n, t) for n, t in self.params.named_parameters() if n.startswith(self.prefix))

    def __call__(self, *args: Any) -> Tensor:
        return self.forward(*args)  # type: ignore[attr-defined]


class Linear(Module):
    """y = x @ weight + bias with weight [in, out] (GPT-2's layout), initialised N(0, std) from a Generator."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, params: Optional[ParameterSet] = None,
                 prefix: str = "", std: float = 0.02, generator: Optional[Generator] = None) -> None:
        super().__init__(params, prefix)
        self.weight = self._add("weight", in_features, out_features)
        self.weight.copy_(randn(in_features, out_features, generator=generator or Generator(0)) * std)
        self.bias = self._add("bias", out_features) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return functional.linear(x, self.weight, self.bias)


class Embedding(Module):
    """A lookup table weight [num, dim], initialised N(0, std)."""

    def __init__(self, num: int, dim: int, *, params: Optional[ParameterSet] = None, prefix: str = "",
                 std: float = 0.02, generator: Optional[Generator] = None) -> None:
        super().__init__(params, prefix)
        self.weight = self._add("weight", num, dim)
        self.weight.copy_(randn(num, dim, generator=generator or Generator(0)) * std)
        self.params.set_decay(f"{prefix}weight", False)

    def forward(self, idx: Tensor) -> Tensor:
        return functional.embedding(self.weight, idx)


class LayerNorm(Module):
    """Layer norm over the last dim with weight 1 and bias 0 at start."""

    def __init__(self, dim: int, eps: float = 1e-5, *, params: Optional[ParameterSet] = None, prefix: str = "") -> None:
        super().__init__(params, prefix)
        self.eps = eps
        self.weight = self._add("weight", dim)
        self.weight.copy_(1.0)
        self.bias = self._add("bias", dim)

    def forward(self, x: Tensor) -> Tensor:
        return functional.layer_norm(x, self.weight, self.bias, self.eps)  # type: ignore[return-value]


class CausalSelfAttention(Module):
    """GPT-2's attention block: c_attn (Linear C -> 3C), fused causal attention, c_proj (Linear C -> C)."""

    def __init__(self, n_embd: int, n_head: int, *, params: Optional[ParameterSet] = None, prefix: str = "",
                 generator: Optional[Generator] = None) -> None:
        super().__init__(params, prefix)
        g = generator or Generator(0)
        self.n_head = n_head
        self.c_attn = Linear(n_embd, 3 * n_embd, params=self.params, prefix=f"{prefix}c_attn.", generator=g)
        self.c_proj = Linear(n_embd, n_embd, params=self.params, prefix=f"{prefix}c_proj.", generator=g)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(functional.attention(self.c_attn(x), self.n_head))
