"""shapiq interop: to_shapiq against the definition of the Shapley-Taylor index and shapiq's own exact STII; a shapiq
Game as a model; the pair conventions; np.asarray."""

from itertools import combinations
from math import comb

import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError

shapiq = pytest.importorskip("shapiq")


def v(c):
    c = np.asarray(c, dtype=float)
    return 0.5 + c[:, 0] + 2 * c[:, 0] * c[:, 1] + 3 * c[:, 1] * c[:, 2] * c[:, 3] - c[:, 2] * c[:, 4]


class Poly(shapiq.Game):
    def __init__(self):
        super().__init__(n_players=5, normalize=False, player_names=["a", "b", "c", "d", "e"])

    def value_function(self, coalitions):
        return v(coalitions)


def brute_stii(d):
    """Order-2 STII from its definition: pairs Σ_T 2/d · C(d−1, |T|)^{-1} Δ_ij v(T), singletons v({i}) − v(∅)."""
    def val(s):
        row = np.zeros((1, d), dtype=bool)
        row[0, list(s)] = True
        return float(v(row)[0])

    out = {(): val(())}
    for i in range(d):
        out[(i,)] = val((i,)) - val(())
    for i, j in combinations(range(d), 2):
        rest = [p for p in range(d) if p not in (i, j)]
        total = 0.0
        for k in range(len(rest) + 1):
            for t in combinations(rest, k):
                delta = val(t + (i, j)) - val(t + (i,)) - val(t + (j,)) + val(t)
                total += 2 / d / comb(d - 1, k) * delta
        out[(i, j)] = total
    return out


def test_game_as_model_and_meta_sv_to_shapiq_is_stii():
    game = Poly()
    res = metagame.meta_attributions(game)  # a set function: Shapley inner method by default
    assert res.players == ["a", "b", "c", "d", "e"] and res.exact
    np.testing.assert_allclose(res.row_sums(), res.first_order, atol=1e-12)
    iv = res.to_shapiq()
    assert iv.index == "STII" and iv.max_order == 2 and not iv.estimated
    want = brute_stii(5)
    for key, value in want.items():
        assert iv[key] == pytest.approx(value, abs=1e-12), key
    exact = shapiq.ExactComputer(game=game, n_players=5)(index="STII", order=2)
    for key in want:
        assert iv[key] == pytest.approx(exact[key], abs=1e-9)
    # the Shapley-Taylor entry point gives the same InteractionValues
    f = lambda x: torch.as_tensor(v(x.numpy() > 0.5))
    st = metagame.shapley_taylor(f, torch.ones(5, dtype=torch.float64)).to_shapiq()
    for key, value in want.items():
        assert st[key] == pytest.approx(value, abs=1e-12)


def test_other_inner_method_mapping_by_hand():
    f = lambda x: x[:, 0] + x[:, 0] * x[:, 1] ** 2
    res = metagame.meta_attributions(f, torch.tensor([2.0, 3.0], dtype=torch.float64), method="integrated_gradients")
    iv = res.to_shapiq()  # M = [[2, 6], [12, 0]] by hand (README)
    assert iv.index == "Meta-integrated_gradients"
    assert iv[(0,)] == pytest.approx(2) and iv[(1,)] == pytest.approx(0) and iv[(0, 1)] == pytest.approx(18)
    assert iv[()] == pytest.approx(0.0)
    np.testing.assert_array_equal(np.asarray(res), res.matrix)
    assert np.asarray(res) is not res.matrix  # a copy: the result stays as it is


def test_refusals_serial_banzhaf_and_unknown_errors():
    game = Poly()
    for kw in ({"variant": "serial"}, {"value": "banzhaf"}):
        with pytest.raises(MetagameError, match="no matching index"):
            metagame.meta_attributions(game, **kw).to_shapiq()
    res = metagame.meta_attributions(game)
    res.exact, res.stderr = False, None
    with pytest.raises(MetagameError, match="no standard errors"):
        res.to_shapiq()
    res.stderr = np.zeros((5, 5))
    res.stderr[1, 2] = np.inf
    with pytest.raises(MetagameError, match="stderr = inf"):
        res.to_shapiq()
    with pytest.raises(MetagameError, match="gradient"):
        metagame.meta_attributions(game, method="integrated_gradients")


def test_top_pairs_one_convention():
    m = np.array([[1.0, -5.0, 0.5], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    res = metagame.MetaAttribution(matrix=m, first_order=m.sum(1), players=["p", "q", "r"], method="x")
    top = res.top_pairs(2)
    assert top[0] == (0, 1, -5.0) and top[0].target == 0 and top[0].source == 1
    assert top[1] == (2, 1, 3.0)
    for t in res.top_pairs(10):
        assert res.matrix[t.target, t.source] == t.value
    st = metagame.InteractionResult(matrix=m + m.T, players=["p", "q", "r"])
    assert st.top_pairs(1)[0] == (0, 1, -3.0)
