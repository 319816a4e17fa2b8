"""An ensemble of indirect unit networks ships as one wider network (issue 13): the artefact format of a single
hidden layer holds it exactly, its probability being the sigmoid of the members' mean logit."""

from __future__ import annotations

import numpy as np
from groundwire.plugins.prompt_shield import indirect_model as im
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.indirect_mlp import side_by_side

EXTRA = im.N_FEATURES - 2 * im.DIM


def _net(rng: np.random.Generator, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    return (rng.normal(size=(im.N_FEATURES, hidden)).astype(np.float32) / 20,
            rng.normal(size=hidden).astype(np.float32), rng.normal(size=hidden).astype(np.float32) / 5,
            float(rng.normal()) / 5)  # logits of a few units: float32 probabilities then keep their logits exact


def _model(net: tuple[np.ndarray, np.ndarray, np.ndarray, float], mu: np.ndarray, sd: np.ndarray) -> im.IndirectModel:
    w1, b1, w2, b2 = net
    return im.IndirectModel(w2, b2, mu, sd, 0.5, w1, b1, True)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_side_by_side_averages_the_members_logits(k: int, hidden: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mu, sd = rng.normal(size=EXTRA).astype(np.float32), rng.uniform(0.5, 2, size=EXTRA).astype(np.float32)
    nets = [_net(rng, hidden) for _ in range(k)]
    x = rng.normal(size=(7, im.N_FEATURES)).astype(np.float32)
    joined = _model(side_by_side(nets), mu, sd)
    assert joined.w1 is not None and joined.w1.shape == (im.N_FEATURES, k * hidden)

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    want = np.mean([logit(_model(n, mu, sd).predict(x)) for n in nets], axis=0)
    assert np.allclose(logit(joined.predict(x)), want, atol=1e-3)


def test_one_member_is_itself() -> None:
    rng = np.random.default_rng(3)
    net = _net(rng, 5)
    got = side_by_side([net])
    assert all(np.array_equal(a, b) for a, b in zip(got[:3], net[:3], strict=True)) and got[3] == net[3]
