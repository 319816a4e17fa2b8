"""The direct prompt-shield recipe, shared by training (``benchmarks.train_prompt_shield --direct-sources``) and
the leave-one-source-out benchmark (``benchmarks.prompt_shield --loso``), so the figure LOSO prints is the
figure of the artefact that ships.

Recipe: each training prompt's first model window (:func:`ps.windows` of :func:`ps.for_model`), plus seeded
augmentations made from the training rows only: attacks with a benign prefix of another training prompt
before them (the payload then shares its window with filler, as after a padding flood) and benign prompts
joined to another benign prompt (so that joining is not itself a cue), and every further 120-word window of a
long benign prompt (``window_negatives``: a pasted document is blocked by its worst window, so its other
windows must be negatives too). Features: MiniLM embedding, character features, hashed n-grams
(:mod:`groundwire.plugins.prompt_shield.direct_model`); an L2 logistic regression fitted with L-BFGS (scipy),
each (source, label) weighing the same (``source_balanced``: a small benign family such as BIPIA's task
instructions counts as much as 3,000 S-Labs rows); the threshold at ``fpr`` of the inner out-of-fold scores of
the training sources' benign prompts scored as ``score_prompts`` scores them (max over windows, sentences and
payloads), each source weighing the same (``threshold_on = "prompts"``; the earlier recipe took the quantile
of first-window scores, pooled, which under-counts long texts and is dominated by the largest sources).
Scoring is :func:`ps.scoring.direct_probs` (max over windows and decoded payloads, the lexically best windows
embedded) plus the strong rules, exactly as :func:`ps.score_prompts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from groundwire.plugins import prompt_shield as ps
from groundwire.plugins.prompt_shield.combo_head import ComboModel
from groundwire.plugins.prompt_shield.direct_model import DirectModel, hashed_ngrams
from groundwire.plugins.prompt_shield.scoring import direct_probs
from groundwire.plugins.prompt_shield.token_head import TokenHeadModel

from benchmarks.common import EmbeddingMemo
from benchmarks.prompt_shield_token_fit import TokenConfig, cached_tokens, fit_token, fixed_features

__all__ = ["HASH_BITS", "Items", "Recipe", "add_head_args", "cached_embed", "fit_direct", "head_of", "predict_blocks",
           "training_items"]

CACHE = Path(__file__).parent / ".cache"
# the benchmark scores the same prompts under many fold models: what the classifier reads of a prompt does not
# depend on the model, so it is memoised here (this process only; the library keeps calling the pure function)
ps.scoring.prompt_item_parts = lru_cache(maxsize=None)(ps.scoring.prompt_item_parts)  # type: ignore[assignment]
HASH_BITS = 18


#: MiniLM embeddings through :func:`ps.embed`, memoised per text in ``benchmarks/.cache/minilm-embeddings.pkl``
cached_embed = EmbeddingMemo(CACHE / "minilm-embeddings.pkl", batch=512)
# ... computed from the token states' cache (one model run per text serves both heads; the unit mean of the
# float16 states, cosine > 0.9999 to the float32 vector)
cached_embed.compute = cached_tokens.vectors


@dataclass(frozen=True)
class Recipe:
    l2_emb: float = 3.0
    l2_hash: float = 1.0
    augment: float = 0.5  # share of (short) attacks also seen behind a benign prefix
    use_hash: bool = True
    # every 120-word window of a long benign prompt is a negative too (the prompt's weight split over its
    # windows after the first): a long benign text is blocked by its worst window, not its first
    window_negatives: bool = True
    # each (source, label) weighs the same in the loss, whatever its size (else: classes balanced only)
    source_balanced: bool = True
    # "prompts": the threshold is the (1 - fpr) quantile of the inner out-of-fold scores of the training
    # sources' benign prompts scored as score_prompts scores them, each source weighing the same (macro);
    # "windows": of the training windows' scores (the earlier recipe, which under-counts long texts)
    threshold_on: str = "prompts"
    # "lr": the logistic regression over the sentence vector (DirectModel, format 2); "token": the token head
    # (attention / max / mean pooling of MiniLM's token states, MLP, hashed n-grams; TokenHeadModel, format 3);
    # "combo": both, fitted on the same items, their logits each divided by its spread over the training items
    # and averaged with weights combo_w (logistic) / 1 - combo_w (token head) (ComboModel, format 4); each head
    # also keeps its own threshold, calibrated the same way, so one LOSO run measures all three
    head: str = "lr"
    token: TokenConfig = TokenConfig()
    combo_w: float = 0.5


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
    weight: np.ndarray  # the item's share of its prompt (1, or 1/k for the k extra windows of a benign prompt)
    prompts: list[str]  # the prompts (row i of them is item i, its first window)
    prompt_src: list[str]
    fixed: np.ndarray | None = None  # the token head's fixed per-item features (computed on first use)

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
    weight = [1.0] * len(items)
    if recipe.window_negatives:
        for i in ben:
            first = items[i]
            extra = [w for w in dict.fromkeys(ps.windows(ps.for_model(texts[i]))[1:]) if w != first]
            for w in extra:
                items.append(w)
                lab.append(0)
                group.append(int(i))
                srcs.append(frozenset([src[i]]))
                weight.append(1.0 / len(extra))
    cached_tokens(items)  # the one model run per text (progress printed with totals); the vectors derive from it
    emb = cached_embed(items)
    chars = np.stack([ps.char_features(i) for i in items])
    hashed = [hashed_ngrams(i, HASH_BITS) for i in items]
    return Items(items, np.asarray(lab), np.asarray(group), srcs, emb, chars, hashed, np.asarray(weight),
                 list(texts), list(src))


def _weights(it: Items, ix: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Per-item loss weights: each label weighs half; within a label, each source the same
    (``source_balanced``) and each prompt's extra windows together as much as its first window."""
    y = it.y[ix]
    w = it.weight[ix].astype(np.float64)
    if recipe.source_balanced:
        key = np.array([f"{min(it.sources[i])}\0{it.y[i]}" for i in ix])
        _, inv = np.unique(key, return_inverse=True)
        w = w / np.bincount(inv, weights=w)[inv]
    for lab in (0, 1):
        m = y == lab
        if m.any():
            w[m] *= len(y) / (2 * w[m].sum())
    return w


def _fit(emb: np.ndarray, chars: np.ndarray, hashed: Sequence[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
         recipe: Recipe, sw: np.ndarray | None = None) -> DirectModel:
    """Weighted (default: class-balanced) L2 logistic regression, L-BFGS (scipy) over a sparse design matrix."""
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
    if sw is None:
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


def _wquantile(v: np.ndarray, w: np.ndarray, q: float) -> float:
    o = np.argsort(v, kind="stable")
    c = np.cumsum(w[o]) / w.sum()
    return float(v[o][min(int(np.searchsorted(c, q)), len(v) - 1)])


Model = DirectModel | TokenHeadModel | ComboModel


def _at(model: Model, threshold: float) -> Model:
    if isinstance(model, TokenHeadModel | ComboModel):
        return model.with_threshold(threshold)
    return DirectModel(model.w_emb, model.w_chars, model.w_hash, model.b, model.mu, model.sd, threshold,
                       model.hash_bits)


def prompt_scores(texts: Sequence[str], model: Model) -> np.ndarray:
    """Threshold-free scores: ``score_prompts`` blocks a prompt at threshold ``t`` (below
    :data:`~ps.scoring.EXTRA_ITEM_P`) iff its score here is ``>= t`` (1.0 for a strong rule hit; a sentence or
    short window counts only at ``>= EXTRA_ITEM_P``, i.e. the scaling of :func:`direct_probs` at ``t = 0``)."""
    p = np.asarray(direct_probs(texts, _at(model, 0.0), embed_fn=cached_embed, token_fn=cached_tokens))
    strong = np.array([any(h.strong for h in ps.scoring.cached_rule_hits(t)) for t in texts], dtype=bool)
    return np.where(strong, 1.0, p)


def fit_direct(it: Items, rows: np.ndarray, fpr: float, recipe: Recipe, inner: int = 2, seed: int = 0) -> Model:
    """Fit on the items ``rows`` (indices); threshold = the (1 - fpr) quantile of inner out-of-fold scores
    of their negatives (folds by :attr:`Items.group`): of the benign training prompts scored as
    ``score_prompts`` does, macro over their sources (``threshold_on = "prompts"``), or of the negative windows."""
    fold_of = np.random.default_rng(seed + 1).permutation(int(it.group.max()) + 1) % inner
    fold = fold_of[it.group[rows]]
    oof = np.zeros(len(rows))
    lab = it.y[rows]

    def sub(ix: np.ndarray) -> Model:
        if recipe.head in ("token", "combo"):
            states = cached_tokens(it.texts)
            if it.fixed is None:
                it.fixed = fixed_features(states)
            tok = fit_token([states[i] for i in ix], it.chars[ix], [it.hashed[i] for i in ix], it.y[ix],
                            _weights(it, ix, recipe), recipe.token, HASH_BITS, seed, fixed_raw=it.fixed[ix])
            if recipe.head == "token":
                return tok
        lr = _fit(it.emb[ix], it.chars[ix], [it.hashed[i] for i in ix], it.y[ix], recipe, _weights(it, ix, recipe))
        if recipe.head == "lr":
            return lr
        # each head's logit spread over (a seeded sample of) the training items
        pick = np.sort(np.random.default_rng(seed + 2).choice(ix, min(len(ix), 3000), replace=False))
        z_lr, z_tok = ComboModel(lr, tok, 1.0, 1.0, 0.0, 0.5).head_logits(
            [states[i] for i in pick], it.chars[pick], [it.texts[i] for i in pick])
        w = recipe.combo_w
        return ComboModel(lr, tok, w / max(float(z_lr.std()), 1e-6), (1 - w) / max(float(z_tok.std()), 1e-6),
                          0.0, 0.5)

    # the benign training prompts (row p of the prompts is item p)
    ben = np.array([p for p in rows[rows < len(it.prompts)] if it.y[p] == 0], dtype=int)
    vals: list[np.ndarray] = []
    head_vals: list[list[np.ndarray]] = [[], []]  # combo: each head's own scores, for its own threshold
    for f in range(inner):
        tr, te = rows[fold != f], rows[fold == f]
        m = sub(tr)
        if recipe.threshold_on == "prompts":
            pf = ben[fold_of[ben] == f]
            vals.append(prompt_scores([it.prompts[p] for p in pf], m))
            if isinstance(m, ComboModel):
                for k, head in enumerate((m.lr, m.tok)):
                    head_vals[k].append(prompt_scores([it.prompts[p] for p in pf], head))
        elif isinstance(m, TokenHeadModel | ComboModel):
            states = cached_tokens([it.texts[i] for i in te])
            oof[fold == f] = m.predict_tokens(states, it.chars[te], [it.texts[i] for i in te])
        else:
            oof[fold == f] = m.predict(it.emb[te], it.chars[te], [it.texts[i] for i in te])
    def clip(t: float) -> float:
        return min(max(t, 0.05), 0.995)

    if recipe.threshold_on == "prompts":
        order = np.concatenate([ben[fold_of[ben] == f] for f in range(inner)])
        names = np.array([it.prompt_src[p] for p in order])
        _, inv, cnt = np.unique(names, return_inverse=True, return_counts=True)
        th = _wquantile(np.concatenate(vals), 1.0 / cnt[inv], 1 - fpr) + 1e-6
        final = sub(rows)
        if isinstance(final, ComboModel):
            th_lr, th_tok = (clip(_wquantile(np.concatenate(v), 1.0 / cnt[inv], 1 - fpr) + 1e-6) for v in head_vals)
            final = ComboModel(_at(final.lr, th_lr), _at(final.tok, th_tok), final.w_lr,  # type: ignore[arg-type]
                               final.w_tok, final.b, final.threshold)
        return _at(final, clip(th))
    th = float(np.quantile(oof[lab == 0], 1 - fpr)) + 1e-6
    return _at(sub(rows), clip(th))


def predict_blocks(texts: Sequence[str], model: Model) -> np.ndarray:
    """Block decisions as :func:`ps.score_prompts` makes them with ``model``: strong rules, or the classifier
    (max over windows and payloads) at the model's threshold."""
    p = np.asarray(direct_probs(texts, model, embed_fn=cached_embed, token_fn=cached_tokens))
    strong = np.array([any(h.strong for h in ps.scoring.cached_rule_hits(t)) for t in texts], dtype=bool)
    return strong | (p >= model.threshold)


def add_head_args(ap: Any) -> None:
    """The head's command-line options (``benchmarks.prompt_shield --loso`` and ``train_prompt_shield``)."""
    d = TokenConfig()
    ap.add_argument("--head", choices=["lr", "token", "combo"], default=Recipe.head,
                    help="direct: logistic regression on the sentence vector, the token head, or both combined")
    ap.add_argument("--combo-w", type=float, default=Recipe.combo_w,
                    help="combo head: the logistic head's weight (the token head's is 1 - it)")
    ap.add_argument("--token-heads", type=int, default=d.heads, help="token head: attention queries")
    ap.add_argument("--token-hidden", type=int, default=d.hidden, help="token head: MLP width")
    ap.add_argument("--token-epochs", type=int, default=d.epochs)
    ap.add_argument("--token-smoothing", type=float, default=d.label_smoothing, help="token head: label smoothing")
    ap.add_argument("--token-wd", type=float, default=d.weight_decay, help="token head: AdamW weight decay")
    ap.add_argument("--token-dropout", type=float, default=d.dropout)


def head_of(args: Any) -> dict[str, Any]:
    """``Recipe`` keyword arguments from :func:`add_head_args`' options."""
    return {"head": args.head, "combo_w": args.combo_w, "token": TokenConfig(
        heads=args.token_heads, hidden=args.token_hidden, epochs=args.token_epochs,
        label_smoothing=args.token_smoothing, weight_decay=args.token_wd, dropout=args.token_dropout,
        l2_hash=args.l2_hash)}
