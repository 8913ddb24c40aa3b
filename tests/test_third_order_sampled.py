"""order=3 with a budget: the stratified estimator's T[i, j, k] against brute force from SPEC's definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metagame.errors import MetagameError
from metagame.methods.registry import get_method
from metagame.domains.tensors.adapter import TensorModel
from metagame.players.coalitions import coalition_index
from metagame.run import RunOptions
from metagame.run.estimators import estimate_meta_attributions

from brute_third_order import third_order_brute_force


def brute_force_tensor(phi: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, T) from an attribution table ``phi[2**d, d]`` (bitmask order), nested metagames at every masked input."""
    return third_order_brute_force(lambda s: phi[sum(1 << p for p in s)], d)


def _case(d: int, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1)).double()
    x = torch.randn(d, dtype=torch.float64)
    model = TensorModel(lambda z: net(z)[:, 0], x)
    rows = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)
    phi = model.attribute(get_method("gradient_x_input"), rows).detach().double().numpy()
    assert np.array_equal(coalition_index(rows), np.arange(2**d))
    return model, phi


@pytest.fixture(scope="module")
def case5():
    model, phi = _case(5, 1)
    return model, phi, *brute_force_tensor(phi, 5)


def _run(model, budget: int, seed: int):
    return estimate_meta_attributions(
        model, get_method("gradient_x_input"), RunOptions(budget=budget, seed=seed, estimator="stratified", order=3)
    )


def test_brute_force_reference_has_the_stated_properties(case5):
    _, _, m, t3 = case5
    np.testing.assert_allclose(t3.sum(axis=2), m, atol=1e-12)  # Σ_k T[i, j, k] = M[i, j]
    np.testing.assert_allclose(t3, t3.transpose(0, 2, 1), atol=1e-12)  # symmetric in (j, k)


def test_full_budget_tensor_is_exact(case5):
    model, _, m, t3 = case5
    est = _run(model, 2**5, 0)
    np.testing.assert_allclose(est.matrix, m, atol=1e-10)
    np.testing.assert_allclose(est.tensor, t3, atol=1e-10)
    assert np.all(est.tensor_stderr == 0)


def test_sampled_tensor_converges_with_honest_intervals(case5):
    model, _, _, t3 = case5
    d = 5
    mask = np.ones((d, d, d), dtype=bool)
    for i in range(d):
        mask[i, i, :] = mask[i, :, i] = False  # structural zeros and M[i, i]
    errs, inside = {}, []
    for budget in (12, 20, 28):
        e = []
        for seed in range(4):
            est = _run(model, budget, seed)
            t, se = est.tensor, est.tensor_stderr
            assert t.shape == se.shape == (d, d, d)
            np.testing.assert_allclose(t.sum(axis=2), est.matrix, atol=1e-9)
            np.testing.assert_allclose(t, t.transpose(0, 2, 1), atol=1e-9)
            err = np.abs(t - t3)[mask]
            s = se[mask]
            assert np.all(err[s == 0] < 1e-9) and np.all(err <= 100 * s + 1e-9)
            fin = np.isfinite(s) & (s > 0)
            inside.extend(err[fin] <= 1.96 * s[fin])
            e.append(np.linalg.norm((t - t3)[mask]))
        errs[budget] = float(np.mean(e))
    assert errs[28] < 0.5 * errs[12], errs
    assert 0.85 <= np.mean(inside) <= 1.0, np.mean(inside)


def test_order3_needs_the_stratified_estimator(case5):
    model = case5[0]
    with pytest.raises(MetagameError, match="stratified"):
        estimate_meta_attributions(model, get_method("gradient_x_input"),
                                   RunOptions(budget=20, seed=0, estimator="regression", order=3))
