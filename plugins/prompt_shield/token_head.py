"""The direct (prompt) classifier's token head: attention pooling over MiniLM's last-layer token states, max
and mean pooling, character features and hashed n-grams, into a small MLP with a linear skip; numpy only.

The artefact is ``prompt_shield_direct.npz`` with ``format = 3`` (written by
``benchmarks/train_prompt_shield.py --direct-sources ... --head token``; ``format = 2`` is the logistic
regression of :mod:`.direct_model`); :func:`~.direct_model.load_direct` reads either.

Invariants:

- the token states are those of the one MiniLM run that also gives the prompt's sentence vector
  (``groundwire.plugins.embedders.token_states`` / ``query_token_states``): screening a prompt costs no
  second model run, and retrieval reuses the same run through the query memo;
- features, in this order: the unit mean of the states (the sentence vector), the max over tokens and
  ``n_heads`` attention-pooled vectors of the standardised states (``(s - mu_tok) / sd_tok``; head ``h``
  weighs token ``t`` by ``softmax_t(q_h . s_t / sqrt(384))``), then the standardised character features;
- ``logit = w2 . relu(W1 x + b1) + w_lin . x + lexical + b`` where ``lexical`` is
  :meth:`lexical_logit`, the hashed n-gram part (:func:`~.direct_model.hashed_ngrams`), computed without
  the model so that it ranks a long prompt's windows before any is embedded;
- the same states give the same score: everything is a deterministic function of the arrays in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .direct_model import lexical_logit

__all__ = ["FORMAT", "TokenHeadModel", "pool_tokens"]

FORMAT = 3
DIM = 384


def pool_tokens(states: Sequence[np.ndarray], q: np.ndarray, mu_tok: np.ndarray, sd_tok: np.ndarray) -> np.ndarray:
    """``[unit mean, max, attention heads...]`` per text (see the module invariants); float32 ``(n, 384 * (2 +
    heads))``."""
    heads = q.shape[0]
    out = np.zeros((len(states), DIM * (2 + heads)), np.float32)
    scale = np.float32(1.0 / np.sqrt(DIM))
    for i, s in enumerate(states):
        s = np.asarray(s, np.float32)
        if not len(s):
            continue
        m = s.mean(axis=0)
        out[i, :DIM] = m / max(float(np.linalg.norm(m)), 1e-12)
        z = (s - mu_tok) / sd_tok
        out[i, DIM : 2 * DIM] = z.max(axis=0)
        a = (z @ q.T) * scale  # (tokens, heads)
        a = np.exp(a - a.max(axis=0, keepdims=True))
        a /= a.sum(axis=0, keepdims=True)
        out[i, 2 * DIM :] = (a.T @ z).reshape(-1)
    return out


@dataclass(frozen=True, slots=True)
class TokenHeadModel:
    """See the module docstring; ``reads_tokens`` tells the scorer to hand :meth:`predict_tokens` token
    states instead of sentence vectors."""

    q: np.ndarray  # (heads, 384)
    mu_tok: np.ndarray
    sd_tok: np.ndarray
    mu: np.ndarray  # character-feature standardisation
    sd: np.ndarray
    w1: np.ndarray  # (features, hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden,)
    w_lin: np.ndarray  # (features,)
    w_hash: np.ndarray
    b: float
    threshold: float
    hash_bits: int
    reads_tokens: bool = True

    def lexical_logit(self, texts: Sequence[str]) -> np.ndarray:
        """The hashed n-gram part of the logit of each text (no embedding needed)."""
        return lexical_logit(self.w_hash, self.hash_bits, texts)

    def features(self, states: Sequence[np.ndarray], chars: np.ndarray) -> np.ndarray:
        pooled = pool_tokens(states, self.q, self.mu_tok, self.sd_tok)
        return np.hstack([pooled, (np.asarray(chars, np.float32) - self.mu) / self.sd]).astype(np.float32)

    def logits(self, states: Sequence[np.ndarray], chars: np.ndarray, texts: Sequence[str],
               lexical: np.ndarray | None = None) -> np.ndarray:
        x = self.features(states, chars)
        lex = self.lexical_logit(texts) if lexical is None else np.asarray(lexical)
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        return np.asarray(h @ self.w2 + x @ self.w_lin + lex + self.b, np.float64)

    def predict_tokens(self, states: Sequence[np.ndarray], chars: np.ndarray, texts: Sequence[str],
                       lexical: np.ndarray | None = None) -> np.ndarray:
        """Probabilities; ``lexical`` (from :meth:`lexical_logit` on the same texts) is reused when given."""
        z = self.logits(states, chars, texts, lexical)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def with_threshold(self, threshold: float) -> TokenHeadModel:
        return TokenHeadModel(self.q, self.mu_tok, self.sd_tok, self.mu, self.sd, self.w1, self.b1, self.w2,
                              self.w_lin, self.w_hash, self.b, threshold, self.hash_bits)

    def save(self, path: Path) -> None:
        f16 = np.float16
        np.savez_compressed(
            path, format=np.int64(FORMAT), q=self.q.astype(np.float32), mu_tok=self.mu_tok.astype(np.float32),
            sd_tok=self.sd_tok.astype(np.float32), mu=self.mu.astype(np.float32), sd=self.sd.astype(np.float32),
            w1=self.w1.astype(f16), b1=self.b1.astype(np.float32), w2=self.w2.astype(np.float32),
            w_lin=self.w_lin.astype(np.float32), w_hash=self.w_hash.astype(f16), b=np.float64(self.b),
            threshold=np.float64(self.threshold), hash_bits=np.int64(self.hash_bits),
        )

    @classmethod
    def load(cls, path: Path) -> TokenHeadModel:
        with np.load(path) as z:
            if int(z["format"]) != FORMAT:
                raise ValueError(f"{path}: format {int(z['format'])}, not the token head's {FORMAT}")
            f32 = np.float32
            return cls(z["q"].astype(f32), z["mu_tok"].astype(f32), z["sd_tok"].astype(f32), z["mu"].astype(f32),
                       z["sd"].astype(f32), z["w1"].astype(f32), z["b1"].astype(f32), z["w2"].astype(f32),
                       z["w_lin"].astype(f32), z["w_hash"].astype(f32), float(z["b"]), float(z["threshold"]),
                       int(z["hash_bits"]))
