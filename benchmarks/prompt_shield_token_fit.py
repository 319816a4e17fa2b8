"""Training of the direct shield's token head (:mod:`groundwire.plugins.prompt_shield.token_head`) with torch on
CPU, on MiniLM token states cached on disk; used by ``benchmarks.prompt_shield_direct_fit`` when
``Recipe.head == "token"`` (LOSO and the shipped artefact alike).

Cache: ``benchmarks/.cache/minilm-tokens/`` holds every text's last-layer token states as float16 rows of one
append-only file (``states.f16``) and an index (BLAKE2b of the text -> first row, rows), written after each
batch, so a long run stopped halfway keeps what it computed. The same run gives the sentence vector (their
unit mean): :data:`cached_tokens` also serves ``cached_embed`` of the direct fit, one model run per text.

The fit: ``logit = w2 . relu(W1 x + b1) + w_lin . x + hash + b`` over the token head's features ``x``
(attention heads, max and mean pooling, character features) and the hashed n-grams (an ``EmbeddingBag``),
weighted BCE (the recipe's per-(source, label) weights) with label smoothing, AdamW, L2 on the hashed weights
as in the logistic recipe; seeded, single-threaded batches in a seeded order, so a fit is reproducible.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from groundwire.plugins.prompt_shield.token_head import DIM, TokenHeadModel

__all__ = ["TokenConfig", "TokenMemo", "cached_tokens", "fit_token", "fixed_features"]

CACHE = Path(__file__).parent / ".cache" / "minilm-tokens"


class TokenMemo:
    """Token states per text, memoised on disk (see the module docstring); calling it returns float16 views."""

    def __init__(self, root: Path, batch: int = 256) -> None:
        self.root, self.batch = root, batch
        self._index: dict[str, tuple[int, int]] | None = None
        self._mm: np.ndarray | None = None
        self._rows = 0

    def _load(self) -> dict[str, tuple[int, int]]:
        if self._index is None:
            ix = self.root / "index.pkl"
            self._index = pickle.loads(ix.read_bytes()) if ix.exists() else {}
            data = self.root / "states.f16"
            self._rows = data.stat().st_size // (2 * DIM) if data.exists() else 0
            # rows past the index (a run killed mid-write) are simply never referenced
        return self._index

    def _view(self) -> np.ndarray:
        if self._mm is None or len(self._mm) < self._rows:
            self._rows = (self.root / "states.f16").stat().st_size // (2 * DIM)
            self._mm = np.memmap(self.root / "states.f16", np.float16, "r", shape=(self._rows, DIM))
        return self._mm

    def _compute(self, texts: list[str]) -> list[np.ndarray]:
        from groundwire.plugins.embedders import bundled_model_path, token_states

        return token_states(bundled_model_path(), "auto", texts, batch_size=64)[1]

    def _append(self, computed: list[tuple[str, np.ndarray]]) -> None:
        """Append states under an exclusive lock (LOSO folds may run as parallel processes): the index on disk
        is re-read and merged, rows go at the file's current end."""
        import fcntl

        index = self._load()
        with open(self.root / "lock", "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            ix = self.root / "index.pkl"
            if ix.exists():
                index.update(pickle.loads(ix.read_bytes()))
            with open(self.root / "states.f16", "ab") as fh:
                fh.seek(0, 2)
                rows = fh.tell() // (2 * DIM)
                if fh.tell() % (2 * DIM):  # a run killed mid-row: drop the partial row
                    fh.truncate(rows * 2 * DIM)
                    fh.seek(0, 2)
                for k, s in computed:
                    if k in index:
                        continue
                    fh.write(np.ascontiguousarray(s, np.float16).tobytes())
                    index[k] = (rows, len(s))
                    rows += len(s)
            tmp = ix.with_suffix(f".{id(self)}.tmp")
            tmp.write_bytes(pickle.dumps(index))
            tmp.replace(ix)
            self._rows = rows
            fcntl.flock(lk, fcntl.LOCK_UN)

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        index = self._load()
        keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
        miss = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in index}.items())
        if miss:
            self.root.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            for i in range(0, len(miss), self.batch):
                part = miss[i : i + self.batch]
                self._append(list(zip([k for k, _ in part], self._compute([t for _, t in part]), strict=True)))
                if len(miss) > self.batch:
                    print(f"    token states: {min(i + self.batch, len(miss))}/{len(miss)} texts "
                          f"({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
            self._mm = None
        mm = self._view()
        return [mm[a : a + n] for a, n in (index[k] for k in keys)]

    def vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's sentence vector (the unit mean of its states, as the ONNX encoder pools them)."""
        out = []
        for s in self(texts):
            m = np.asarray(s, np.float32).mean(axis=0)
            out.append((m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32))
        return out


cached_tokens = TokenMemo(CACHE)


@dataclass(frozen=True)
class TokenConfig:
    heads: int = 2
    hidden: int = 128
    epochs: int = 5
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    dropout: float = 0.1
    batch: int = 256
    l2_hash: float = 1.0


def _padded(states: Sequence[np.ndarray], order: np.ndarray, batch: int) -> list[tuple[np.ndarray, Any, Any]]:
    """Batches of similar length: ``(rows, states (b, t, 384) float16 tensor, mask (b, t) bool tensor)``."""
    import torch

    out = []
    for st in range(0, len(order), batch):
        rows = order[st : st + batch]
        width = max(max(len(states[i]) for i in rows), 1)
        x = np.zeros((len(rows), width, DIM), np.float16)
        m = np.zeros((len(rows), width), bool)
        for j, i in enumerate(rows):
            n = len(states[i])
            x[j, :n] = states[i]
            m[j, :n] = True
        out.append((rows, torch.from_numpy(x), torch.from_numpy(m)))
    return out


def fixed_features(states: Sequence[np.ndarray]) -> np.ndarray:
    """Per text: the unit mean of its states and their per-dimension max (not standardised), float32."""
    out = np.zeros((len(states), 2 * DIM), np.float32)
    for i, st in enumerate(states):
        s32 = np.asarray(st, np.float32)
        m = s32.mean(axis=0)
        out[i, :DIM] = m / max(float(np.linalg.norm(m)), 1e-12)
        out[i, DIM:] = s32.max(axis=0)
    return out


def fit_token(states: Sequence[np.ndarray], chars: np.ndarray, hashed: Sequence[tuple[np.ndarray, np.ndarray]],
              y: np.ndarray, sw: np.ndarray, cfg: TokenConfig, hash_bits: int, seed: int = 0,
              log: bool = False, fixed_raw: np.ndarray | None = None) -> TokenHeadModel:
    """Fit the token head on the items given (``sw``: per-item loss weights; ``fixed_raw``: their
    :func:`fixed_features`, computed here when not given); threshold 0.5 (the caller sets it)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(y)
    lens = np.array([len(s) for s in states])
    sample = rng.choice(n, min(n, 1000), replace=False)
    toks = np.concatenate([np.asarray(states[i], np.float32) for i in sample])
    mu_tok, sd_tok = toks.mean(0), toks.std(0) + 1e-3
    mu, sd = chars.mean(0).astype(np.float32), (chars.std(0) + 1e-3).astype(np.float32)
    cz = torch.from_numpy(((chars - mu) / sd).astype(np.float32))
    d_in = DIM * (2 + cfg.heads) + chars.shape[1]
    nh = 1 << hash_bits

    q = nn.Parameter(torch.randn(cfg.heads, DIM) * 0.05)
    l1, l2, lin = nn.Linear(d_in, cfg.hidden), nn.Linear(cfg.hidden, 1, bias=False), nn.Linear(d_in, 1)
    bag = nn.EmbeddingBag(nh, 1, mode="sum", sparse=True)  # a batch touches a few thousand of 2^18 weights
    nn.init.zeros_(bag.weight)
    nn.init.zeros_(lin.weight)
    drop = nn.Dropout(cfg.dropout)
    mu_t, sd_t = torch.from_numpy(mu_tok), torch.from_numpy(sd_tok)
    dense = [q, *l1.parameters(), *l2.parameters(), *lin.parameters()]
    opt = torch.optim.AdamW(dense, lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_bag = torch.optim.SparseAdam(list(bag.parameters()), lr=cfg.lr)
    order = np.argsort(lens, kind="stable")
    batches = _padded(states, order, cfg.batch)
    yt = torch.from_numpy(y.astype(np.float32))
    target = yt * (1 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
    wt = torch.from_numpy((sw / sw.mean()).astype(np.float32))

    # fixed per item: the unit mean and the per-dimension max of the raw states (standardising is per-dimension
    # affine with sd > 0, so it commutes with the max); only the attention part reads the tokens in training
    fixed = (fixed_features(states) if fixed_raw is None else fixed_raw).copy()
    fixed[:, DIM:] = (fixed[:, DIM:] - mu_tok) / sd_tok
    fx = torch.from_numpy(fixed)

    def forward(rows: np.ndarray, x16: Any, mask: Any, train: bool) -> Any:
        s32 = x16.float()
        # softmax over tokens of z . q with z = (s - mu) / sd is softmax of s . (q / sd) (the shift cancels), and
        # the weighted mean of z is (the weighted mean of s - mu) / sd: no standardised copy of the tokens
        a = torch.matmul(s32, (q / sd_t).T) / DIM ** 0.5  # (b, t, heads)
        a = a.masked_fill(~mask[..., None], -1e4).softmax(1)
        att = ((torch.matmul(a.transpose(1, 2), s32) - mu_t) / sd_t).reshape(len(rows), -1)
        rt = torch.from_numpy(rows)
        x = torch.cat([fx[rt], att, cz[rt]], 1)
        if train:
            x = drop(x)
        ids = [hashed[i][0] for i in rows]
        off = torch.from_numpy(np.concatenate([[0], np.cumsum([len(v) for v in ids])[:-1]]).astype(np.int64))
        flat = torch.from_numpy(np.concatenate(ids).astype(np.int64))
        vals = torch.from_numpy(np.concatenate([hashed[i][1] for i in rows]).astype(np.float32))
        hz = bag(flat, off, per_sample_weights=vals)[:, 0]
        return l2(torch.relu(l1(x)))[:, 0] + lin(x)[:, 0] + hz, flat

    t0 = time.perf_counter()
    for ep in range(cfg.epochs):
        tot = 0.0
        for bi in rng.permutation(len(batches)):
            rows, x16, mask = batches[bi]
            rt = torch.from_numpy(rows)
            logit, flat = forward(rows, x16, mask, True)
            loss = (nn.functional.binary_cross_entropy_with_logits(logit, target[rt], reduction="none")
                    * wt[rt]).sum() / n
            # L2 on the hashed weights this batch reads, its share of the epoch (sparse updates stay sparse)
            seen = torch.unique(flat)
            loss = loss + 0.5 * cfg.l2_hash * (bag(seen, torch.arange(len(seen)))[:, 0] ** 2).sum() * len(rows) / n / n
            opt.zero_grad()
            opt_bag.zero_grad()
            loss.backward()
            opt.step()
            opt_bag.step()
            tot += float(loss.detach())
        if log:
            print(f"      epoch {ep + 1}/{cfg.epochs}: loss {tot:.4f} ({time.perf_counter() - t0:.0f}s)",
                  file=sys.stderr, flush=True)
    w1 = l1.weight.detach().numpy().T.copy()
    return TokenHeadModel(
        q.detach().numpy().copy(), mu_tok.astype(np.float32), sd_tok.astype(np.float32), mu, sd, w1,
        l1.bias.detach().numpy().copy(), l2.weight.detach().numpy()[0].copy(), lin.weight.detach().numpy()[0].copy(),
        bag.weight.detach().numpy()[:, 0].copy(), float(lin.bias.detach()), 0.5, hash_bits)
