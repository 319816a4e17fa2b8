"""Contrast features of a chunk's units: how a sentence stands out from its host (issue 13).

An instruction planted in a document is unlike the sentences around it, whatever the attack source: these
columns describe a unit *relative to its chunk*, read from the vectors the indirect head already has (the
chunk vector and every unit vector of the chunk's single ``encode_spans`` run; no model run of their own):

    cos(unit, mean of the other units), cos(unit, previous unit), cos(unit, next unit),
    max and mean cos(unit, other units), z-score of cos(unit, chunk) among the chunk's units,
    relative position, log number of units, the chunk's lowest cos(unit, chunk),
    second-person words, words about the assistant / its output, imperative opening (per word)

Invariants: the column order is part of the indirect artefact's layout (:data:`N_CONTRAST` columns, after
the base columns of :func:`~.indirect_model.features`); a missing neighbour (first or last unit) or a chunk
of one unit reads the unit's cosine to the chunk instead; the result depends only on the arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["N_CONTRAST", "contrast_features"]

_YOU = re.compile(r"\b(?:you|your|yours|yourself)\b", re.I)
_AI = re.compile(
    r"\b(?:assistant|AI|model|chatbot|LLM|GPT|system prompt|prompt|instructions?|the user|users?|respon[sd]\w*|"
    r"repl(?:y|ies)|answers?|output|print|say|tell|reveal|pretend|act as|role|ignore|disregard|forget|override)\b",
    re.I)
_IMPERATIVE = re.compile(
    r"^\W*(?:please\s+)?(?:ignore|disregard|forget|stop|do|don't|never|always|say|print|write|output|reply|respond|"
    r"answer|tell|reveal|send|call|append|repeat|include|add|insert|remember|pretend|act|translate|return|list|make|"
    r"give|show|use|run|open|click|go|set|check|copy|delete|email|visit|summari[sz]e|begin|start|end)\b", re.I)

N_CONTRAST = 12


def contrast_features(chunk_vec: np.ndarray, unit_vecs: np.ndarray, unit_texts: Sequence[str]) -> np.ndarray:
    """``len(unit_texts) x N_CONTRAST`` float32 rows (see the module docstring for the columns)."""
    k = len(unit_texts)
    out = np.zeros((k, N_CONTRAST), np.float32)
    if not k:
        return out
    c = np.asarray(chunk_vec, np.float32).ravel()
    u = np.asarray(unit_vecs, np.float32).reshape(k, c.shape[0])
    cu = u @ c
    rest = (u.sum(0)[None] - u) / (k - 1) if k > 1 else c[None].copy()
    rest /= np.linalg.norm(rest, axis=1, keepdims=True) + 1e-6
    g = u @ u.T
    idx = np.arange(k)
    out[:, 0] = (u * rest).sum(1)
    out[:, 1] = np.where(idx > 0, g[idx, np.maximum(idx - 1, 0)], cu)
    out[:, 2] = np.where(idx < k - 1, g[idx, np.minimum(idx + 1, k - 1)], cu)
    if k > 1:
        off = g[~np.eye(k, dtype=bool)].reshape(k, k - 1)
        out[:, 3], out[:, 4] = off.max(1), off.mean(1)
        out[:, 5] = (cu - cu.mean()) / (cu.std() + 0.05)
    else:
        out[:, 3] = out[:, 4] = cu
    out[:, 6] = idx / max(k - 1, 1)
    out[:, 7] = np.log1p(k)
    out[:, 8] = cu.min()
    for j, t in enumerate(unit_texts):
        w = max(len(t.split()), 1)
        out[j, 9] = len(_YOU.findall(t)) / w * 5
        out[j, 10] = len(_AI.findall(t)) / w * 5
        out[j, 11] = float(_IMPERATIVE.match(t) is not None)
    return out
