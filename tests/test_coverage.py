"""Honest error bars of the shared-sample estimators (issue 10, item 2): stderr 0 only where exact, no entry far
outside its interval, repeated coalitions add no information, 95% intervals cover about 95% of entries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metagame
from metagame.run.estimators.base import Rows
from metagame.run.estimators.driver import ESTIMATORS
from metagame.run.estimators.plan import draw_units, make_plan

from planted_poly import planted_poly

ESTIMATOR_NAMES = ("stratified", "regression", "montecarlo", "sparse")


def _mlp(d: int, seed: int = 0, hidden: int = 16):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)).double()
    x = torch.randn(d, dtype=torch.float64)
    return (lambda z: net(z)[:, 0]), x


def _never_falsely_exact(res, exact: np.ndarray, off: np.ndarray) -> None:
    """stderr 0 only on exact entries, and no entry off by more than 10× its stderr (issue 23's bound)."""
    err = np.abs(res.matrix - exact)[off]
    se = res.stderr[off]
    assert np.all(err[se == 0] < 1e-9), err[se == 0].max()
    assert np.all(err <= 10 * se + 1e-9), np.max(err / np.maximum(se, 1e-300))


def test_stratified_interaction_example_is_not_claimed_exact():
    """d = 12, f = Σx + 3·x0·x1 at x = 1, gradient×input, budget 24: M[0, 1] = 3; the old estimator said 0.27 ± 0."""
    d = 12
    x = torch.ones(d, dtype=torch.float64)
    f = lambda z: z.sum(dim=1) + 3.0 * z[:, 0] * z[:, 1]
    exact = metagame.meta_attributions(f, x, method="gradient_x_input").matrix
    assert exact[0, 1] == pytest.approx(3.0)
    off = ~np.eye(d, dtype=bool)
    for seed in range(5):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=24, seed=seed, estimator="stratified")
        assert res.stderr[0, 1] > 0.1
        _never_falsely_exact(res, exact, off)
        np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-9)


@pytest.mark.parametrize("budget", [12, 20])
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_small_budget_no_entry_far_outside_its_interval(estimator, budget):
    """d = 7, budgets 12 and 20 (issue 23 item 5): the regression jackknife gave stderr 3e-14 on an entry off by 50%
    and montecarlo at 12 calls an entry off by 2,900× its stderr (sd/√K of a few skewed units that agreed)."""
    f, x, exact, _ = planted_poly(7, 3, pairs=6, triples=4, quads=2)
    off = ~np.eye(7, dtype=bool)
    for seed in range(6):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=seed, estimator=estimator)
        _never_falsely_exact(res, exact, off)
    f, x = _mlp(7)
    exact = metagame.meta_attributions(f, x, method="gradient_x_input").matrix
    for seed in range(6):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=seed, estimator=estimator)
        _never_falsely_exact(res, exact, off)


def test_order3_small_budget_is_not_overconfident():
    """Issue 23 item 4: order 3 at budget 2d reported −0.001 ± 0.027 for a truth of −1.077 (|z| up to 39). On a
    planted polynomial with closed-form T, no tensor entry is off by more than 10× its stderr at 2d or 5d."""
    d = 9
    mask = np.ones((d, d, d), dtype=bool)
    for i in range(d):
        mask[i, i, :] = mask[i, :, i] = False
    for gseed in (0, 1):
        f, x, _, tensor = planted_poly(d, gseed, pairs=8, triples=6, quads=3)
        for budget in (2 * d, 5 * d):
            for seed in range(3):
                res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=seed, order=3,
                                       estimator="stratified")
                t, se = res.tensor, res.tensor_stderr
                err, s = np.abs(t - tensor)[mask], se[mask]
                assert np.all(err[s == 0] < 1e-9)
                assert np.all(err <= 10 * s + 1e-9), (budget, np.max(err / np.maximum(s, 1e-300)))


def _fed(name: str, plan, base, base_phi, rows, phi, unit, n_units, u_empty, u_full):
    acc = ESTIMATORS[name](plan)
    acc.add_exact(Rows(plan, base, base_phi, None))
    acc.add_units(Rows(plan, rows, phi, plan.log_q[rows.sum(axis=1)]), unit, n_units)
    return acc.result(u_empty, u_full)


@pytest.mark.parametrize("estimator", ["stratified", "regression"])
def test_repeated_coalitions_add_no_information(estimator):
    """The same units fed twice (every coalition drawn twice) give the same estimate and the same error bars."""
    d = 8
    f, x = _mlp(d, seed=3)
    from metagame.methods.registry import get_method
    from metagame.domains.tensors.adapter import TensorModel

    model = TensorModel(f, x)
    method = get_method("gradient_x_input")
    plan = make_plan(d, 60, "metagame", "shapley", share_power=0.0 if estimator == "stratified" else -1.0)
    base = np.concatenate([np.ones((1, d), bool), np.eye(d, dtype=bool)])
    base_phi = model.attribute(method, base).detach().double().numpy()
    u_empty, u_full = base_phi[1:][np.arange(d), np.arange(d)], base_phi[0]
    rows, unit = draw_units(np.random.default_rng(0), plan, 20)
    phi = model.attribute(method, rows).detach().double().numpy()
    once = _fed(estimator, plan, base, base_phi, rows, phi, unit, 20, u_empty, u_full)
    twice = _fed(estimator, plan, base, base_phi, np.concatenate([rows, rows]), np.concatenate([phi, phi]),
                 np.concatenate([unit, 39 - unit]), 40, u_empty, u_full)  # the copies in other unit slots
    np.testing.assert_allclose(twice[0], once[0], atol=1e-10)
    np.testing.assert_allclose(twice[1], once[1], rtol=1e-8)


def _coverage(d: int, budget: int, estimator: str, games, seeds) -> tuple[float, float]:
    inside, finite = [], []
    off = ~np.eye(d, dtype=bool)
    for f, x in games:
        exact = metagame.meta_attributions(f, x, method="gradient_x_input").matrix
        for seed in seeds:
            res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=seed,
                                             estimator=estimator)
            _never_falsely_exact(res, exact, off)
            se, err = res.stderr[off], np.abs(res.matrix - exact)[off]
            use = np.isfinite(se) & (se > 0)
            finite.append(np.mean(np.isfinite(se)))
            inside.extend(err[use] <= 1.96 * se[use])
    return (float(np.mean(inside)) if inside else float("nan")), float(np.mean(finite))


def _games(d: int):
    games = [_mlp(d, seed=s, hidden=12) for s in (0, 1)]
    g = torch.Generator().manual_seed(7)
    a = torch.randn(d, generator=g, dtype=torch.float64)
    b = torch.triu(torch.randn(d, d, generator=g, dtype=torch.float64), 1) * (torch.rand(d, d, generator=g) < 0.4)
    games.append((lambda z: z @ a + ((z @ b) * z).sum(dim=1) + z[:, 0] * z[:, 1] * z[:, 2], torch.randn(d, generator=g,
                                                                                                   dtype=torch.float64)))
    return games


def test_stratified_small_budget_coverage():
    """Budget 2d: the old stratified intervals covered 0.66–0.77 of the entries and, on planted polynomials, put entries
    up to 20σ off. With about 4 sampled coalitions per target no player has 5 on each side: the process has nothing to
    be checked against, so every estimated entry is inf (with a warning), never a small bar. At 5d the bars are
    finite and cover about 95%."""
    d = 9
    with pytest.warns(RuntimeWarning, match="not identified"):
        cov, finite = _coverage(d, 2 * d, "stratified", _games(d)[:1], range(1))
    assert finite == pytest.approx(0.0) and np.isnan(cov)
    cov, finite = _coverage(d, 5 * d, "stratified", _games(d), range(6))
    assert finite >= 0.95
    assert 0.88 <= cov <= 0.99, cov


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_moderate_budget_coverage(estimator):
    d = 9
    cov, finite = _coverage(d, 20 * d, estimator, _games(d), range(3))
    assert finite == 1.0
    assert 0.85 <= cov <= 0.995, cov
