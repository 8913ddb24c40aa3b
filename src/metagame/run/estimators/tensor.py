"""Third order from the shared samples: T[i, j, k] (SPEC "Third order") estimated from each target's game u_i.

T[i, ·, ·] is the Meta-SV of u_i: with c_i its Möbius coefficients over N∖{i},
T[i, j, j] = c_i({j}) = u_i({j}) − u_i(∅) and T[i, j, k] = Σ_{B⊇{j,k}} c_i(B)/(|B|(|B|−1)) = STII_jk(u_i)/2 (j ≠ k,
both ≠ i); T[i, j, i] = 0, T[i, i, i] = M[i, i], T[i, i, k] = 0; Σ_k T[i, j, k] = M[i, j].

Sampled route: the stratified estimator's Gaussian process of u_i gives the posterior mean and variance of every
c_i({j}) and pair index (linear functionals, :meth:`GameGP.pairs`; c_i({j}) is exact when the coalition {i, j} was
evaluated). Their variances are the model's, multiplied per target by how much larger the matrix entries' final
variances are than the model's own (the design evidence the matrix saw; at least ``CALIBRATION``), by the row-sum
check :func:`gap_inflation` and by 1 + ``TENSOR_THIN_INFLATION``·m/n; below ``TENSOR_MIN_ROWS_PER_PLAYER`` distinct
rows per player the prior alone decides the pair indices and every non-exact entry gets stderr = inf. The estimates
are then moved, by the smallest variance-weighted symmetric change, to sum to the final M[i, j] (rows of the tensor
sum to the matrix as rows of the matrix sum to φ_i). When every coalition was evaluated, T is computed exactly from
each target's Möbius transform (O(2^{d−1}·d²) per target).
"""

from __future__ import annotations

import numpy as np

from ...players.coalitions import coalition_index
from ..tables import meta_shapley_from_values


def symmetric_adjustment(values: np.ndarray, var: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """The symmetric change A (A = Aᵀ) minimising Σ_{j≤k} A_jk²/var_jk subject to Σ_k A_jk = gap_j.

    Stationarity gives A_jk = (λ_j + λ_k)·var_jk (j ≠ k) and A_jj = λ_j·var_jj, so (diag(r) + V_off)λ = gap with
    r_j = Σ_k var_jk; entries of variance 0 do not move. Falls back to an even symmetric split when no entry of a
    row may move.
    """
    m = len(gap)
    v = np.where(np.isfinite(var), var, 0.0)
    v = (v + v.T) / 2.0
    off = v - np.diag(np.diag(v))
    system = np.diag(v.sum(axis=1)) + off
    movable = v.sum(axis=1) > 0
    lam = np.zeros(m)
    if movable.any():
        sub = np.ix_(movable, movable)
        lam[movable] = np.linalg.lstsq(system[sub], gap[movable], rcond=None)[0]
    adj = (lam[:, None] + lam[None, :]) * off + np.diag(lam * np.diag(v))
    rest = gap - adj.sum(axis=1)
    if np.any(np.abs(rest) > 1e-12 * max(1.0, float(np.abs(gap).max()))):
        adj += np.diag(rest)  # rows whose entries are all exact: only the diagonal can absorb what is left
    return values + adj


#: distinct rows per player a target's game needs before the process's pair indices get finite error bars (below,
#: about budget 4d, the fitted prior decides them: intervals held 0.84–0.93 with entries off by 200× at 2d)
TENSOR_MIN_ROWS_PER_PLAYER = 1.5
#: variance inflation 1 + this × m/n for n distinct rows of an m-player target game (≈ 2 at budget 5d, → 1 as rows
#: grow; set on benchmarks/estimators.py --coverage --order 3: entries off by 12× their stderr at 5d before)
TENSOR_THIN_INFLATION = 2.5


def gap_inflation(block: np.ndarray, var: np.ndarray, row: np.ndarray, row_se: np.ndarray) -> float:
    """How much larger the rows' sum gaps g_j = M[i, j] − Σ_k T̂[i, j, k] are than the variances predict.

    Under the model g_j has variance Σ_k var_jk + stderr(M[i, j])²; with few rows the process's prior can shrink
    the pair indices towards 0 with a small posterior variance while the (better identified) matrix row says
    their sum is large. Returns max(1, mean_j g_j² / predicted_j) (a posterior-predictive check; 1 when exact).
    """
    pred = np.where(np.isfinite(var), var, 0.0).sum(axis=1) + np.where(np.isfinite(row_se), row_se, 0.0) ** 2
    gap = row - block.sum(axis=1)
    ok = pred > 0
    if not ok.any():
        return 1.0
    return max(1.0, float(np.mean(gap[ok] ** 2 / pred[ok])))


def sampled_tensor(est, u_empty: np.ndarray, u_full: np.ndarray, matrix: np.ndarray, stderr: np.ndarray):
    """``(T, T_stderr)`` ``[d, d, d]`` from a finished :class:`~.stratified.Stratified` estimator and its final matrix
    (read through its public methods: :meth:`target_rows`, :meth:`posterior_fits`, :meth:`grid_gp`,
    :meth:`reported_model_variance`)."""
    plan = est.plan
    d, m = plan.d, plan.m
    tensor = np.zeros((d, d, d))
    tstd = np.zeros((d, d, d))
    for i in range(d):
        tensor[i, i, i] = matrix[i, i]
    sampled_t = [a - plan.offset for a in plan.sampled if 1 <= a - plan.offset <= m - 1]
    if not sampled_t:  # every coalition evaluated: exact from each target's table
        for i, tg in enumerate(est.target_rows(u_empty)):
            cols = np.flatnonzero(np.arange(d) != i)
            table = np.zeros(2**m)
            table[coalition_index(tg.z)] = tg.y
            block = meta_shapley_from_values(table)  # Meta-SV of u_i: the pair indices of the module docstring
            tensor[i][np.ix_(cols, cols)] = symmetric_adjustment(block, np.zeros((m, m)), matrix[i, cols] - block.sum(1))
        return tensor, tstd
    fits = est.posterior_fits()
    for i in range(d):
        cols = np.flatnonzero(np.arange(d) != i)
        gp = est.gps[i]
        if gp is None or not est.targets[i].sampled.any():  # nothing sampled reached this target
            tensor[i][np.ix_(cols, cols)] = np.diag(matrix[i, cols])
            tstd[i][np.ix_(cols, cols)] = np.inf
            continue
        mode = gp.pairs()
        mean_p, _, mean_1, _ = mode
        block = mean_p.copy()
        np.fill_diagonal(block, mean_1)
        # model variance averaged over the hyperparameter posterior, around the mode's estimate
        var = np.zeros((m, m))
        for weight, prior, _, scales in fits:
            gp_k = est.grid_gp(prior, i)
            mp, vp, m1, v1 = mode if gp_k is gp else gp_k.pairs()
            b_k = mp.copy()
            np.fill_diagonal(b_k, m1)
            v_k = vp.copy()
            np.fill_diagonal(v_k, v1)
            var += weight * (v_k * scales[i] + (b_k - block) ** 2)
        # per-target inflation: the matrix's final variances over the model's (≥ 1 where the design saw more)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(est.model_var[i, cols] > 0, stderr[i, cols] ** 2 / est.model_var[i, cols], 1.0)
        inflate = max(float(np.median(ratio[np.isfinite(ratio)])) if np.isfinite(ratio).any() else 1.0, 1.0)
        var = est.reported_model_variance(i, var) * inflate
        scale_y = max(float(np.abs(est.targets[i].y).max()), 1e-300)
        var = np.where(var > 0, var + (1e-8 * scale_y) ** 2, 0.0)  # numerical floor, except where exact
        var = var * gap_inflation(block, var, matrix[i, cols], stderr[i, cols])
        var = var * (1.0 + TENSOR_THIN_INFLATION * m / gp.n)  # few rows per player: the prior still weighs in
        block = symmetric_adjustment(block, var, matrix[i, cols] - block.sum(axis=1))
        tensor[i][np.ix_(cols, cols)] = block
        if gp.n < TENSOR_MIN_ROWS_PER_PLAYER * m:
            # the target's pair indices rest on the prior alone (its m(m+1)/2 second-order terms against a handful
            # of rows): only the exact entries keep a finite stderr
            var = np.where(var > 0, np.inf, 0.0)
        tstd[i][np.ix_(cols, cols)] = np.sqrt(var)
    return tensor, tstd


__all__ = ["TENSOR_MIN_ROWS_PER_PLAYER", "gap_inflation", "sampled_tensor", "symmetric_adjustment"]
