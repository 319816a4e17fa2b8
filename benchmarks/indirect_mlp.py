"""The indirect unit head's one-hidden-layer network, trained with torch on CPU (training only; the shipped head
is numpy, :class:`groundwire.plugins.prompt_shield.indirect_model.IndirectModel`).

Mini-batch AdamW on the cached feature rows, class-balanced (positives weighted up to the negatives' total),
the caller's per-row weights on top, early stopping on an inner split of the training *documents* (every
tenth document by a hash of its number: no document has units on both sides). Deterministic for a given
``seed`` (one torch thread, seeded generator). Replaces scikit-learn's ``MLPClassifier``, which did not finish
one LOSO fold in 15 minutes on the loaded 2-core machine; this fits one in well under a minute.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["fit_mlp", "side_by_side"]


def fit_mlp(
    xs: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    groups: np.ndarray,
    *,
    hidden: int = 64,
    weight_decay: float = 1e-4,
    max_epochs: int = 30,
    patience: int = 3,
    batch: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit on standardised rows ``xs`` (labels ``y``, weights ``weight``, document ``groups``); returns
    ``(w1 [features x hidden], b1, w2 [hidden], b2)`` of the epoch with the lowest validation loss."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        val = np.array([int(hashlib.blake2b(str(g).encode(), digest_size=4).hexdigest(), 16) % 10 == 0
                        for g in groups])
        if val.all() or not val.any():
            val = np.arange(len(y)) % 10 == 0
        pos_w = (y == 0).sum() / max(int((y == 1).sum()), 1)
        sw = np.where(y == 1, pos_w, 1.0) * weight
        sw = sw / sw.mean()
        xt = torch.from_numpy(np.ascontiguousarray(xs, np.float32))
        yt = torch.from_numpy(y.astype(np.float32))
        st = torch.from_numpy(sw.astype(np.float32))
        tr, va = torch.from_numpy(np.flatnonzero(~val)), torch.from_numpy(np.flatnonzero(val))
        net = torch.nn.Sequential(torch.nn.Linear(xs.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        bce = torch.nn.functional.binary_cross_entropy_with_logits

        def loss(ix: torch.Tensor) -> torch.Tensor:
            return (bce(net(xt[ix])[:, 0], yt[ix], reduction="none") * st[ix]).mean()

        best, state, bad = float("inf"), [p.detach().clone() for p in net.parameters()], 0
        for _ in range(max_epochs):
            net.train()
            perm = tr[torch.randperm(len(tr), generator=gen)]
            for i in range(0, len(perm), batch):
                step = loss(perm[i : i + batch])
                opt.zero_grad()
                step.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                v = float(loss(va))
            if v < best - 1e-4:
                best, bad = v, 0
                state = [p.detach().clone() for p in net.parameters()]
            else:
                bad += 1
                if bad >= patience:
                    break
        w1, b1, w2, b2 = (p.numpy() for p in state)
        return w1.T.copy(), b1.copy(), w2[0].copy(), float(b2[0])
    finally:
        torch.set_num_threads(threads)


Net = tuple[np.ndarray, np.ndarray, np.ndarray, float]


def side_by_side(nets: list[Net]) -> Net:
    """One network whose logit is the mean of ``nets``' logits (each ``(w1, b1, w2, b2)`` as :func:`fit_mlp`
    returns): the hidden layers side by side, the output weights divided by their number, the mean bias. So an
    ensemble of seeds ships in the artefact format of a single wider network."""
    w1 = np.hstack([n[0] for n in nets])
    b1 = np.concatenate([n[1] for n in nets])
    w2 = np.concatenate([n[2] for n in nets]) / len(nets)
    return w1, b1, w2, float(np.mean([n[3] for n in nets]))
