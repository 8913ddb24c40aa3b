"""The exact metagame: SPEC.md's worked example, brute force for all nine methods, Meta-SV facts,
routes, call counting."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest
import torch

import metagame
from metagame.games import AttributionGame
from metagame.methods import AttributionMethod, GradientXInput, Shapley, get_method
from metagame.run import exact_meta_attributions
from metagame.domains.tensors import TensorModel
from metagame.players import all_coalitions
from metagame.players.coalitions import coalition_keys

NINE = ["saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "occlusion", "shapley", "banzhaf", "kernel_shap", "lime"]
KWARGS = {"integrated_gradients": {"n_steps": 6}, "smoothgrad": {"n_samples": 4, "stdev": 0.3, "seed": 3}}


# ---------------------------------------------------------------- helpers written from the definitions
def random_mlp(d: int, seed: int, hidden: int = 6):
    """A small random tanh MLP in float64, f: [n, d] -> [n]."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, hidden, generator=g, dtype=torch.float64)
    b1 = torch.randn(hidden, generator=g, dtype=torch.float64) * 0.3
    w2 = torch.randn(hidden, generator=g, dtype=torch.float64)
    return lambda x: torch.tanh(x @ w1 + b1) @ w2 + 0.2 * x[:, 0] * x[:, -1]


def single_attribution(name: str, f, x, b, members) -> np.ndarray:
    """φ(f, x_S) by one call of the method on a fresh adapter, S given by its members."""
    d = x.shape[0]
    row = np.zeros((1, d), dtype=bool)
    row[0, list(members)] = True
    method = get_method(name, KWARGS.get(name))
    return method.attribute(TensorModel(f, x, b), row).double().numpy()[0]


def shapley_of_game(u: dict, players: list[int], j: int) -> float:
    """Shapley value of j in the game u (keys: frozensets of players) by the subset formula."""
    n = len(players)
    others = [p for p in players if p != j]
    total = 0.0
    for t in range(n):
        w = factorial(t) * factorial(n - t - 1) / factorial(n)
        for T in itertools.combinations(others, t):
            total += w * (u[frozenset(T) | {j}] - u[frozenset(T)])
    return total


def banzhaf_of_game(u: dict, players: list[int], j: int) -> float:
    others = [p for p in players if p != j]
    diffs = [u[frozenset(T) | {j}] - u[frozenset(T)] for t in range(len(others) + 1) for T in itertools.combinations(others, t)]
    return float(np.mean(diffs))


def brute_metagame(name: str, f, x, b, value: str = "shapley") -> np.ndarray:
    """M[i, j] = value of j in u_i(T) = φ_i(f, x_{T∪{i}}), M[i, i] = φ_i(f, x_{{i}})."""
    d = x.shape[0]
    solve = shapley_of_game if value == "shapley" else banzhaf_of_game
    out = np.zeros((d, d))
    for i in range(d):
        rest = [p for p in range(d) if p != i]
        u = {}
        for t in range(d):
            for T in itertools.combinations(rest, t):
                u[frozenset(T)] = single_attribution(name, f, x, b, set(T) | {i})[i]
        for j in rest:
            out[i, j] = solve(u, rest, j)
        out[i, i] = u[frozenset()]
    return out


def brute_serial(name: str, f, x, b) -> np.ndarray:
    """M[i, :] = Shapley values of ν_i(S) = φ_i(f, x_S) over all d players."""
    d = x.shape[0]
    tables = {frozenset(S): single_attribution(name, f, x, b, S) for t in range(d + 1) for S in itertools.combinations(range(d), t)}
    out = np.zeros((d, d))
    for i in range(d):
        u = {S: phi[i] for S, phi in tables.items()}
        for j in range(d):
            out[i, j] = shapley_of_game(u, list(range(d)), j)
    return out


# ---------------------------------------------------------------- SPEC.md's worked example
def _example():
    x = torch.tensor([1.3, -0.7], dtype=torch.float64)
    f = lambda z: z[:, 0] + z[:, 0] * z[:, 1] ** 2
    x1, i_ = 1.3, 1.3 * 0.49
    return f, x, x1, i_


@pytest.mark.parametrize(
    "method, variant, row1, row2",
    [
        ("gradient_x_input", "metagame", lambda x1, I: [x1, I], lambda x1, I: [2 * I, 0.0]),
        ("integrated_gradients", "metagame", lambda x1, I: [x1, I / 3], lambda x1, I: [2 * I / 3, 0.0]),
        ("shapley", "metagame", lambda x1, I: [x1, I / 2], lambda x1, I: [I / 2, 0.0]),
        ("shapley", "serial", lambda x1, I: [x1 + I / 4, I / 4], lambda x1, I: [I / 4, I / 4]),
    ],
)
def test_worked_example(method, variant, row1, row2):
    f, x, x1, I = _example()
    res = metagame.meta_attributions(f, x, method=method, variant=variant, method_kwargs={"n_steps": 4} if method == "integrated_gradients" else None)
    want = np.array([row1(x1, I), row2(x1, I)])
    np.testing.assert_allclose(res.matrix, want, atol=1e-8)
    # float64 is kept end to end: equal to 1e-12 relative where non-zero
    nz = want != 0
    np.testing.assert_allclose(res.matrix[nz], want[nz], rtol=1e-12)
    assert np.all(np.abs(res.matrix[~nz]) < 1e-14)
    first = {"gradient_x_input": [x1 + I, 2 * I], "integrated_gradients": [x1 + I / 3, 2 * I / 3], "shapley": [x1 + I / 2, I / 2]}[method]
    np.testing.assert_allclose(res.first_order, first, rtol=1e-12)
    np.testing.assert_allclose(metagame.attribute(f, x, method=method), first, rtol=1e-12)
    assert res.variant == variant and res.exact and res.stderr is None


# ---------------------------------------------------------------- brute force, all nine methods
@pytest.mark.parametrize("name", NINE)
def test_metagame_equals_brute_force(name):
    d = 5
    f = random_mlp(d, seed=1)
    x = torch.linspace(-1.0, 1.2, d, dtype=torch.float64)
    b = torch.full((d,), 0.1, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, b, method=name, method_kwargs=KWARGS.get(name))
    np.testing.assert_allclose(res.matrix, brute_metagame(name, f, x, b), atol=1e-9)
    phi_x = single_attribution(name, f, x, b, range(d))
    np.testing.assert_allclose(res.first_order, phi_x, atol=1e-10)
    np.testing.assert_allclose(res.matrix.sum(axis=1), phi_x, atol=1e-9)  # rows sum to φ_i(x)

    serial = metagame.meta_attributions(f, x, b, method=name, variant="serial", method_kwargs=KWARGS.get(name))
    np.testing.assert_allclose(serial.matrix, brute_serial(name, f, x, b), atol=1e-9)
    phi_b = single_attribution(name, f, x, b, [])
    np.testing.assert_allclose(serial.matrix.sum(axis=1), phi_x - phi_b, atol=1e-9)


@pytest.mark.parametrize("name", ["integrated_gradients", "shapley", "occlusion"])
def test_metagame_brute_force_d6_and_banzhaf_outer(name):
    d = 6
    f = random_mlp(d, seed=2, hidden=4)
    x = torch.linspace(-0.8, 1.0, d, dtype=torch.float64)
    b = torch.zeros(d, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, b, method=name, method_kwargs=KWARGS.get(name))
    np.testing.assert_allclose(res.matrix, brute_metagame(name, f, x, b), atol=1e-9)
    banz = metagame.meta_attributions(f, x, b, method=name, value="banzhaf", method_kwargs=KWARGS.get(name))
    np.testing.assert_allclose(banz.matrix, brute_metagame(name, f, x, b, value="banzhaf"), atol=1e-9)
    assert banz.value == "banzhaf"


# ---------------------------------------------------------------- Meta-SV facts and the fast route
class _ShapleyWithoutTable(Shapley):
    """The Shapley method with its table shortcut switched off (forces the generic route)."""

    @property
    def table_rule(self):
        return None


def test_meta_sv_symmetric_and_stii():
    d = 5
    f = random_mlp(d, seed=4)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    res = metagame.meta_attributions(f, x, method="shapley")
    m = res.matrix
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    stii = metagame.shapley_taylor(f, x)
    off = ~np.eye(d, dtype=bool)
    np.testing.assert_allclose((m + m.T)[off], stii[off], atol=1e-12)
    np.testing.assert_allclose(np.diag(m), np.diag(stii), atol=1e-12)


def test_shapley_taylor_api_equals_shapiq():
    shapiq = pytest.importorskip("shapiq", reason="shapiq is not installed (pip install metagame[shapiq])")
    d = 5
    f = random_mlp(d, seed=5)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    b = torch.full((d,), -0.2, dtype=torch.float64)

    def game(coalitions):
        c = torch.as_tensor(np.asarray(coalitions, dtype=bool))
        return f(torch.where(c, x, b)).numpy()

    iv = shapiq.ExactComputer(game, n_players=d)("STII", order=2)
    ours = metagame.shapley_taylor(f, x, b)
    for i in range(d):
        assert ours[i, i] == pytest.approx(iv[(i,)], abs=1e-10)
        for j in range(i + 1, d):
            assert ours[i, j] == pytest.approx(iv[(i, j)], abs=1e-10)
            assert ours[j, i] == pytest.approx(iv[(i, j)], abs=1e-10)


def test_fast_meta_sv_route_equals_generic_route():
    d = 6
    f = random_mlp(d, seed=6)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    fast = metagame.meta_attributions(f, x, method="shapley")
    assert fast.metadata["parameters"]["route"] == "moebius"
    assert fast.n_model_rows <= 2**d
    slow = metagame.meta_attributions(f, x, method=_ShapleyWithoutTable())
    assert slow.metadata["parameters"]["route"] == "attributions"
    assert slow.n_evaluations == 2**d - 1
    np.testing.assert_allclose(fast.matrix, slow.matrix, atol=1e-12)
    np.testing.assert_allclose(fast.first_order, slow.first_order, atol=1e-12)
    # the value-table route for other exact perturbation rules agrees with the generic route too
    for value in ("shapley", "banzhaf"):
        for variant in ("metagame", "serial"):
            a = metagame.meta_attributions(f, x, method="shapley", value=value, variant=variant)
            b = metagame.meta_attributions(f, x, method=_ShapleyWithoutTable(), value=value, variant=variant)
            np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-12)


def test_meta_sv_rows_at_d14():
    d = 14
    w = torch.randn(d, 8)
    f = lambda z: torch.tanh(z @ w).sum(dim=1)
    res = metagame.meta_attributions(f, torch.randn(d), method="shapley")
    assert res.n_model_rows <= 2**d
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-3)


# ---------------------------------------------------------------- each coalition attributed once
class _Counting(AttributionMethod):
    """Gradient×input that records every coalition it is asked to attribute."""

    name = "counting"
    family = "gradient"
    needs_gradients = True

    def __init__(self):
        self.inner = GradientXInput()
        self.seen: list[bytes] = []

    def attribute(self, model, coalitions):
        self.seen.extend(coalition_keys(coalitions))
        return self.inner.attribute(model, coalitions)


@pytest.mark.parametrize("variant, expected", [("metagame", 2**5 - 1), ("serial", 2**5)])
def test_each_coalition_attributed_once(variant, expected):
    d = 5
    f = random_mlp(d, seed=7)
    x = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    counting = _Counting()
    res = metagame.meta_attributions(f, x, method=counting, variant=variant)
    assert len(counting.seen) == expected
    assert len(set(counting.seen)) == expected
    assert res.n_evaluations == expected
    assert res.n_model_rows == expected  # gradient×input: one model row per coalition
    np.testing.assert_allclose(res.matrix, metagame.meta_attributions(f, x, method="gradient_x_input", variant=variant).matrix, atol=1e-12)


def test_attribution_game_caches_coalitions():
    d = 4
    f = random_mlp(d, seed=8)
    model = TensorModel(f, torch.ones(d, dtype=torch.float64))
    counting = _Counting()
    game = AttributionGame(model, counting, cache=True, batch_size=5)
    rows = all_coalitions(d)[1:]
    first = game(rows)
    second = game(rows[::-1])
    assert game.n_evaluations == 2**d - 1
    assert len(counting.seen) == 2**d - 1
    np.testing.assert_array_equal(second[::-1], first)
    assert first.shape == (2**d - 1, d)


def test_exact_engine_float32_model():
    d = 5
    w = torch.randn(d, 4)
    f = lambda z: torch.tanh(z @ w).sum(dim=1)
    x = torch.randn(d)
    out = exact_meta_attributions(TensorModel(f, x), get_method("integrated_gradients", {"n_steps": 8}))
    assert out.matrix.shape == (d, d)
    np.testing.assert_allclose(out.matrix.sum(axis=1), out.first_order, atol=1e-5)


def test_exact_checkpoint_resumes_after_interruption(tmp_path):
    """An interrupted exact run leaves its finished coalitions on disk; the rerun resumes and gives the same matrix."""
    torch.manual_seed(3)
    d = 11  # 2^11 coalitions = two chunks of the exact engine (1024 coalitions each)
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x = torch.randn(d, dtype=torch.float64)
    reference = metagame.meta_attributions(lambda z: net(z)[:, 0], x, method="gradient_x_input")
    calls = {"n": 0}

    def flaky(z):
        calls["n"] += len(z)
        if calls["n"] > 1500:
            raise KeyboardInterrupt("simulated interruption")
        return net(z)[:, 0]

    ck = str(tmp_path / "exact.npz")
    with pytest.raises(KeyboardInterrupt):
        metagame.meta_attributions(flaky, x, method="gradient_x_input", batch_size=16, checkpoint=ck, checkpoint_every=0)
    stored = np.load(ck)
    assert int(stored["done"]) == 1024
    rows = {"n": 0}

    def counting(z):
        rows["n"] += len(z)
        return net(z)[:, 0]

    resumed = metagame.meta_attributions(counting, x, method="gradient_x_input", batch_size=16, checkpoint=ck)
    np.testing.assert_allclose(resumed.matrix, reference.matrix, atol=1e-12)
    from metagame.run.checkpoint import N_PROBES

    assert rows["n"] == 2**d - 1024 + N_PROBES  # only the unfinished coalitions (and the fingerprint's probes)
    with pytest.raises(metagame.MetagameError, match="different parameters"):
        metagame.meta_attributions(counting, x, method="integrated_gradients", checkpoint=ck)
