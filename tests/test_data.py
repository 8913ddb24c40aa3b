"""Data players: KNN-Shapley closed form vs brute force, leave-one-out vs retraining, the data
metagame's row sums, training caches, gradient influence / TracIn, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import metagame
from metagame.domains.data.entry import data_adapter, data_method, explain_data
from metagame.errors import MetagameError, NotDifferentiableError
from metagame.methods import Occlusion, Shapley
from metagame.domains.data.methods import GradientInfluence, KNNShapley
from metagame.domains.tensors import TensorModel
from metagame.domains.data.adapter import Checkpoints, DataModel, KNNDataModel
from metagame.players import all_coalitions


# ---------------------------------------------------------------- references written from the definitions
def knn_utility_by_hand(X, y, Xt, yt, k, members) -> float:
    """(1/|test|) Σ_t (1/K) Σ_{k ≤ min(K,|S|)} 1[label of k-th nearest member of S = y_t]."""
    members = list(members)
    if not members:
        return 0.0
    total = 0.0
    for x_t, y_t in zip(Xt, yt):
        dist = [(float(((X[j] - x_t) ** 2).sum()), j) for j in members]
        nearest = [j for _, j in sorted(dist)[:k]]
        total += sum(float(y[j] == y_t) for j in nearest) / k
    return total / len(yt)


def shapley_by_permutations(v, players) -> dict:
    """Shapley value by averaging marginal contributions over all orderings."""
    players = list(players)
    phi = {p: 0.0 for p in players}
    perms = list(itertools.permutations(players))
    for perm in perms:
        before: list = []
        for p in perm:
            phi[p] += v(before + [p]) - v(before)
            before.append(p)
    return {p: val / len(perms) for p, val in phi.items()}


def blobs(n: int, seed: int, n_test: int = 3):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    X = r.normal(size=(n, 2)) + 1.5 * y[:, None]
    yt = r.integers(0, 2, n_test)
    Xt = r.normal(size=(n_test, 2)) + 1.5 * yt[:, None]
    return X, y, Xt, yt


# ---------------------------------------------------------------- KNN-Shapley
@pytest.mark.parametrize("k", [1, 3, 7])
def test_knn_utility_matches_definition(k):
    X, y, Xt, yt = blobs(7, seed=k)
    model = KNNDataModel(X, y, X_test=Xt, y_test=yt, k=k)
    table = model.values(all_coalitions(7)).numpy()
    for s, row in enumerate(all_coalitions(7)):
        assert table[s] == pytest.approx(knn_utility_by_hand(X, y, Xt, yt, k, np.flatnonzero(row)), abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_knn_shapley_equals_brute_force_shapley(k):
    X, y, Xt, yt = blobs(6, seed=10 + k, n_test=2)
    model = KNNDataModel(X, y, X_test=Xt, y_test=yt, k=k)
    phi = KNNShapley().attribute(model, np.ones((1, 6), dtype=bool)).numpy()[0]
    ref = shapley_by_permutations(lambda S: knn_utility_by_hand(X, y, Xt, yt, k, S), range(6))
    np.testing.assert_allclose(phi, [ref[i] for i in range(6)], atol=1e-12)


def test_knn_shapley_restricted_to_coalitions_equals_brute_force(rng):
    X, y, Xt, yt = blobs(9, seed=3, n_test=4)
    model = KNNDataModel(X, y, X_test=Xt, y_test=yt, k=3)
    coalitions = rng.random((60, 9)) < 0.6
    coalitions[0] = False
    fast = KNNShapley().attribute(model, coalitions).numpy()
    brute = Shapley(exact_limit=9).attribute(model, coalitions).numpy()
    np.testing.assert_allclose(fast, brute, atol=1e-12)
    assert np.all(fast[~coalitions] == 0)
    # efficiency inside every coalition: Σ_i φ_i(S) = U(S) − U(∅)
    np.testing.assert_allclose(fast.sum(axis=1), model.values(coalitions).numpy(), atol=1e-12)


def test_knn_shapley_as_proxy_on_a_trained_data_adapter_needs_k():
    X, y, Xt, yt = blobs(6, seed=1)
    model = DataModel(X, y, train=LogisticRegression(), X_test=Xt, y_test=yt)
    with pytest.raises(MetagameError, match="k"):
        KNNShapley().attribute(model, np.ones((1, 6), dtype=bool))
    proxy = KNNShapley(k=2).attribute(model, np.ones((1, 6), dtype=bool)).numpy()
    exact = KNNShapley().attribute(KNNDataModel(X, y, X_test=Xt, y_test=yt, k=2), np.ones((1, 6), dtype=bool)).numpy()
    np.testing.assert_allclose(proxy, exact)
    assert model.n_trainings == 0  # the proxy never trains


# ---------------------------------------------------------------- data metagame
def test_knn_data_metagame_matches_brute_force_inner_shapley_and_rows_sum():
    X, y, Xt, yt = blobs(8, seed=5, n_test=3)
    fast = explain_data(X, y, X_test=Xt, y_test=yt, k=3)
    brute = explain_data(X, y, X_test=Xt, y_test=yt, k=3, method="data_shapley")
    np.testing.assert_allclose(fast.matrix, brute.matrix, atol=1e-12)
    np.testing.assert_allclose(fast.matrix.sum(axis=1), fast.first_order, atol=1e-12)
    assert fast.player_kinds == ["data"] * 8 and fast.players[0] == "z0"
    assert fast.method == "knn_shapley"


def test_data_metagame_rows_sum_to_data_shapley_of_a_trained_model():
    X, y, Xt, yt = blobs(5, seed=2, n_test=5)
    train = LogisticRegression(C=0.5)
    res = explain_data(X, y, X_test=Xt, y_test=yt, train=train, method="data_shapley", utility="neg_log_loss")
    model = DataModel(X, y, train=train, X_test=Xt, y_test=yt, utility="neg_log_loss")

    def v(S):
        return model.score(model.trained(np.isin(np.arange(5), list(S))))

    ref = shapley_by_permutations(v, range(5))
    np.testing.assert_allclose(res.first_order, [ref[i] for i in range(5)], atol=1e-10)
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)
    assert res.exact


def test_leave_one_out_equals_retraining_by_hand():
    X, y, Xt, yt = blobs(10, seed=4, n_test=6)
    model = data_adapter(X, y, X_test=Xt, y_test=yt, train=LogisticRegression(), utility="neg_log_loss")
    loo = Occlusion().attribute(model, np.ones((1, 10), dtype=bool)).numpy()[0]

    def nll(est):
        p = est.predict_proba(Xt)[np.arange(len(yt)), yt]
        return float(np.mean(np.log(p)))

    full = nll(LogisticRegression().fit(X, y))
    for i in range(10):
        keep = np.arange(10) != i
        assert loo[i] == pytest.approx(full - nll(LogisticRegression().fit(X[keep], y[keep])), abs=1e-9)


def test_training_is_cached_and_never_repeated():
    X, y, Xt, yt = blobs(6, seed=7)
    seen: list[tuple[int, ...]] = []

    def train(Xs, ys, seed):
        seen.append(tuple(np.round(Xs[:, 0], 12)))
        assert seed == 3
        return {"mean": float(np.mean(ys))}

    def utility(m, X_test, y_test):
        return -abs(m["mean"] - float(np.mean(y_test)))

    model = DataModel(X, y, train=train, X_test=Xt, y_test=yt, utility=utility, seed=3)
    metagame.explain(model, "banzhaf")
    metagame.explain(model, "occlusion")
    Shapley().attribute(model, all_coalitions(6))
    assert model.n_trainings == len(seen) == 63  # every non-empty subset exactly once
    assert len(set(seen)) == len(seen)


def test_empty_and_single_class_subsets_get_the_documented_utility():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = DataModel(X, y, train=LogisticRegression(), X_test=[[0.5], [2.5], [3.0]], y_test=[0, 1, 1], empty_value=-1.0)
    vals = model.values(np.array([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]], dtype=bool)).numpy()
    np.testing.assert_allclose(vals, [-1.0, 1 / 3, 2 / 3])
    assert model.n_trainings == 0


# ---------------------------------------------------------------- gradient influence / TracIn
def _linear_train(lr: float, steps: int, checkpoints: bool):
    def train(Xs, ys, seed):
        torch.manual_seed(seed)
        net = torch.nn.Linear(Xs.shape[1], 1, bias=False).double()
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        saved = []
        for _ in range(steps):
            saved.append(torch.nn.Linear(Xs.shape[1], 1, bias=False).double())
            saved[-1].load_state_dict(net.state_dict())
            opt.zero_grad()
            ((net(Xs).reshape(-1) - ys) ** 2).mean().backward()
            opt.step()
        return Checkpoints(saved, lr) if checkpoints else net

    return train


@pytest.mark.parametrize("checkpoints", [False, True])
def test_gradient_influence_equals_hand_computed_tracin(checkpoints):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(5, generator=g, dtype=torch.float64)
    Xt, yt = torch.randn(2, 3, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    train = _linear_train(0.1, 4, checkpoints)
    model = DataModel(X, y, train=train, X_test=Xt, y_test=yt, utility="neg_mse")
    S = np.array([[1, 1, 0, 1, 1]], dtype=bool)
    phi = GradientInfluence().attribute(model, S).numpy()[0]
    trained = model.trained(S[0])
    pairs = trained.pairs() if checkpoints else [(trained, 1.0)]
    expected = np.zeros(5)
    for net, lr in pairs:
        w = net.weight.detach().reshape(-1)
        grad_test_loss = (2 * (Xt @ w - yt)[:, None] * Xt).mean(dim=0)  # ∇ mean squared test error
        for i in np.flatnonzero(S[0]):
            grad_i = 2 * (X[i] @ w - y[i]) * X[i]
            expected[i] += lr * float(grad_test_loss @ grad_i)  # −∇U·∇ℓ_i with U = −test MSE
    np.testing.assert_allclose(phi, expected, rtol=1e-10, atol=1e-12)
    assert phi[2] == 0.0
    res = explain_data(X, y, X_test=Xt, y_test=yt, train=train, utility="neg_mse", method="tracin")
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)


# ---------------------------------------------------------------- bad input
def test_failing_training_function_names_the_subset():
    X, y, Xt, yt = blobs(5, seed=0)

    def train(Xs, ys, seed):
        if len(Xs) == 2:
            raise RuntimeError("too few points")
        return {"n": len(Xs)}

    model = DataModel(X, y, train=train, X_test=Xt, y_test=yt, utility=lambda m, a, b: m["n"])
    with pytest.raises(MetagameError, match=r"subset S = \{0:'z0', 3:'z3'\}.*too few points"):
        model.values(np.array([[1, 0, 0, 1, 0]], dtype=bool))


def test_bad_input_errors():
    X, y, Xt, yt = blobs(25, seed=0)
    big = KNNDataModel(X, y, X_test=Xt, y_test=yt, k=3)
    with pytest.raises(MetagameError, match="budget"):
        metagame.explain(big, KNNShapley())
    small = KNNDataModel(X[:5], y[:5], X_test=Xt, y_test=yt, k=3)
    with pytest.raises(NotDifferentiableError, match="no gradient path"):
        metagame.explain(small, "integrated_gradients")
    with pytest.raises(MetagameError, match="gradient_influence needs a DataModel"):
        GradientInfluence().attribute(small, np.ones((1, 5), dtype=bool))
    with pytest.raises(MetagameError, match="not a data adapter"):
        KNNShapley(k=2).attribute(TensorModel(lambda x: x.sum(1), torch.ones(3)), np.ones((1, 3), dtype=bool))
    with pytest.raises(MetagameError, match="X_test"):
        DataModel(X, y, train=LogisticRegression(), X_test=None, y_test=None)
    with pytest.raises(MetagameError, match="unknown utility"):
        DataModel(X, y, train=LogisticRegression(), X_test=Xt, y_test=yt, utility="f1")
    with pytest.raises(MetagameError, match="one label per point"):
        KNNDataModel(X, y[:3], X_test=Xt, y_test=yt)
    with pytest.raises(MetagameError, match="unexpected options"):
        data_method("knn_shapley", {"n_neighbours": 3})


def test_sampled_data_metagame_with_budget():
    pytest.importorskip("metagame.run.estimators")
    X, y, Xt, yt = blobs(40, seed=8, n_test=5)
    res = explain_data(X, y, X_test=Xt, y_test=yt, k=5, budget=400, seed=0)
    exact_first = KNNShapley().attribute(KNNDataModel(X, y, X_test=Xt, y_test=yt, k=5), np.ones((1, 40), dtype=bool)).numpy()[0]
    np.testing.assert_allclose(res.first_order, exact_first, atol=1e-10)
    assert res.matrix.shape == (40, 40) and not res.exact
