"""Many players (issue 25): error bars of the sampled estimators at d = 64 and 256 against closed-form
meta-attributions of planted polynomials (tests/planted_poly.py), and exactness when every coalition is seen."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import metagame

from planted_poly import planted_poly


def _coverage(d: int, estimator: str, budget: int, seeds) -> tuple[float, float, float]:
    """(coverage of the finite 95% intervals, share of finite stderr, worst |error| / stderr) over seeds."""
    f, x, exact, _ = planted_poly(d, 11, pairs=2 * d, triples=d, quads=d // 4)
    off = ~np.eye(d, dtype=bool)
    inside, finite, worst = [], [], 0.0
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=budget, seed=seed,
                                             estimator=estimator)
        np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-8)
        err, se = np.abs(res.matrix - exact)[off], res.stderr[off]
        assert np.all(se > 0)
        fin = np.isfinite(se)
        inside.extend(err[fin] <= 1.96 * se[fin])
        finite.append(np.mean(fin))
        worst = max(worst, float(np.max(err[fin] / se[fin])) if fin.any() else 0.0)
    return float(np.mean(inside)), float(np.mean(finite)), worst


@pytest.mark.parametrize("d,estimator", [(64, "montecarlo"), (64, "regression"), (256, "montecarlo")])
def test_coverage_at_many_players(d, estimator):
    cov, finite, worst = _coverage(d, estimator, 20 * d, seeds=(0, 1) if d == 64 and estimator == "montecarlo" else (0,))
    assert finite > 0.5, finite
    assert 0.90 <= cov <= 0.995, cov
    assert worst <= 10.0, worst


def test_every_coalition_seen_is_exact():
    """d = 8 with budget 2^8: every estimator enumerates all coalitions and returns the closed form with stderr 0."""
    f, x, exact, _ = planted_poly(8, 5, pairs=8, triples=5, quads=2)
    for estimator in ("stratified", "regression", "montecarlo"):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=2**8, seed=0, estimator=estimator)
        np.testing.assert_allclose(res.matrix, exact, atol=1e-9)
        assert np.all(res.stderr == 0)
