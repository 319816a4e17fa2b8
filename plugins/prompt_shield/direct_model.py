"""The direct (prompt) classifier: a logistic regression over MiniLM sentence embeddings, character features
and hashed word / character n-grams, with a cheap first stage that lets long prompts embed only a few windows.

The artefact ships next to this module as ``prompt_shield_direct.npz`` (written by
``benchmarks/train_prompt_shield.py --direct-sources``; ``format = 2``) and is loaded offline, once per process.

Invariants:

- the feature layout is ``[embedding (384), standardised char features (N_CHAR), hashed n-grams]``; the
  hashed part is a sub-linear term-frequency vector of word unigrams and bigrams and of the character
  3- to 5-grams of each word (``zlib.crc32`` buckets, ``2 ** hash_bits`` of them), L2-normalised, so the
  same text gives the same features on every platform and Python version;
- :meth:`DirectModel.lexical_logit` is the hashed n-gram part of the logit alone: it needs no embedding and
  is what ranks a long prompt's windows (:func:`~.scoring.score_prompts` embeds only the best-ranked ones,
  every window is ranked, so the whole text is read);
- the model reads only :func:`~.normalize.for_model` output.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .combo_head import ComboModel
    from .token_head import TokenHeadModel

__all__ = ["DirectModel", "hashed_ngrams", "lexical_logit", "load_direct", "load_direct_file"]

_TOK = re.compile(r"\w+|[^\w\s]")


@lru_cache(maxsize=65536)
def _word_grams(word: str, mask: int) -> tuple[int, ...]:
    """Bucket ids of one word: the word itself and its character 3- to 5-grams (padded with spaces)."""
    out = [zlib.crc32(b"w\0" + word.encode()) & mask]
    padded = f" {word} "
    if len(word) > 1:
        for n in (3, 4, 5):
            for i in range(len(padded) - n + 1):
                out.append(zlib.crc32(b"c\0" + padded[i : i + n].encode()) & mask)
    return tuple(out)


def lexical_logit(w_hash: np.ndarray, bits: int, texts: Sequence[str]) -> np.ndarray:
    """``w_hash``'s part of the logit of each text: its weights dotted with :func:`hashed_ngrams` (shared by the
    logistic and the token head)."""
    out = np.zeros(len(texts))
    for i, t in enumerate(texts):
        ids, vals = hashed_ngrams(t, bits)
        out[i] = float(w_hash[ids] @ vals) if len(ids) else 0.0
    return out


def hashed_ngrams(text: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(bucket ids, values)`` of a text's L2-normalised sub-linear tf vector (see the module invariants)."""
    mask = (1 << bits) - 1
    toks = _TOK.findall(text.lower())
    ids: list[int] = []
    for t in toks:
        ids.extend(_word_grams(t, mask))
    for a, b in zip(toks, toks[1:], strict=False):
        ids.append(zlib.crc32(f"b\0{a} {b}".encode()) & mask)
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    u, c = np.unique(np.asarray(ids, np.int64), return_counts=True)
    v = (1.0 + np.log(c)).astype(np.float32)
    return u, v / np.float32(np.linalg.norm(v))


@dataclass(frozen=True, slots=True)
class DirectModel:
    """Logistic regression over ``[embedding, standardised char features, hashed n-grams]``."""

    w_emb: np.ndarray
    w_chars: np.ndarray
    w_hash: np.ndarray
    b: float
    mu: np.ndarray
    sd: np.ndarray
    threshold: float
    hash_bits: int

    def lexical_logit(self, texts: Sequence[str]) -> np.ndarray:
        """The hashed n-gram part of the logit of each text (no embedding needed)."""
        return lexical_logit(self.w_hash, self.hash_bits, texts)

    def predict(self, emb: np.ndarray, chars: np.ndarray, texts: Sequence[str],
                lexical: np.ndarray | None = None) -> np.ndarray:
        """Probabilities; ``lexical`` (from :meth:`lexical_logit` on the same texts) is reused when given."""
        lex = self.lexical_logit(texts) if lexical is None else lexical
        z = emb @ self.w_emb + ((chars - self.mu) / self.sd) @ self.w_chars + lex + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, format=np.int64(2), w_emb=self.w_emb.astype(np.float32), w_chars=self.w_chars.astype(np.float32),
            w_hash=self.w_hash.astype(np.float16), b=np.float64(self.b), mu=self.mu, sd=self.sd,
            threshold=np.float64(self.threshold), hash_bits=np.int64(self.hash_bits),
        )

    @classmethod
    def load(cls, path: Path) -> DirectModel:
        with np.load(path) as z:
            return cls(z["w_emb"], z["w_chars"], z["w_hash"].astype(np.float32), float(z["b"]), z["mu"], z["sd"],
                       float(z["threshold"]), int(z["hash_bits"]))


def load_direct_file(path: Path) -> DirectModel | TokenHeadModel | ComboModel:
    """A direct artefact of any format: ``2`` (:class:`DirectModel`), ``3`` (the token head,
    :class:`~.token_head.TokenHeadModel`) or ``4`` (both heads combined, :class:`~.combo_head.ComboModel`)."""
    from .combo_head import FORMAT as COMBO
    from .combo_head import ComboModel
    from .token_head import FORMAT, TokenHeadModel

    with np.load(path) as z:
        fmt = int(z["format"]) if "format" in z.files else 2
    if fmt == COMBO:
        return ComboModel.load(path)
    return TokenHeadModel.load(path) if fmt == FORMAT else DirectModel.load(path)


@lru_cache(maxsize=1)
def load_direct() -> DirectModel | TokenHeadModel | ComboModel:
    """The shipped direct artefact ``prompt_shield_direct.npz`` (any format, :func:`load_direct_file`)."""
    return load_direct_file(Path(__file__).parent / "prompt_shield_direct.npz")
