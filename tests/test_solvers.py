"""Exact solvers: Möbius/zeta, Shapley/Banzhaf on games with known Möbius coefficients, STII."""

from __future__ import annotations

import itertools
from math import comb, factorial

import numpy as np
import pytest

from metagame.games import FunctionGame, MoebiusGame
from metagame.players import all_coalitions
from metagame.players.coalitions import coalition_index
from metagame.solvers import banzhaf_values, moebius, shapley_taylor, shapley_values, zeta


def _random_coefficients(rng, d: int, k: int) -> dict[tuple[int, ...], np.ndarray]:
    coeffs = {}
    for size in range(d + 1):
        for a in itertools.combinations(range(d), size):
            if rng.random() < 0.6:
                coeffs[a] = rng.normal(size=k)
    return coeffs


def _brute_shapley(v: np.ndarray, d: int) -> np.ndarray:
    """Shapley values by the subset formula over a bitmask table ``v[2**d]``."""
    phi = np.zeros(d)
    for i in range(d):
        for s in range(2**d):
            if s >> i & 1:
                continue
            t = bin(s).count("1")
            w = factorial(t) * factorial(d - t - 1) / factorial(d)
            phi[i] += w * (v[s | 1 << i] - v[s])
    return phi


def test_moebius_zeta_round_trip(rng):
    for d in (1, 3, 6):
        v = rng.normal(size=(2**d, 3))
        np.testing.assert_allclose(zeta(moebius(v)), v, atol=1e-12)
        np.testing.assert_allclose(moebius(zeta(v)), v, atol=1e-12)
        # 1-d tables keep their shape
        assert moebius(v[:, 0]).shape == (2**d,)


def test_moebius_recovers_known_coefficients(rng):
    d, k = 5, 2
    coeffs = _random_coefficients(rng, d, k)
    game = MoebiusGame(coeffs, d)
    m = moebius(game(all_coalitions(d)))
    expected = np.zeros((2**d, k))
    for a, value in coeffs.items():
        expected[sum(1 << i for i in a)] = value
    np.testing.assert_allclose(m, expected, atol=1e-12)


def test_shapley_and_banzhaf_on_moebius_games(rng):
    for d, k in ((1, 1), (4, 3), (6, 2)):
        coeffs = _random_coefficients(rng, d, k)
        table = MoebiusGame(coeffs, d).table()
        shap = np.zeros((d, k))
        banz = np.zeros((d, k))
        for a, value in coeffs.items():
            for i in a:
                shap[i] += value / len(a)
                banz[i] += value / 2 ** (len(a) - 1)
        np.testing.assert_allclose(shapley_values(table), shap, atol=1e-12)
        np.testing.assert_allclose(banzhaf_values(table), banz, atol=1e-12)
        # efficiency of the Shapley value, per output
        np.testing.assert_allclose(shap.sum(0), table[-1] - table[0], atol=1e-12)


def test_vector_valued_equals_column_by_column(rng):
    d, k = 5, 4
    v = rng.normal(size=(2**d, k))
    for solver in (shapley_values, banzhaf_values, moebius, shapley_taylor):
        joint = solver(v)
        for c in range(k):
            np.testing.assert_allclose(joint[..., c], solver(v[:, c]), atol=1e-12)


def test_shapley_values_match_subset_formula(rng):
    d = 5
    v = rng.normal(size=2**d)
    np.testing.assert_allclose(shapley_values(v), _brute_shapley(v, d), atol=1e-12)


def test_shapley_taylor_closed_form(rng):
    d = 4
    coeffs = {a: np.array([rng.normal()]) for s in range(d + 1) for a in itertools.combinations(range(d), s)}
    stii = shapley_taylor(MoebiusGame(coeffs, d).table()[:, 0])
    for i, j in itertools.combinations(range(d), 2):
        want = sum(float(v[0]) / comb(len(a), 2) for a, v in coeffs.items() if i in a and j in a)
        assert stii[i, j] == pytest.approx(want, abs=1e-12)
        assert stii[j, i] == pytest.approx(want, abs=1e-12)
    for i in range(d):
        assert stii[i, i] == pytest.approx(float(coeffs[(i,)][0]), abs=1e-12)


def test_shapley_taylor_equals_shapiq(rng):
    shapiq = pytest.importorskip("shapiq", reason="shapiq is not installed (pip install metagame[shapiq])")
    d = 5
    v = rng.normal(size=2**d)

    def game(coalitions):
        return v[coalition_index(np.asarray(coalitions, dtype=bool))]

    iv = shapiq.ExactComputer(game, n_players=d)("STII", order=2)
    ours = shapley_taylor(v)
    for i in range(d):
        assert ours[i, i] == pytest.approx(iv[(i,)], abs=1e-10)
        for j in range(i + 1, d):
            assert ours[i, j] == pytest.approx(iv[(i, j)], abs=1e-10)


def test_game_cache_and_counter():
    calls = []

    def fn(c):
        calls.append(len(c))
        return c.sum(axis=1).astype(float)

    game = FunctionGame(fn, 3, cache=True, batch_size=2)
    rows = all_coalitions(3)
    first = game(np.concatenate([rows, rows]))  # duplicates inside one batch are evaluated once
    assert game.n_evaluations == 8 and sum(calls) == 8
    again = game(rows[::-1])
    assert game.n_evaluations == 8  # all cached
    np.testing.assert_array_equal(again[::-1], first[:8])
    uncached = FunctionGame(fn, 3)
    uncached(rows)
    uncached(rows)
    assert uncached.n_evaluations == 16
