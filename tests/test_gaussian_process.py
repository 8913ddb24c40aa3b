"""The stratified estimator's hyperparameter fit: the analytic gradient of the pooled likelihood and the grid."""

from __future__ import annotations

import numpy as np

from metagame.run.estimators.gaussian_process import _prepare_games, _profile_nll, fit_prior


def _games(m: int = 7, n_games: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random multilinear games with pairs, observed at distinct random coalitions (one game shorter: padding)."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_games):
        z = np.unique(rng.random((40 - 7 * g, m)) < 0.5, axis=0)
        z = z[z.any(axis=1)]
        main = rng.normal(size=m)
        pair = rng.normal(size=(m, m)) * 0.4
        zf = z.astype(float)
        out.append((z, zf @ main + np.einsum("ri,ij,rj->r", zf, np.triu(pair, 1), zf)))
    return out


def test_gradient_matches_finite_differences():
    m = 7
    prepared = _prepare_games(_games(m), m)
    for theta in (np.array([1.0, np.log(0.3), -3.0]), np.array([2.5, -3.0, -1.0]), np.array([-0.5, 0.2, -6.0])):
        value, grad = _profile_nll(theta, prepared, m, grad=True)
        assert value == _profile_nll(theta, prepared, m)
        step = 1e-5
        numeric = np.array([(_profile_nll(theta + step * e, prepared, m) - _profile_nll(theta - step * e, prepared, m))
                            / (2 * step) for e in np.eye(3)])
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5 * max(1.0, abs(value)))


def test_fit_reaches_a_stationary_point_and_grid_weights_are_normalised():
    m = 7
    games = _games(m)
    prior, posterior = fit_prior(games, m)
    theta = np.array([prior.log_main, prior.log_decay, prior.log_size])
    _, grad = _profile_nll(theta, _prepare_games(games, m), m, grad=True)
    assert np.abs(grad).max() < 0.1  # inside the prior's ±4 sd box, the optimum is stationary
    weights = np.array([w for _, w in posterior])
    assert np.isclose(weights.sum(), 1.0) and np.all(weights > 0)
    assert any(p == prior for p, _ in posterior)  # the mode is a grid point and carries the most weight
    assert max(posterior, key=lambda pw: pw[1])[0] == prior
