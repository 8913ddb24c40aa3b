"""``regression``: KernelSHAP's constrained weighted least squares for every target on the shared rows.

For every target, min_β Σ_T μ(|T|) (u_i(T) − u_i(∅) − Σ_{j∈T} β_j)² s.t. Σ_j β_j = u_i(L) − u_i(∅), with μ the
Shapley kernel of the target's m-player game; the sum is exact on enumerated sizes and Horvitz–Thompson on sampled
ones. The constraint gives exact row sums. stderr: a delete-a-group jackknife over the sampled units (20 groups;
the enumerated part is exact and kept in every replicate). The fit is solved only on the eigen-directions the data
determine; entries outside them keep the even split and get stderr = inf, as do entries whose player sits on one side
of fewer than ``MIN_SIDE_ROWS`` distinct sampled coalitions and targets with fewer than ``MIN_RESIDUAL_DOF`` residual
degrees of freedom (the jackknife cannot see the error of a fit that rests on a handful of rows). Shapley only;
memory O(budget·d).
"""

from __future__ import annotations

from math import log

import numpy as np

from .base import (
    JACKKNIFE_GROUPS,
    MIN_SIDE_ROWS,
    StoredRows,
    distinct_rows,
    jackknife_variance,
    t_factor,
    unique_rows,
)
from .plan import Plan, log_kernel

#: eigenvalues of the normal matrix below this fraction of the largest count as zero (not identified)
RANK_RCOND = 1e-9
#: residual degrees of freedom (distinct coalitions beyond the fit's rank) needed before the jackknife is trusted
MIN_RESIDUAL_DOF = 2


def contrast_basis(m: int) -> np.ndarray:
    """Orthonormal basis ``[m, m−1]`` of {v : Σ v = 0}."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(m), np.eye(m)[:, : m - 1]]))
    return q[:, 1:]


def constrained_solve(
    a: np.ndarray, b: np.ndarray, delta: float, basis: np.ndarray, need_identified: bool = False
) -> tuple[np.ndarray, np.ndarray | None] | tuple[np.ndarray, np.ndarray, int]:
    """argmin β of β^T a β − 2 b^T β subject to 1^T β = δ, minimum-norm deviation from the even split δ/m.

    β = δ/m·1 + Qγ (Q: basis of the contrasts); γ solves (QᵀaQ)γ = Qᵀ(b − aδ/m·1) on the eigen-directions whose
    eigenvalue exceeds ``RANK_RCOND`` × the largest, and is 0 on the others (directions the data do not determine
    stay at the even split). Returns β and, when asked, ``identified[j]``: β_j is a function of determined
    directions only (its row of Q lies in their span), and the number of determined directions (the fit's rank).
    """
    m = len(b)
    beta0 = np.full(m, delta / m)
    if m < 2:
        return (beta0, np.ones(m, dtype=bool), 0) if need_identified else (beta0, None)
    ap = basis.T @ a @ basis
    bp = basis.T @ (b - a @ beta0)
    lam, vec = np.linalg.eigh((ap + ap.T) / 2.0)
    top = float(lam.max()) if lam.size else 0.0
    keep = lam > RANK_RCOND * top if top > 0 and np.isfinite(top) else np.zeros(len(lam), dtype=bool)
    vk = vec[:, keep]
    gamma = vk @ ((vk.T @ bp) / lam[keep])
    beta = beta0 + basis @ gamma
    beta += (delta - beta.sum()) / m  # remove rounding so that Σβ = δ exactly
    if not need_identified:
        return beta, None
    rows = basis @ vk  # projection of each contrast row onto the determined directions
    norm_all = (basis**2).sum(axis=1)
    identified = (rows**2).sum(axis=1) >= (1.0 - 1e-8) * norm_all
    return beta, identified, int(keep.sum())


def fast_constrained_solve(a: np.ndarray, b: np.ndarray, delta: float, basis: np.ndarray) -> np.ndarray:
    """:func:`constrained_solve` for a positive definite ``a`` by Cholesky and a Lagrange multiplier (the same
    minimiser when every direction is determined; falls back to the eigen-solve when ``a`` is not)."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    try:
        factor = cho_factor(a, check_finite=False)
    except (LinAlgError, ValueError):
        return constrained_solve(a, b, delta, basis)[0]
    sol = cho_solve(factor, np.column_stack([b, np.ones(len(b))]), check_finite=False)
    lam = (sol[:, 0].sum() - delta) / sol[:, 1].sum()
    beta = sol[:, 0] - lam * sol[:, 1]
    beta += (delta - beta.sum()) / len(b)
    return beta


class Regression(StoredRows):
    """Constrained weighted least squares per target on stored rows (``regression``)."""

    name = "regression"
    calibrated = True

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.log_mu = log_kernel(plan.m)

    def control(
        self, i: int, z: np.ndarray, y: np.ndarray, delta: float, unit: np.ndarray
    ) -> tuple[np.ndarray, float, np.ndarray | float]:
        """Hook for a control variate g of target ``i``'s game (rows ``z``, values ``y`` = u − u(∅), row total
        ``delta``, unit id −1 = exact): returns the game the fit sees (y − g, δ − g(N)) and Shapley(g), added to
        the fit. Plain KernelSHAP: no control variate."""
        return y, delta, 0.0

    def _jackknife(self, z, w, y, delta, unit, sampled, a, b, full_rank: bool = False) -> np.ndarray:
        """Delete-a-group jackknife variance of the constrained fit over the sampled rows, grouped by *coalition*:
        every copy of a repeated coalition leaves together (a repeated draw is not independent information)."""
        zs, ws, ys = z[sampled], w[sampled], y[sampled]
        coalition = unique_rows(zs.astype(bool))[1]
        groups = min(int(coalition.max()) + 1, JACKKNIFE_GROUPS)
        gid = coalition % groups
        others = max(self.k - len(np.unique(unit[sampled])), 0) / groups  # units that never reach this target
        zw_all = zs * ws[:, None]
        picks = [gid == g for g in range(groups)]
        # each group's share of the sampled part of the normal equations (weights carry 1/K); their sum is all of it
        a_parts = [zw_all[pick].T @ zs[pick] for pick in picks]
        b_parts = [zw_all[pick].T @ ys[pick] for pick in picks]
        a_s, b_s = sum(a_parts), sum(b_parts)
        a_e, b_e = a - a_s, b - b_s  # exact (enumerated) part
        us = unit[sampled]
        basis = contrast_basis(z.shape[1])
        betas = np.empty((groups, z.shape[1]))
        for g, pick in enumerate(picks):
            n_g = len(np.unique(us[pick])) + others
            scale = self.k / max(self.k - n_g, 1.0)  # the other units re-weighted to stand for all K
            a_g = a_e + scale * (a_s - a_parts[g])
            b_g = b_e + scale * (b_s - b_parts[g])
            if full_rank:  # every direction determined: a Cholesky solve gives the same minimiser, ~10× faster
                betas[g] = fast_constrained_solve(a_g, b_g, delta, basis)
            else:
                betas[g] = constrained_solve(a_g, b_g, delta, basis)[0]
        return jackknife_variance(betas)

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        d, m = plan.d, plan.m
        rows, phi, t, log_q, unit = self.stacked()
        inner = (t >= 1) & (t <= m - 1)
        k = max(self.k, 1)
        logw = self.log_mu[np.clip(t, 0, m)] - log_q - np.where(unit >= 0, log(k), 0.0)
        w = np.where(inner, np.exp(logw), 0.0)
        est = np.zeros((d, d))
        se = np.zeros((d, d))
        sampled = unit >= 0
        basis = contrast_basis(m)
        for i in range(d):
            if plan.variant == "metagame":
                sel = rows[:, i] & inner
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = inner
                cols = np.arange(d)
            z = rows[sel][:, cols].astype(np.float64)
            wi = w[sel]
            y = phi[sel, i] - u_empty[i]
            delta = u_full[i] - u_empty[i]
            y, delta, prior = self.control(i, z, y, delta, unit[sel])
            a = (z * wi[:, None]).T @ z
            b = (z * wi[:, None]).T @ y
            beta, identified, rank = constrained_solve(a, b, delta, basis, need_identified=True)
            cov_diag = np.zeros(len(cols))
            if plan.sampled:
                z_sampled = rows[sel & sampled][:, cols]
                z_sampled = z_sampled[distinct_rows(z_sampled)]
                n_coalitions = len(z_sampled)
                n_in = z_sampled.sum(axis=0)
                # residual degrees of freedom: distinct coalitions in the fit beyond its rank (a repeated draw adds
                # weight, not information); with none left the fit interpolates and its spread says nothing
                resid_dof = len(distinct_rows(rows[sel][:, cols])) - rank
                if n_coalitions >= 2 and resid_dof >= MIN_RESIDUAL_DOF:
                    cov_diag = self._jackknife(
                        z, wi, y, delta, unit[sel], sampled[sel], a, b, full_rank=rank == len(cols) - 1
                    )
                    groups = min(n_coalitions, JACKKNIFE_GROUPS)
                    cov_diag = cov_diag * t_factor(min(groups - 1, resid_dof)) ** 2
                    # a player on one side of only a few distinct sampled coalitions: its coefficient rests on
                    # them alone and the jackknife cannot see how wrong they are
                    cov_diag[np.minimum(n_in, n_coalitions - n_in) < MIN_SIDE_ROWS] = np.inf
                else:  # too few sampled units or distinct coalitions inform this target: no error estimate
                    cov_diag = np.full(len(cols), np.inf)
            cov_diag[~identified] = np.inf
            est[i, cols] = beta + prior
            se[i, cols] = np.sqrt(cov_diag)
        return est, se


__all__ = ["Regression", "constrained_solve", "contrast_basis"]
