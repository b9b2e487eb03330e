"""Shared references for the Hessian tests: matrices with known spectra and the exact Hessian of a tiny model."""

import torch
from torch import nn
from torch.func import functional_call

EIGS = [10.0, 7.0, 5.0, 3.0, 2.5, 1.0, 0.5, 0.1, -0.2, -1.0] + [0.01 * i for i in range(40)]


def known_matrix(eigs, seed=0):
    """A dense symmetric matrix Q diag(eigs) Q^T with a random orthogonal Q (float64)."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def tiny_model_and_data(seed=0):
    """A float64 tanh MLP (74 parameters) and 40 samples in two batches of unequal size."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return model, [(x[:15], y[:15]), (x[15:], y[15:])]


def random_mask(model, seed=1):
    """A mask keeping ~60% of every weight matrix; the masked-out weights are zeroed in ``model``."""
    g = torch.Generator().manual_seed(seed)
    mask = {n: torch.rand(p.shape, generator=g) > 0.4 for n, p in model.named_parameters() if n.endswith("weight")}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    return mask


def exact_hessian(model, data):
    """The Hessian of the mean cross-entropy over all of ``data`` by ``torch.func.hessian``, (dim, dim)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])

    def loss(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = theta[i : i + s.numel()].view(s)
            i += s.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.func.hessian(loss)(flat)


def mask_keep(model, mask):
    """Bool (dim,) of the coordinates the mask subspace keeps, in parameter order."""
    return torch.cat(
        [
            mask[n].flatten() if n in mask else torch.ones(p.numel(), dtype=torch.bool)
            for n, p in model.named_parameters()
        ]
    )


def _logits_and_jacobian(model, data):
    """Logits (N, C) and their Jacobian (N, C, dim) w.r.t. all parameters, by ``torch.func.jacrev``."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    x = torch.cat([b[0] for b in data])

    def logits(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = theta[i : i + s.numel()].view(s)
            i += s.numel()
        return functional_call(model, params, (x,))

    return logits(flat).detach(), torch.func.jacrev(logits)(flat)


def exact_ggn(model, data):
    """The GGN Jᵀ (diag(p) − ppᵀ) J / N, with J formed explicitly, (dim, dim)."""
    z, jac = _logits_and_jacobian(model, data)
    p = torch.softmax(z, -1)
    h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return torch.einsum("ncd,nce,nef->df", jac, h_out, jac) / len(z)


def per_sample_gradients(model, data):
    """Per-sample gradients of the cross-entropy (N, dim), one backward pass per sample."""
    rows = []
    for x, y in data:
        for i in range(len(y)):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    return torch.stack(rows)


def exact_empirical_fisher(model, data):
    """The mean of per-sample gradient outer products, (dim, dim)."""
    g = per_sample_gradients(model, data)
    return g.T @ g / len(g)
