"""Shared-sample estimators (metagame.run.estimators): convergence, honest errors, budget, seeds, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError
from metagame.run import RunOptions
from metagame.run.estimators import estimate_meta_attributions
from metagame.methods.registry import get_method
from metagame.models.tensor import TensorModel


def _mlp(d: int, seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    x = torch.randn(d, dtype=torch.float64)
    return (lambda z: net(z)[:, 0]), x


@pytest.fixture(scope="module")
def case7():
    f, x = _mlp(7)
    exact = metagame.meta_attributions(f, x, method="gradient_x_input")
    return f, x, exact


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("estimator", ["stratified", "regression", "montecarlo"])
def test_converges_with_honest_intervals(case7, estimator):
    f, x, exact = case7
    errs = []
    for budget in (24, 48, 100):
        runs = [
            metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=s, estimator=estimator)
            for s in range(3)
        ]
        errs.append(np.mean([_rel(r.matrix, exact.matrix) for r in runs]))
    assert errs[2] < errs[0] * 0.7, errs
    off = ~np.eye(7, dtype=bool)
    inside = []
    for s in (10, 11, 12):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=60, seed=s, estimator=estimator)
        inside.append(np.abs(res.matrix - exact.matrix)[off] <= 1.96 * res.stderr[off] + 1e-12)
    assert np.mean(inside) >= 0.8, np.mean(inside)
    assert not res.exact and res.stderr.shape == (7, 7)


@pytest.mark.parametrize("estimator", ["stratified", "regression", "montecarlo"])
def test_rows_sum_diagonal_exact_budget_respected(case7, estimator):
    f, x, exact = case7
    calls = {"n": 0}

    def counted(z):
        calls["n"] += z.shape[0]
        return f(z)

    res = metagame.meta_attributions(counted, x, method="gradient_x_input", budget=41, seed=0, estimator=estimator)
    # one model row per gradient×input call, plus f(x) and f(∅) for the result's context
    assert res.n_evaluations <= 41 and calls["n"] <= 41 + 2
    np.testing.assert_allclose(res.matrix.sum(axis=1), exact.first_order, atol=1e-10)
    np.testing.assert_allclose(np.diag(res.matrix), np.diag(exact.matrix), atol=1e-12)
    assert np.all(np.diag(res.stderr) == 0)
    assert res.metadata["parameters"]["estimator"] == estimator


def test_seed_reproduces_and_differs(case7):
    f, x, _ = case7
    a = metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, seed=5)
    b = metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, seed=5)
    c = metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, seed=6)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.matrix, c.matrix)


def test_budget_errors(case7):
    f, x, _ = case7
    with pytest.raises(MetagameError, match="at least 8"):
        metagame.meta_attributions(f, x, method="gradient_x_input", budget=7)
    for bad in (0, -3):
        with pytest.raises(MetagameError, match="positive"):
            metagame.meta_attributions(f, x, method="gradient_x_input", budget=bad)
    with pytest.raises(MetagameError, match="banzhaf"):
        metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, value="banzhaf", estimator="regression")
    with pytest.raises(MetagameError, match="banzhaf"):
        metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, value="banzhaf", estimator="stratified")
    with pytest.raises(MetagameError, match="estimator"):
        metagame.meta_attributions(f, x, method="gradient_x_input", budget=50, estimator="magic")


def test_exact_needs_budget_beyond_limit():
    f, x = _mlp(24)
    with pytest.raises(MetagameError, match="budget"):
        metagame.meta_attributions(f, x, method="gradient_x_input")


def test_large_budget_is_exact(case7):
    f, x, exact = case7
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=2**7, seed=0)
    np.testing.assert_allclose(res.matrix, exact.matrix, atol=1e-10)
    assert np.all(res.stderr == 0)


@pytest.mark.parametrize("variant,value", [("serial", "shapley"), ("metagame", "banzhaf"), ("serial", "banzhaf")])
def test_other_variants_and_values(case7, variant, value):
    f, x, _ = case7
    exact = metagame.meta_attributions(f, x, method="integrated_gradients", variant=variant, value=value)
    small = [metagame.meta_attributions(f, x, method="integrated_gradients", variant=variant, value=value, budget=30,
                                        seed=s) for s in range(3)]
    big = [metagame.meta_attributions(f, x, method="integrated_gradients", variant=variant, value=value, budget=110,
                                      seed=s) for s in range(3)]
    e_small = np.mean([_rel(r.matrix, exact.matrix) for r in small])
    e_big = np.mean([_rel(r.matrix, exact.matrix) for r in big])
    assert e_big < e_small, (e_small, e_big)
    if value == "shapley":
        np.testing.assert_allclose(big[0].matrix.sum(axis=1), exact.matrix.sum(axis=1), atol=1e-10)


def test_tol_stops_early():
    # d = 10: the first batch puts every player on both sides of ≥ 5 sampled coalitions of every target's game
    # (fewer leave stderr = inf, which no tol accepts)
    f, x = _mlp(10)
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=600, seed=0, estimator="montecarlo",
                                     tol=1e3)
    p = res.metadata["parameters"]
    assert p["stopped_early"] and p["n_evaluations"] < 600 and np.all(res.stderr < 1e3)


def test_tol_progress_shows_the_worst_stderr(capsys):
    f, x = _mlp(10)
    metagame.meta_attributions(f, x, method="gradient_x_input", budget=600, seed=0, estimator="montecarlo",
                               tol=1e-9, progress=True)
    assert "worst stderr" in capsys.readouterr().err


def test_checkpoint_resume_identical(tmp_path, case7):
    f, x, _ = case7
    path = str(tmp_path / "run.npz")
    limit = {"n": 60}

    def fragile(z):
        limit["n"] -= z.shape[0]
        if limit["n"] < 0:
            raise KeyboardInterrupt
        return f(z)

    kw = dict(method="gradient_x_input", budget=100, seed=2, estimator="montecarlo", checkpoint=path)
    with pytest.raises(KeyboardInterrupt):
        metagame.meta_attributions(fragile, x, **kw)
    resumed = metagame.meta_attributions(f, x, **kw)
    fresh = metagame.meta_attributions(f, x, method="gradient_x_input", budget=100, seed=2, estimator="montecarlo")
    np.testing.assert_array_equal(resumed.matrix, fresh.matrix)
    np.testing.assert_array_equal(resumed.stderr, fresh.stderr)
    p = resumed.metadata["parameters"]
    assert p["resumed_evaluations"] > 0 and p["n_new_evaluations"] < fresh.metadata["parameters"]["n_new_evaluations"]
    again = metagame.meta_attributions(f, x, **kw)  # everything already in the file
    assert again.metadata["parameters"]["n_new_evaluations"] == 0
    np.testing.assert_array_equal(again.matrix, fresh.matrix)
    with pytest.raises(MetagameError, match="checkpoint"):
        metagame.meta_attributions(f, x, **{**kw, "seed": 3})


def test_many_players_memory_bounded():
    d = 512
    torch.manual_seed(0)
    w = torch.randn(d, dtype=torch.float64)
    x = torch.randn(d, dtype=torch.float64)
    model = TensorModel(lambda z: torch.tanh(z @ w / 8.0), x)
    with pytest.warns(RuntimeWarning, match="not identified"):
        est = estimate_meta_attributions(model, get_method("gradient_x_input"), RunOptions(budget=600, seed=0))
    assert est.params["estimator"] == "montecarlo" and est.n_evaluations <= 600
    # 88 sampled calls for 512 players: almost no entry has 5 sampled coalitions on both sides of its player
    off = ~np.eye(d, dtype=bool)
    assert est.matrix.shape == (d, d) and np.mean(np.isinf(est.stderr[off])) > 0.95
    assert est.params["unidentified_entries"] == np.isinf(est.stderr[off]).sum()
    np.testing.assert_allclose(est.matrix.sum(axis=1), est.first_order, atol=1e-8)


def test_stratified_is_default_and_beats_regression():
    """The Gaussian-process control variate of the stratified estimator removes most of a smooth game's variance."""
    f, x = _mlp(9, seed=1)
    exact = metagame.meta_attributions(f, x, method="integrated_gradients", method_kwargs={"n_steps": 8})
    errs = {}
    for name in ("auto", "regression"):
        runs = [metagame.meta_attributions(f, x, method="integrated_gradients", method_kwargs={"n_steps": 8},
                                           budget=200, seed=s, estimator=name) for s in range(3)]
        errs[name] = np.mean([_rel(r.matrix, exact.matrix) for r in runs])
    assert runs[0].metadata["parameters"]["estimator"] == "regression"
    auto = metagame.meta_attributions(f, x, method="integrated_gradients", method_kwargs={"n_steps": 8}, budget=200,
                                      seed=0)
    assert auto.metadata["parameters"]["estimator"] == "stratified"
    assert errs["auto"] < 0.7 * errs["regression"], errs
    np.testing.assert_allclose(auto.matrix.sum(axis=1), exact.first_order, atol=1e-10)


def test_stratified_serial_variant_converges(case7):
    f, x, _ = case7
    exact = metagame.meta_attributions(f, x, method="gradient_x_input", variant="serial")
    e = [np.mean([_rel(metagame.meta_attributions(f, x, method="gradient_x_input", variant="serial", budget=b, seed=s,
                                                  estimator="stratified").matrix, exact.matrix) for s in range(3)])
         for b in (30, 110)]
    assert e[1] < e[0], e


@pytest.mark.parametrize("variant,value,estimator", [
    ("metagame", "shapley", "stratified"), ("metagame", "shapley", "regression"),
    ("metagame", "shapley", "montecarlo"), ("serial", "shapley", "stratified"), ("metagame", "banzhaf", "montecarlo"),
    ("metagame", "shapley", "sparse"), ("serial", "shapley", "sparse"),
])
def test_unsampled_entries_are_not_claimed_exact(variant, value, estimator):
    """At the minimum budget nothing beyond N and the singletons is seen: stderr inf (never 0), even split."""
    d = 9
    f, x = _mlp(d)
    budget = d + 1 if variant == "metagame" else d + 2
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=0, estimator=estimator,
                                     variant=variant, value=value)
    off = ~np.eye(d, dtype=bool) if variant == "metagame" else np.ones((d, d), dtype=bool)
    assert np.all(np.isinf(res.stderr[off])) and np.all(np.isfinite(res.matrix))
    p = res.metadata["parameters"]
    assert p["unidentified_entries"] == off.sum() and "not identified" in p["stderr_note"]
    if variant == "metagame" and value == "shapley":
        even = (res.first_order - np.diag(res.matrix)) / (d - 1)
        np.testing.assert_allclose(res.matrix[off].reshape(d, d - 1), np.repeat(even[:, None], d - 1, 1), atol=1e-12)
        np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-12)


@pytest.mark.parametrize("d", [5, 9, 22])
def test_small_budgets_stay_stable_and_never_report_zero_error(d):
    """Budgets d + 1 … 4d: finite bounded estimates, exact row sums, stderr > 0 wherever anything was sampled."""
    f, x = _mlp(d)
    budgets = sorted({d + 1, d + 3, 2 * d, 3 * d, 4 * d} | ({64, 66} if d == 22 else set()))
    off = ~np.eye(d, dtype=bool)
    for estimator in ("stratified", "regression", "montecarlo", "sparse"):
        for budget in budgets:
            res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=0,
                                             estimator=estimator)
            scale = np.abs(res.first_order).max()
            assert np.all(np.isfinite(res.matrix)) and np.abs(res.matrix).max() < 10 * scale, (estimator, budget)
            np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)
            if res.metadata["parameters"]["sampled_sizes"]:  # not everything enumerated: no zero error bars
                assert np.all(res.stderr[off] > 0), (estimator, budget)
                finite = np.isfinite(res.stderr[off])
                assert np.all(res.stderr[off][finite] < 10 * scale), (estimator, budget)


def test_regression_rank_deficient_fit_stays_at_even_split():
    """Underdetermined per-target least squares: minimum-norm deviation from the even split, inf stderr there."""
    d = 22
    f, x = _mlp(d)
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=30, seed=0, estimator="regression")
    off = ~np.eye(d, dtype=bool)
    assert 0 < res.metadata["parameters"]["unidentified_entries"] <= off.sum()
    assert np.abs(res.matrix).max() < 10 * np.abs(res.first_order).max()
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)
    assert not np.any(res.stderr[off] == 0)


@pytest.mark.parametrize("estimator", ["stratified", "regression", "montecarlo", "sparse"])
def test_small_budget_intervals_cover(estimator):
    """A few units per target: ±1.96·stderr (Student-t scaled) still covers most finite entries at d = 9."""
    d = 9
    f, x = _mlp(d)
    exact = metagame.meta_attributions(f, x, method="gradient_x_input").matrix
    off = ~np.eye(d, dtype=bool)
    inside = []
    for s in range(4):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=3 * d, seed=s, estimator=estimator)
        se, err = res.stderr[off], np.abs(res.matrix - exact)[off]
        fin = np.isfinite(se)
        inside.extend(err[fin] <= 1.96 * se[fin] + 1e-12)
    assert len(inside) > 0 and np.mean(inside) >= 0.85, np.mean(inside)
