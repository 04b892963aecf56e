"""A GPT-2 written with plain torch ops, independent of libtrain: the reference that libtrain's model is checked
against. Parameter names and layouts are GPT-2's (Conv1D weights are [in, out]); the LM head is tied to wte."""
import math

import torch
import torch.nn.functional as F


class GPT(torch.nn.Module):
    def __init__(self, vocab_size, padded_vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.vocab_size, self.n_head = vocab_size, n_head
        C = n_embd
        p = torch.nn.ParameterDict()
        self.names = ["wte.weight", "wpe.weight"]
        shapes = {"wte.weight": (padded_vocab_size, C), "wpe.weight": (block_size, C)}
        for l in range(n_layer):
            for suffix, shape in [
                ("ln_1.weight", (C,)), ("ln_1.bias", (C,)),
                ("attn.c_attn.weight", (C, 3 * C)), ("attn.c_attn.bias", (3 * C,)),
                ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
                ("mlp.c_fc.weight", (C, 4 * C)), ("mlp.c_fc.bias", (4 * C,)),
                ("mlp.c_proj.weight", (4 * C, C)), ("mlp.c_proj.bias", (C,)),
            ]:
                name = f"h.{l}.{suffix}"
                self.names.append(name)
                shapes[name] = shape
        self.names += ["ln_f.weight", "ln_f.bias"]
        shapes["ln_f.weight"] = (C,)
        shapes["ln_f.bias"] = (C,)
        self.n_layer = n_layer
        # ParameterDict keys cannot contain '.', so store under mangled keys and map names to them.
        for name in self.names:
            p[name.replace(".", "__")] = torch.nn.Parameter(torch.zeros(shapes[name]))
        self.p = p

    def param(self, name):
        return self.p[name.replace(".", "__")]

    def named(self):
        return [(n, self.param(n)) for n in self.names]

    def forward(self, idx, targets=None):
        B, T = idx.shape
        C = self.param("wte.weight").shape[1]
        H = self.n_head
        x = self.param("wte.weight")[idx] + self.param("wpe.weight")[:T]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        # The linear layers are F.linear (addmm, the bias added in the product), as torch.nn.Linear runs them:
        # bench/train_step_torch.py times this model, and F.linear's step is 2% faster than a product and an add.
        for l in range(self.n_layer):
            w = lambda s: self.param(f"h.{l}.{s}")
            h = F.layer_norm(x, (C,), w("ln_1.weight"), w("ln_1.bias"), 1e-5)
            qkv = F.linear(h, w("attn.c_attn.weight").t(), w("attn.c_attn.bias"))
            q, k, v = qkv.split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
            att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + F.linear(y, w("attn.c_proj.weight").t(), w("attn.c_proj.bias"))
            h = F.layer_norm(x, (C,), w("ln_2.weight"), w("ln_2.bias"), 1e-5)
            h = F.gelu(F.linear(h, w("mlp.c_fc.weight").t(), w("mlp.c_fc.bias")), approximate="tanh")
            x = x + F.linear(h, w("mlp.c_proj.weight").t(), w("mlp.c_proj.bias"))
        x = F.layer_norm(x, (C,), self.param("ln_f.weight"), self.param("ln_f.bias"), 1e-5)
        logits = x @ self.param("wte.weight").t()
        loss = None
        if targets is not None:
            V = self.vocab_size
            loss = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        return logits, loss


def lr_cosine(step, warmup, total, max_lr, min_lr):
    """Linear warm-up then cosine decay, written independently of libtrain's lt_lr_cosine."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def adamw(model, lr, wd):
    """torch.optim.AdamW with decay on matrices except the embeddings, as libtrain's GPT sets it."""
    decay = [p for n, p in model.named() if p.dim() >= 2 and not n.startswith(("wte", "wpe"))]
    rest = [p for n, p in model.named() if not (p.dim() >= 2 and not n.startswith(("wte", "wpe")))]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)
