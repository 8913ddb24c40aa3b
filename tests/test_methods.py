"""First-order methods: agreement with Captum, Captum objects as the inner method, perturbation
methods against their definitions on restricted games."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest
import torch

import metagame
from metagame.methods import get_method, quadrature
from metagame.domains.tensors import TensorModel

captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed (pip install metagame[captum])")


def _net(d: int, dtype=torch.float64) -> torch.nn.Module:
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)
    return net


def _scalar(net):
    return lambda x: net(x)[:, 0]


def _masked_inputs(x, b, coalitions):
    c = torch.as_tensor(coalitions)
    return torch.where(c, x, b)


@pytest.fixture
def setup():
    d = 5
    net = _net(d)
    x = torch.linspace(-1.0, 1.5, d, dtype=torch.float64)
    b = torch.full((d,), 0.2, dtype=torch.float64)
    rows = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 1, 1, 0, 0]], dtype=bool)
    return net, x, b, rows


def test_gradient_methods_equal_captum(setup):
    net, x, b, rows = setup
    f = _scalar(net)
    model = TensorModel(f, x, b)
    xs = _masked_inputs(x, b, rows)
    bs = b.expand_as(xs)
    for steps in (3, 16):
        ours = get_method("integrated_gradients", {"n_steps": steps}).attribute(model, rows)
        theirs = captum_attr.IntegratedGradients(f).attribute(xs, bs, n_steps=steps, method="gausslegendre")
        # Captum casts its quadrature weights to float32, so agreement is to ~1e-7 relative
        torch.testing.assert_close(ours, theirs, atol=1e-7, rtol=1e-6)
    ours = get_method("gradient_x_input").attribute(model, rows)
    # gradient×input measures from the baseline: (x_S − b) ∂f; with b = 0 it is Captum's InputXGradient
    zero = TensorModel(f, x)
    xs0 = _masked_inputs(x, torch.zeros_like(x), rows)
    torch.testing.assert_close(get_method("gradient_x_input").attribute(zero, rows), captum_attr.InputXGradient(f).attribute(xs0))
    torch.testing.assert_close(ours, (xs - bs) * captum_attr.Saliency(f).attribute(xs.clone().requires_grad_(), abs=False))
    sal = get_method("saliency").attribute(model, rows)
    torch.testing.assert_close(sal, captum_attr.Saliency(f).attribute(xs.clone().requires_grad_(), abs=False))


@pytest.mark.parametrize("rule", ["riemann_left", "riemann_right", "riemann_middle"])
def test_riemann_quadratures_equal_captum(setup, rule):
    net, x, b, rows = setup
    f = _scalar(net)
    ours = get_method("integrated_gradients", {"n_steps": 7, "quadrature": rule}).attribute(TensorModel(f, x, b), rows)
    xs = _masked_inputs(x, b, rows)
    theirs = captum_attr.IntegratedGradients(f).attribute(xs, b.expand_as(xs), n_steps=7, method=rule)
    torch.testing.assert_close(ours, theirs, atol=1e-7, rtol=1e-6)
    alphas, weights = quadrature(7, rule)
    assert weights.sum() == pytest.approx(1.0)


def test_trapezoid_rule_is_a_proper_quadrature():
    # Captum's trapezoid uses steps 1/n on n nodes (weights sum to (n−1)/n); ours integrates exactly
    # every linear integrand: IG of a quadratic f is exact with the trapezoid rule.
    alphas, weights = quadrature(5, "riemann_trapezoid")
    assert weights.sum() == pytest.approx(1.0) and alphas[0] == 0.0 and alphas[-1] == 1.0
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    f = lambda z: z[:, 0] * z[:, 1]
    ig = metagame.attribute(f, x, method="integrated_gradients", method_kwargs={"n_steps": 5, "quadrature": "riemann_trapezoid"})
    np.testing.assert_allclose(ig, [1.0, 1.0], atol=1e-12)


def test_captum_instance_and_class_as_method(setup):
    net, x, b, _ = setup
    f = _scalar(net)
    native = metagame.meta_attributions(f, x, b, method="integrated_gradients", method_kwargs={"n_steps": 16})
    inst = metagame.meta_attributions(
        f, x, b, method=captum_attr.IntegratedGradients(f), method_kwargs={"n_steps": 16, "method": "gausslegendre"}
    )
    cls = metagame.meta_attributions(f, x, b, method=captum_attr.IntegratedGradients, method_kwargs={"n_steps": 16})
    np.testing.assert_allclose(inst.matrix, native.matrix, atol=1e-7)
    np.testing.assert_allclose(cls.matrix, native.matrix, atol=1e-7)
    assert inst.method == "captum.IntegratedGradients"
    sal = metagame.meta_attributions(f, x, b, method=captum_attr.Saliency(f), method_kwargs={"abs": False})
    np.testing.assert_allclose(sal.matrix, metagame.meta_attributions(f, x, b, method="saliency").matrix, atol=1e-12)


def test_captum_deeplift_on_module():
    d = 4
    lin = torch.nn.Linear(d, 1).to(torch.float64)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    b = torch.full((d,), 0.3, dtype=torch.float64)
    # on a linear module DeepLift is (x − b)·w, i.e. gradient×input from the baseline
    for method in (captum_attr.DeepLift(lin), captum_attr.DeepLift):
        res = metagame.meta_attributions(lin, x, b, method=method)
        gxi = metagame.meta_attributions(lambda z: lin(z)[:, 0], x, b, method="gradient_x_input")
        np.testing.assert_allclose(res.matrix, gxi.matrix, atol=1e-12)
    # on a nonlinear module: DeepLift's completeness φ(x) sums to f(x) − f(b), rows sum to φ
    net = _net(d)
    res = metagame.meta_attributions(net, x, b, method=captum_attr.DeepLift(net))
    with torch.no_grad():
        gap = float(net(x[None])[0, 0] - net(b[None])[0, 0])
    assert res.first_order.sum() == pytest.approx(gap, abs=1e-8)
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)


# ---------------------------------------------------------------- perturbation and surrogate methods
def _restricted_shapley(f, x, b, members):
    members = list(members)
    n = len(members)
    d = x.shape[0]

    def v(T):
        keep = torch.zeros(d, dtype=torch.bool)
        keep[list(T)] = True
        return float(f(torch.where(keep, x, b)[None])[0])

    phi = np.zeros(d)
    for j in members:
        others = [p for p in members if p != j]
        for t in range(n):
            w = factorial(t) * factorial(n - t - 1) / factorial(n)
            for T in itertools.combinations(others, t):
                phi[j] += w * (v(set(T) | {j}) - v(T))
    return phi, v


def test_perturbation_methods_at_masked_inputs(setup):
    net, x, b, rows = setup
    f = _scalar(net)
    model = TensorModel(f, x, b)
    shap = get_method("shapley").attribute(model, rows).numpy()
    kern = get_method("kernel_shap").attribute(model, rows).numpy()
    occ = get_method("occlusion").attribute(model, rows).numpy()
    with torch.no_grad():
        for r, c in enumerate(rows):
            members = np.flatnonzero(c)
            phi, v = _restricted_shapley(f, x, b, members)
            np.testing.assert_allclose(shap[r], phi, atol=1e-12)
            np.testing.assert_allclose(kern[r], phi, atol=1e-10)  # exact enumeration gives the Shapley value
            want = np.zeros(x.shape[0])
            for i in members:
                want[i] = v(set(members)) - v(set(members) - {i})
            np.testing.assert_allclose(occ[r], want, atol=1e-12)
            assert np.all(shap[r][~c] == 0) and np.all(occ[r][~c] == 0)


def test_sampled_methods_are_deterministic_and_close():
    d = 8
    w = torch.randn(d, dtype=torch.float64)
    f = lambda z: z @ w + 0.1 * z[:, 0] * z[:, 1]
    x = torch.randn(d, dtype=torch.float64)
    exact = metagame.attribute(f, x, method="shapley")
    approx = metagame.attribute(f, x, method="shapley", method_kwargs={"exact_limit": 4, "n_samples": 64, "seed": 1})
    again = metagame.attribute(f, x, method="shapley", method_kwargs={"exact_limit": 4, "n_samples": 64, "seed": 1})
    np.testing.assert_array_equal(approx, again)
    np.testing.assert_allclose(approx, exact, atol=0.05)
    ks = metagame.attribute(f, x, method="kernel_shap", method_kwargs={"n_samples": 64, "seed": 0})
    assert ks.sum() == pytest.approx(exact.sum(), abs=1e-10)  # efficiency constraint holds when sampled
    np.testing.assert_allclose(ks, exact, atol=0.1)
    bz = metagame.attribute(f, x, method="banzhaf", method_kwargs={"exact_limit": 4, "n_samples": 200})
    np.testing.assert_allclose(bz, metagame.attribute(f, x, method="banzhaf"), atol=0.3)
    lime = metagame.attribute(f, x, method="lime", method_kwargs={"n_samples": 128})
    assert lime.shape == (d,) and np.all(np.isfinite(lime))


def test_smoothgrad_fixed_noise(setup):
    net, x, b, rows = setup
    f = _scalar(net)
    a = get_method("smoothgrad", {"n_samples": 5, "stdev": 0.2, "seed": 7}).attribute(TensorModel(f, x, b), rows)
    c = get_method("smoothgrad", {"n_samples": 5, "stdev": 0.2, "seed": 7}).attribute(TensorModel(f, x, b), rows[::-1].copy())
    torch.testing.assert_close(a, c.flip(0))
    sal = get_method("saliency").attribute(TensorModel(f, x, b), rows)
    zero_noise = get_method("smoothgrad", {"n_samples": 3, "stdev": 0.0}).attribute(TensorModel(f, x, b), rows)
    torch.testing.assert_close(zero_noise, sal)


def test_feature_mask_groups_coordinates():
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    f = lambda z: (z[:, 0, 0] * z[:, 1, 1]) + z[:, 0, 1] ** 2 + z[:, 1, 0]
    mask = np.array([[0, 1], [1, 0]])
    res = metagame.meta_attributions(f, x, method="shapley", feature_mask=mask, players=["a", "b"])
    assert res.players == ["a", "b"]
    # players: a = {x00, x11}, b = {x01, x10}; v(a) = x00*x11 = -1, v(b) = 4 + 0.5, no interaction
    np.testing.assert_allclose(res.first_order, [-1.0, 4.5], atol=1e-12)
    np.testing.assert_allclose(res.matrix, np.diag([-1.0, 4.5]), atol=1e-12)
    ig = metagame.attribute(f, x, method="integrated_gradients", feature_mask=mask)
    np.testing.assert_allclose(ig, [-1.0, 4.5], atol=1e-10)
