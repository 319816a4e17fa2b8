"""The direct (prompt) classifier as a combination of its two heads: the logistic regression over the sentence
vector (:class:`~.direct_model.DirectModel`) and the token head (:class:`~.token_head.TokenHeadModel`), their
logits each divided by its spread on the training windows and averaged; numpy only.

The artefact is ``prompt_shield_direct.npz`` with ``format = 4`` (written by
``benchmarks/train_prompt_shield.py --direct-sources ... --head combo``); :func:`~.direct_model.load_direct`
reads every format.

Invariants:

- both heads read the one MiniLM run that also gives the prompt's sentence vector: the token states, whose
  unit mean is that vector (as the encoder pools them), so screening costs no second model run;
- ``logit = w_lr * logit_lr + w_tok * logit_tok + b``; :meth:`lexical_logit` is the same combination of the
  heads' hashed n-gram parts (it ranks a long prompt's windows before any is embedded);
- each head keeps its own threshold (the one its own calibration picked); the combination's is ``threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .direct_model import DirectModel
from .token_head import TokenHeadModel

__all__ = ["FORMAT", "ComboModel", "unit_means"]

FORMAT = 4


def unit_means(states: Sequence[np.ndarray]) -> np.ndarray:
    """Each text's sentence vector from its token states: their mean, L2-normalised; float32 ``(n, 384)``."""
    out = np.zeros((len(states), 384), np.float32)
    for i, s in enumerate(states):
        if len(s):
            m = np.asarray(s, np.float32).mean(axis=0)
            out[i] = m / max(float(np.linalg.norm(m)), 1e-12)
    return out


@dataclass(frozen=True, slots=True)
class ComboModel:
    """See the module docstring; ``reads_tokens`` tells the scorer to hand :meth:`predict_tokens` token states."""

    lr: DirectModel
    tok: TokenHeadModel
    w_lr: float
    w_tok: float
    b: float
    threshold: float
    reads_tokens: bool = True

    @property
    def hash_bits(self) -> int:
        return self.lr.hash_bits

    def lexical_logit(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.w_lr * self.lr.lexical_logit(texts) + self.w_tok * self.tok.lexical_logit(texts))

    def head_logits(self, states: Sequence[np.ndarray], chars: np.ndarray,
                    texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(logit_lr, logit_tok)`` of each text, before the combination."""
        emb = unit_means(states)
        lex = self.lr.lexical_logit(texts)
        z_lr = emb @ self.lr.w_emb + ((np.asarray(chars) - self.lr.mu) / self.lr.sd) @ self.lr.w_chars + lex + self.lr.b
        return np.asarray(z_lr, np.float64), self.tok.logits(states, chars, texts)

    def predict_tokens(self, states: Sequence[np.ndarray], chars: np.ndarray, texts: Sequence[str],
                       lexical: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (``lexical`` is accepted for the scorer's interface; each head reads its own)."""
        z_lr, z_tok = self.head_logits(states, chars, texts)
        z = self.w_lr * z_lr + self.w_tok * z_tok + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def with_threshold(self, threshold: float) -> ComboModel:
        return replace(self, threshold=threshold)

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name in ("w_emb", "w_chars", "mu", "sd"):
            arrays["lr_" + name] = np.asarray(getattr(self.lr, name), np.float32)
        arrays["lr_w_hash"] = self.lr.w_hash.astype(np.float16)
        for name in ("q", "mu_tok", "sd_tok", "mu", "sd", "b1", "w2", "w_lin"):
            arrays["tok_" + name] = np.asarray(getattr(self.tok, name), np.float32)
        arrays["tok_w1"] = self.tok.w1.astype(np.float16)
        arrays["tok_w_hash"] = self.tok.w_hash.astype(np.float16)
        np.savez_compressed(
            path, format=np.int64(FORMAT), lr_b=np.float64(self.lr.b), lr_threshold=np.float64(self.lr.threshold),
            tok_b=np.float64(self.tok.b), tok_threshold=np.float64(self.tok.threshold),
            hash_bits=np.int64(self.lr.hash_bits), w_lr=np.float64(self.w_lr), w_tok=np.float64(self.w_tok),
            b=np.float64(self.b), threshold=np.float64(self.threshold), **arrays,
        )

    @classmethod
    def load(cls, path: Path) -> ComboModel:
        f32 = np.float32
        with np.load(path) as z:
            if int(z["format"]) != FORMAT:
                raise ValueError(f"{path}: format {int(z['format'])}, not the combined head's {FORMAT}")
            bits = int(z["hash_bits"])
            lr = DirectModel(z["lr_w_emb"].astype(f32), z["lr_w_chars"].astype(f32), z["lr_w_hash"].astype(f32),
                             float(z["lr_b"]), z["lr_mu"].astype(f32), z["lr_sd"].astype(f32),
                             float(z["lr_threshold"]), bits)
            tok = TokenHeadModel(z["tok_q"].astype(f32), z["tok_mu_tok"].astype(f32), z["tok_sd_tok"].astype(f32),
                                 z["tok_mu"].astype(f32), z["tok_sd"].astype(f32), z["tok_w1"].astype(f32),
                                 z["tok_b1"].astype(f32), z["tok_w2"].astype(f32), z["tok_w_lin"].astype(f32),
                                 z["tok_w_hash"].astype(f32), float(z["tok_b"]), float(z["tok_threshold"]), bits)
            return cls(lr, tok, float(z["w_lr"]), float(z["w_tok"]), float(z["b"]), float(z["threshold"]))
