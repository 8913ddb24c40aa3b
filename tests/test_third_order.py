"""Third order (SPEC "Third order"): T[i, j, k] = Shapley value of k in w_ij(R) = M[i, j](f, x_{R∪{i,j}}).

The brute force (tests/brute_third_order.py) follows the definition literally: for every coalition S it builds
the masked input x_S (players outside S at the baseline), computes the whole metagame matrix there by brute force
(nested Shapley values of each target's game), and then takes Shapley values of the pair games w_ij.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metagame
from metagame.methods.registry import get_method
from metagame.domains.tensors.adapter import TensorModel

from brute_third_order import third_order_brute_force

METHODS = ["saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "occlusion", "shapley", "banzhaf",
           "kernel_shap", "lime"]
KWARGS = {"integrated_gradients": {"n_steps": 6}, "smoothgrad": {"n_samples": 3}, "kernel_shap": {"n_samples": 64},
          "lime": {"n_samples": 64}}


def _model(d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, 6, generator=g, dtype=torch.float64)
    w2 = torch.randn(6, generator=g, dtype=torch.float64)
    return lambda z: torch.tanh(z @ w1) @ w2 + z[:, 0] * z[:, 1] * z[:, -1]


def _attribution(f, x, b, method, coalition: frozenset, d: int) -> np.ndarray:
    """φ(f, x_S) by calling the method on the single masked coalition (an independent path from the engine)."""
    adapter = TensorModel(f, x, b)
    row = np.zeros((1, d), dtype=bool)
    row[0, list(coalition)] = True
    return adapter.attribute(get_method(method, KWARGS.get(method)), row).detach().double().numpy()[0]


def brute_force_tensor(f, x, b, method) -> np.ndarray:
    d = len(x)
    return third_order_brute_force(lambda s: _attribution(f, x, b, method, s, d), d)[1]


@pytest.mark.parametrize("method", METHODS)
def test_tensor_equals_brute_force_from_the_definition(method):
    d = 4
    f = _model(d, seed=METHODS.index(method))
    x = torch.linspace(-1.0, 1.2, d, dtype=torch.float64)
    b = torch.full((d,), 0.1, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, b, method=method, method_kwargs=KWARGS.get(method), order=3)
    brute = brute_force_tensor(f, x, b, method)
    np.testing.assert_allclose(res.tensor, brute, atol=1e-10, rtol=0)
    np.testing.assert_allclose(res.tensor.sum(axis=2), res.matrix, atol=1e-10)


def test_tensor_d5_identities_and_cost():
    d = 5
    f = _model(d, seed=11)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    rows = {"n": 0}

    def counted(z):
        rows["n"] += z.shape[0]
        return f(z)

    second = metagame.meta_attributions(counted, x, method="gradient_x_input")
    calls_order2 = rows["n"]
    rows["n"] = 0
    res = metagame.meta_attributions(counted, x, method="gradient_x_input", order=3)
    assert rows["n"] == calls_order2  # order 3 is post-processing: not one model call more than order 2
    assert res.n_evaluations == 2**d - 1 and res.n_model_rows == 2**d - 1  # gradient×input: one row per coalition
    np.testing.assert_array_equal(res.matrix, second.matrix)
    T = res.tensor
    assert T.shape == (d, d, d)
    np.testing.assert_allclose(T.sum(axis=2), res.matrix, atol=1e-12)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        block = T[i][np.ix_(others, others)]
        np.testing.assert_allclose(block, block.T, atol=1e-12)  # symmetric in (j, k) for distinct i, j, k
        assert np.all(T[i, others, i] == 0) and np.all(T[i, i, others] == 0)
    brute = brute_force_tensor(f, x, torch.zeros(d, dtype=torch.float64), "gradient_x_input")
    np.testing.assert_allclose(T, brute, atol=1e-10)


def test_tensor_is_half_the_stii_of_each_target_game_shapiq():
    shapiq = pytest.importorskip("shapiq", reason="shapiq is not installed (pip install metagame[shapiq])")
    d = 5
    f = _model(d, seed=3)
    x = torch.linspace(-0.5, 1.5, d, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, method="integrated_gradients", method_kwargs={"n_steps": 8}, order=3)
    method = get_method("integrated_gradients", {"n_steps": 8})
    for i in range(d):
        others = [j for j in range(d) if j != i]

        def u_i(coalitions, i=i, others=others):
            rows = np.zeros((len(coalitions), d), dtype=bool)
            rows[:, others] = np.asarray(coalitions, dtype=bool)
            rows[:, i] = True
            adapter = TensorModel(f, x)
            return adapter.attribute(method, rows).detach().numpy()[:, i]

        iv = shapiq.ExactComputer(u_i, n_players=d - 1)("STII", order=2)
        for a in range(d - 1):
            for c in range(a + 1, d - 1):
                j, k = others[a], others[c]
                assert res.tensor[i, j, k] == pytest.approx(iv[(a, c)] / 2, abs=1e-10)


def test_tensor_saved_and_loaded(tmp_path):
    d = 4
    res = metagame.meta_attributions(_model(d, 5), torch.ones(d, dtype=torch.float64), method="shapley", order=3)
    path = res.save(tmp_path / "r.json")
    assert path.with_suffix(".npz").exists()  # the tensor lives in the npz side-car
    back = metagame.load(path)
    np.testing.assert_array_equal(back.tensor, res.tensor)
    assert metagame.meta_attributions(_model(d, 5), torch.ones(d, dtype=torch.float64)).tensor is None


def test_order3_refuses_serial_and_banzhaf():
    f = _model(3, 1)
    for kw in ({"variant": "serial"}, {"value": "banzhaf"}):
        with pytest.raises(metagame.MetagameError, match="order=3"):
            metagame.meta_attributions(f, torch.ones(3, dtype=torch.float64), order=3, **kw)
