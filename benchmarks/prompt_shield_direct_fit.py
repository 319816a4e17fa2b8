"""The direct prompt-shield recipe, shared by training (``benchmarks.train_prompt_shield --direct-sources``) and
the leave-one-source-out benchmark (``benchmarks.prompt_shield --loso``), so the figure LOSO prints is the
figure of the artefact that ships.

Recipe: each training prompt's first model window (:func:`ps.windows` of :func:`ps.for_model`), plus seeded
augmentations made from the training rows only: attacks with a benign prefix of another training prompt
before them (the payload then shares its window with filler, as after a padding flood) and benign prompts
joined to another benign prompt (so that joining is not itself a cue). Features: MiniLM embedding, character
features, hashed n-grams (:mod:`groundwire.plugins.prompt_shield.direct_model`); a class-balanced L2
logistic regression fitted with L-BFGS in torch; the threshold at ``fpr`` of the inner out-of-fold scores of
the training negatives. Scoring is :func:`ps.scoring.direct_probs` (max over windows and decoded payloads,
the lexically best windows embedded) plus the strong rules, exactly as :func:`ps.score_prompts`.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.prompt_shield.direct_model import DirectModel, hashed_ngrams
from groundwire.plugins.prompt_shield.scoring import direct_probs

__all__ = ["HASH_BITS", "Items", "Recipe", "cached_embed", "fit_direct", "predict_blocks", "training_items"]

CACHE = Path(__file__).parent / ".cache"
HASH_BITS = 18
_STORE: dict[str, np.ndarray] | None = None


def cached_embed(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings of ``texts`` through :func:`ps.embed`, memoised per text in a pickle in
    ``benchmarks/.cache`` (only the texts not seen before are embedded)."""
    global _STORE
    path = CACHE / "minilm-embeddings.pkl"
    if _STORE is None:
        _STORE = pickle.loads(path.read_bytes()) if path.exists() else {}
    keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
    miss = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in _STORE}.items())
    for i in range(0, len(miss), 512):
        part = miss[i : i + 512]
        vecs = ps.embed([t for _, t in part]) if len(part) > 1 else ps.embed([part[0][1], part[0][1]])[:1]
        _STORE.update((k, v) for (k, _), v in zip(part, vecs, strict=True))
    if miss:
        CACHE.mkdir(exist_ok=True)
        path.write_bytes(pickle.dumps(_STORE))
    return np.stack([_STORE[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


@dataclass(frozen=True)
class Recipe:
    l2_emb: float = 3.0
    l2_hash: float = 1.0
    augment: float = 0.5  # share of (short) attacks also seen behind a benign prefix
    use_hash: bool = True


@dataclass
class Items:
    """The model windows trained on, with their features: ``group`` is the row of the prompt each came from
    (inner folds split by it), ``sources`` the sources whose text it contains (a held-out source's rows and
    every augmentation made from them are left out together)."""

    texts: list[str]
    y: np.ndarray
    group: np.ndarray
    sources: list[frozenset[str]]
    emb: np.ndarray
    chars: np.ndarray
    hashed: list[tuple[np.ndarray, np.ndarray]]

    def without(self, source: str | None) -> np.ndarray:
        return np.array([source not in s for s in self.sources], dtype=bool)


def training_items(texts: Sequence[str], y: np.ndarray, src: Sequence[str], recipe: Recipe, seed: int = 0) -> Items:
    """Each prompt's first window plus the seeded augmentations (made once, from every row; a fit on a
    subset of sources keeps only the augmentations made wholly from those sources)."""
    rng = np.random.default_rng(seed)
    items = [ps.windows(ps.for_model(t))[0] for t in texts]
    lab = list(y.astype(int))
    group = list(range(len(texts)))
    srcs = [frozenset([s]) for s in src]
    ben = np.flatnonzero(y == 0)
    if recipe.augment > 0 and len(ben):
        for i in np.flatnonzero(y == 1):
            words = items[i].split()
            if len(words) > 100 or rng.random() >= recipe.augment:
                continue
            j, a, b = (int(ben[rng.integers(len(ben))]) for _ in range(3))
            k = int(rng.integers(15, max(16, 120 - len(words))))
            items.append(" ".join(items[j].split()[:k] + words))
            lab.append(1)
            group.append(int(i))
            srcs.append(frozenset([src[i], src[j]]))
            items.append(" ".join(items[a].split()[:k] + items[b].split())[:2000])
            lab.append(0)
            group.append(b)
            srcs.append(frozenset([src[a], src[b]]))
    emb = cached_embed(items)
    chars = np.stack([ps.char_features(i) for i in items])
    hashed = [hashed_ngrams(i, HASH_BITS) for i in items]
    return Items(items, np.asarray(lab), np.asarray(group), srcs, emb, chars, hashed)


def _fit(emb: np.ndarray, chars: np.ndarray, hashed: Sequence[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
         recipe: Recipe) -> DirectModel:
    """Class-balanced L2 logistic regression, L-BFGS (scipy) over a sparse design matrix."""
    from scipy import optimize, sparse

    n = len(y)
    mu, sd = chars.mean(0), chars.std(0) + 1e-3
    dense = np.hstack([emb, (chars - mu) / sd]).astype(np.float64)
    d = dense.shape[1]
    nh = (1 << HASH_BITS) if recipe.use_hash else 0
    parts = [sparse.csr_matrix(dense)]
    if nh:
        indptr = np.concatenate([[0], np.cumsum([len(h[0]) for h in hashed])])
        xh = sparse.csr_matrix((np.concatenate([h[1] for h in hashed]).astype(np.float64),
                                np.concatenate([h[0] for h in hashed]), indptr), shape=(n, nh))
        parts.append(xh)
    x = sparse.hstack(parts + [sparse.csr_matrix(np.ones((n, 1)))], format="csr")
    pos = max(float(y.sum()), 1.0)
    sw = np.where(y > 0, n / (2 * pos), n / (2 * max(n - pos, 1.0)))
    reg = np.concatenate([np.full(d, recipe.l2_emb), np.full(nh, recipe.l2_hash), [0.0]])
    yf = y.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        # log(1 + e^z) - y z, stably
        val = float((sw * (np.logaddexp(0.0, z) - yf * z)).sum() + 0.5 * (reg * w * w).sum())
        g = x.T @ (sw * (1.0 / (1.0 + np.exp(-z)) - yf)) + reg * w
        return val / n, g / n

    res = optimize.minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                            options={"maxiter": 150, "gtol": 1e-6})
    w = res.x
    wh = w[d : d + nh] if nh else np.zeros(1 << HASH_BITS)
    return DirectModel(w[:emb.shape[1]].astype(np.float32), w[emb.shape[1] : d].astype(np.float32),
                       wh.astype(np.float32), float(w[-1]), mu, sd, 0.5, HASH_BITS)


def fit_direct(it: Items, rows: np.ndarray, fpr: float, recipe: Recipe, inner: int = 2, seed: int = 0) -> DirectModel:
    """Fit on the items ``rows`` (indices); threshold = the (1 - fpr) quantile of inner out-of-fold scores
    of their negatives (folds by :attr:`Items.group`)."""
    fold_of = np.random.default_rng(seed + 1).permutation(int(it.group.max()) + 1) % inner
    fold = fold_of[it.group[rows]]
    oof = np.zeros(len(rows))
    lab = it.y[rows]

    def sub(ix: np.ndarray) -> DirectModel:
        return _fit(it.emb[ix], it.chars[ix], [it.hashed[i] for i in ix], it.y[ix], recipe)

    for f in range(inner):
        tr, te = rows[fold != f], rows[fold == f]
        m = sub(tr)
        oof[fold == f] = m.predict(it.emb[te], it.chars[te], [it.texts[i] for i in te])
    th = float(np.quantile(oof[lab == 0], 1 - fpr)) + 1e-6
    m = sub(rows)
    return DirectModel(m.w_emb, m.w_chars, m.w_hash, m.b, m.mu, m.sd, min(max(th, 0.05), 0.995), HASH_BITS)


def predict_blocks(texts: Sequence[str], model: DirectModel) -> np.ndarray:
    """Block decisions as :func:`ps.score_prompts` makes them with ``model``: strong rules, or the classifier
    (max over windows and payloads) at the model's threshold."""
    p = np.asarray(direct_probs(texts, model, embed_fn=cached_embed))
    strong = np.array([any(h.strong for h in ps.scoring.cached_rule_hits(t)) for t in texts], dtype=bool)
    return strong | (p >= model.threshold)
