"""Every op against NumPy (and PyTorch where NumPy has no twin), forward and, for the differentiable ones, backward."""
import math

import numpy as np
import pytest
import torch

import libtrain as lt
import libtrain.functional as F

rng = np.random.default_rng(1234)


def rnd(*shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def close(t, ref, tol=1e-5):
    got = t.numpy() if isinstance(t, lt.Tensor) else np.asarray(t)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5))])
def test_binary_broadcast(op, shapes):
    a, b = rnd(*shapes[0], positive=op == "pow"), rnd(*shapes[1], positive=op in ("div", "pow"))
    ta, tb = lt.from_numpy(a), lt.from_numpy(b)
    f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power}[op]
    res = {"add": ta + tb, "sub": ta - tb, "mul": ta * tb, "div": ta / tb, "pow": ta ** tb}[op]
    close(res, f(a, b), 1e-5)


def test_scalars_both_sides():
    a = rnd(3, 4, positive=True)
    t = lt.from_numpy(a)
    close(t + 2.5, a + 2.5)
    close(2.5 + t, a + 2.5)
    close(t - 1.5, a - 1.5)
    close(1.5 - t, 1.5 - a)
    close(t * 3, a * 3)
    close(3 * t, a * 3)
    close(t / 4, a / 4)
    close(4 / t, 4 / a)
    close(t ** 2, a ** 2)
    close(2 ** t, 2 ** a, 1e-5)
    close(-t, -a)


@pytest.mark.parametrize("name,ref", [
    ("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("rsqrt", lambda x: 1 / np.sqrt(x)), ("tanh", np.tanh),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))), ("relu", lambda x: np.maximum(x, 0))])
def test_unary(name, ref):
    a = rnd(5, 7, positive=name in ("log", "sqrt", "rsqrt"))
    close(getattr(lt.from_numpy(a), name)(), ref(a), 1e-5)


def test_gelu_both_forms():
    a = rnd(4, 9)
    x = torch.from_numpy(a)
    close(lt.from_numpy(a).gelu("tanh"), torch.nn.functional.gelu(x, approximate="tanh").numpy(), 1e-5)
    close(lt.from_numpy(a).gelu("none"), torch.nn.functional.gelu(x).numpy(), 1e-5)


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_reductions(dim, keepdim):
    a = rnd(3, 4, 5)
    t = lt.from_numpy(a)
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
    close(t.sum(dim, keepdim), a.sum(axis=axis, keepdims=keepdim), 1e-5)
    close(t.mean(dim, keepdim), a.mean(axis=axis, keepdims=keepdim), 1e-5)
    close(t.max(dim, keepdim), a.max(axis=axis, keepdims=keepdim), 1e-6)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 6)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul(sa, sb):
    a, b = rnd(*sa), rnd(*sb)
    close(lt.from_numpy(a) @ lt.from_numpy(b), a @ b, 1e-4)


def test_matmul_transposed_flags_and_T():
    a, b = rnd(4, 3), rnd(5, 3)
    ta, tb = lt.from_numpy(a), lt.from_numpy(b)
    close(ta.matmul(tb, trans_b=True), a @ b.T, 1e-4)
    close(ta.T @ lt.from_numpy(rnd(4, 2) * 0 + a[:, :2]), a.T @ a[:, :2], 1e-4)
    close(ta.T, a.T)


def test_softmax_log_softmax():
    a = rnd(3, 6)
    e = np.exp(a - a.max(-1, keepdims=True))
    close(lt.from_numpy(a).softmax(-1), e / e.sum(-1, keepdims=True), 1e-6)
    close(lt.from_numpy(a).log_softmax(0), torch.from_numpy(a).log_softmax(0).numpy(), 1e-5)


def test_indexing_and_views():
    a = rnd(4, 5, 6)
    t = lt.from_numpy(a)
    close(t[1], a[1])
    close(t[-1, 2:5], a[-1, 2:5])
    close(t[:, ::2, 1:], a[:, ::2, 1:])
    close(t[..., 3], a[..., 3])
    close(t[1:3, 4], a[1:3, 4])
    close(t.reshape(20, 6), a.reshape(20, 6))
    close(t.reshape(-1), a.reshape(-1))
    close(t.permute(2, 0, 1), a.transpose(2, 0, 1))
    close(t.transpose(0, 2), a.transpose(2, 1, 0))
    close(lt.from_numpy(rnd(1, 6) * 0 + a[0, :1]).expand(3, 6), np.broadcast_to(a[0, :1], (3, 6)))
    close(t[1:3].contiguous(), a[1:3])
    assert t[1:3].shape == (2, 5, 6)
    assert t[0, 0, 0].shape == ()


def test_cat_split_where_masked_fill():
    a, b = rnd(2, 3), rnd(4, 3)
    close(lt.cat([lt.from_numpy(a), lt.from_numpy(b)], 0), np.concatenate([a, b]))
    parts = lt.split(lt.from_numpy(b), [1, 3], 0)
    close(parts[0], b[:1])
    close(parts[1], b[1:])
    mask = (rnd(4, 3) > 0).astype(np.uint8)
    close(lt.where(lt.from_numpy(mask), lt.from_numpy(b), lt.from_numpy(b * 2)), np.where(mask, b, b * 2))
    close(lt.from_numpy(b).masked_fill(lt.from_numpy(mask), -7.0), np.where(mask, -7.0, b))


def test_creation_and_dtypes():
    close(lt.zeros(2, 3), np.zeros((2, 3)))
    close(lt.ones((2, 3), dtype=np.float64), np.ones((2, 3)))
    close(lt.full((2, 2), 3.5), np.full((2, 2), 3.5))
    close(lt.arange(5), np.arange(5))
    close(lt.arange(1, 2, 0.25, dtype="f64"), np.arange(1, 2, 0.25))
    for d in (np.float32, np.float64, np.float16, np.int32, np.int64, np.uint16, np.uint8):
        a = (rnd(3, 4) * 10).astype(d)
        t = lt.from_numpy(a)
        assert t.numpy().dtype == d
        np.testing.assert_array_equal(t.numpy(), a)
    b = lt.tensor([1.0, 2.5]).to(lt.bfloat16)
    assert b.dtype == lt.bfloat16
    np.testing.assert_array_equal(b.numpy(), np.array([1.0, 2.5], np.float32))
    u = lt.rand(1000, generator=lt.Generator(3))
    assert 0 < u.numpy().min() and u.numpy().max() <= 1
    n = lt.randn(4000, generator=lt.Generator(3)).numpy()
    assert abs(n.mean()) < 0.1 and abs(n.std() - 1) < 0.1


def test_layer_norm_embedding_linear_cross_entropy():
    x, w, b = rnd(2, 3, 8), rnd(8), rnd(8)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    close(F.layer_norm(lt.from_numpy(x), lt.from_numpy(w), lt.from_numpy(b)), (x - mu) / np.sqrt(var + 1e-5) * w + b, 1e-5)
    table, idx = rnd(10, 4), np.array([[1, 3], [9, 0]], np.int64)
    close(F.embedding(lt.from_numpy(table), lt.from_numpy(idx)), table[idx])
    lw, lb = rnd(8, 5), rnd(5)
    close(F.linear(lt.from_numpy(x), lt.from_numpy(lw), lt.from_numpy(lb)), x @ lw + lb, 1e-5)
    logits, tgt = rnd(6, 7), np.array([0, 6, 2, 3, -100, 1], np.int64)
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(tgt)).item()
    close(F.cross_entropy(lt.from_numpy(logits), lt.from_numpy(tgt)), ref, 1e-5)


def test_attention_matches_torch():
    B, T, C, H = 2, 5, 8, 2
    qkv = rnd(B, T, 3 * C)
    q, k, v = (torch.from_numpy(z).view(B, T, H, C // H).transpose(1, 2) for z in np.split(qkv, 3, axis=-1))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
    att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
    ref = (att @ v).transpose(1, 2).reshape(B, T, C).numpy()
    close(F.attention(lt.from_numpy(qkv), H), ref, 1e-5)


def test_gradients_vs_torch():
    a, b, c = rnd(3, 4), rnd(4, 5), rnd(3, 5)
    ta, tb = lt.from_numpy(a, requires_grad=True), lt.from_numpy(b, requires_grad=True)
    loss = ((ta @ tb).gelu().softmax(-1) * lt.from_numpy(c)).sum() + (ta.exp() / 3).mean() + (tb[1:3] ** 2).sum()
    loss.backward()
    xa, xb = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    ref = ((torch.nn.functional.gelu(xa @ xb, approximate="tanh").softmax(-1) * torch.from_numpy(c)).sum()
           + (xa.exp() / 3).mean() + (xb[1:3] ** 2).sum())
    ref.backward()
    close(loss, ref.item(), 1e-5)
    close(ta.grad, xa.grad.numpy(), 1e-5)
    close(tb.grad, xb.grad.numpy(), 1e-5)


def test_backward_with_gradient_and_no_grad():
    a = rnd(3, 4)
    t = lt.from_numpy(a, requires_grad=True)
    g = rnd(3, 4)
    (t * t).backward(lt.from_numpy(g))
    close(t.grad, 2 * a * g, 1e-5)
    with lt.no_grad():
        assert not lt.is_grad_enabled()
        assert not (t * 2).requires_grad
    assert lt.is_grad_enabled()
