"""libtrain's GPT through the bindings against tests/reference/gpt_reference.GPT with the same weights: logits,
loss and every parameter's gradient; then AdamW + clipping + the cosine schedule for a few steps, every other one as
the trainer runs it (gradients zeroed lazily, the clip factor applied inside AdamW)."""
import numpy as np
import torch

import libtrain as lt
from gpt_reference import GPT as RefGPT, adamw, lr_cosine


def test_gpt_matches_torch_reference():
    cfg = lt.nn.GPTConfig(vocab_size=50, padded_vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = lt.nn.GPT(cfg, seed=7)
    ref = RefGPT(50, 64, 16, 2, 2, 32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            ref.param(name).copy_(torch.from_numpy(p.numpy()))
    assert [n for n, _ in model.named_parameters()] == ref.names
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 50, (3, 12)).astype(np.int32)
    tgt = rng.integers(0, 50, (3, 12)).astype(np.int32)
    tgt[0, :3] = -1
    logits, loss = model(idx, tgt)
    loss.backward()
    rlogits, rloss = ref(torch.from_numpy(idx).long(), torch.from_numpy(tgt).long())
    rloss.backward()
    np.testing.assert_allclose(logits.numpy(), rlogits.detach().numpy(), atol=1e-5)
    assert abs(loss.item() - rloss.item()) < 1e-5
    for name, p in model.named_parameters():
        g, rg = p.grad.numpy(), ref.param(name).grad.numpy()
        assert np.abs(g - rg).max() / max(np.abs(rg).max(), 1e-30) < 1e-4, name

    opt = lt.optim.AdamW(model, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ropt = adamw(ref, 1e-2, 0.1)
    for step in range(4):
        fused = step % 2 == 1
        lr = lt.optim.lr_cosine(step, 2, 4, 1e-2, 1e-3)
        assert abs(lr - lr_cosine(step, 2, 4, 1e-2, 1e-3)) < 1e-12
        model.zero_grad(lazy=fused)
        ropt.zero_grad()
        _, loss = model(idx, tgt, return_logits=False)
        loss.backward()
        _, rloss = ref(torch.from_numpy(idx).long(), torch.from_numpy(tgt).long())
        rloss.backward()
        norm = lt.optim.clip_grad_norm(model, 0.0 if fused else 1.0)  # max_norm 0 only measures
        rnorm = torch.nn.utils.clip_grad_norm_([p for _, p in ref.named()], 1.0).item()
        assert abs(norm - rnorm) / rnorm < 1e-4
        opt.lr = lr
        for g in ropt.param_groups:
            g["lr"] = lr
        opt.step(lt.optim.clip_coef(norm, 1.0) if fused else 1.0)
        ropt.step()
        assert abs(loss.item() - rloss.item()) < 1e-4
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.numpy(), ref.param(name).detach().numpy(), atol=1e-4)
    assert opt.steps == 4
    assert len(model.generate([1, 2, 3], 5, temperature=1.0, top_k=5, seed=1)) == 8
