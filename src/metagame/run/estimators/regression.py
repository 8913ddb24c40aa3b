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
from typing import NamedTuple

import numpy as np

from .base import JACKKNIFE_GROUPS, StoredRows, jackknife_variance, t_factor, thin_sides, unique_rows
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


class Control(NamedTuple):
    """A control variate g of one target's game: the fit sees u − g (``y``, row total ``delta`` = δ − g(N)) and adds
    Shapley(g) (``prior``) to its coefficients and Var Shapley(g) (``prior_var``) to their variances."""

    y: np.ndarray
    delta: float
    prior: np.ndarray | float
    prior_var: np.ndarray | float


class Regression(StoredRows):
    """Constrained weighted least squares per target on stored rows (``regression``)."""

    name = "regression"
    calibrated = True

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.log_mu = log_kernel(plan.m)

    def control(
        self, i: int, z: np.ndarray, y: np.ndarray, delta: float, unit: np.ndarray,
        coalition: np.ndarray | None = None, zb: np.ndarray | None = None,
    ) -> Control:
        """Hook for a control variate g of target ``i``'s game (rows ``z``, values ``y`` = u − u(∅), row total
        ``delta``, unit id −1 = exact, ``coalition``: one id per distinct row, numbered in :func:`unique_rows`'s
        order; ``zb``: ``z`` as bool): the :class:`Control` the fit uses. Plain KernelSHAP: no control variate."""
        return Control(y, delta, 0.0, 0.0)

    def _jackknife(self, eq: "NormalEquations", delta, basis, full_rank: bool = False) -> np.ndarray:
        """Delete-a-group jackknife variance of the constrained fit over the sampled rows, grouped by *coalition*:
        every copy of a repeated coalition leaves together (a repeated draw is not independent information)."""
        groups = eq.groups
        others = max(self.k - eq.n_units, 0) / groups  # units that never reach this target
        m = len(eq.b)
        betas = np.empty((groups, m))
        for g in range(groups):
            scale = self.k / max(self.k - (eq.group_units[g] + others), 1.0)  # the other units stand for all K
            a_g = eq.a_e + scale * (eq.a_s - eq.a_parts[g])
            b_g = eq.b_e + scale * (eq.b_s - eq.b_parts[g])
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
        # one id per distinct coalition, numbered in the lexicographic order of the packed rows. A target's rows (all
        # holding it, metagame; all rows, serial) lose at most that one constant column, which keeps both their
        # distinctness and their order: these ids stand for unique_rows of every target's own rows
        coalition = unique_rows(rows)[1]
        for i in range(d):
            if plan.variant == "metagame":
                sel = np.flatnonzero(rows[:, i] & inner)
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = np.flatnonzero(inner)
                cols = np.arange(d)
            # the target's rows: the exact ones first, then the sampled ones by jackknife group
            sel, n_exact, gid, groups = group_order(sel, sampled, coalition)
            zb = rows[sel]
            if len(cols) < d:
                zb = np.concatenate([zb[:, :i], zb[:, i + 1 :]], axis=1)
            z = zb.astype(np.float64)
            wi = w[sel]
            y = phi[sel, i] - u_empty[i]
            delta = u_full[i] - u_empty[i]
            ci = coalition[sel]
            ctl = self.control(i, z, y, delta, unit[sel], coalition=ci, zb=zb)
            eq = NormalEquations(z, wi, ctl.y, unit[sel], ci, n_exact, gid, groups)
            beta, identified, rank = constrained_solve(eq.a, eq.b, ctl.delta, basis, need_identified=True)
            cov_diag = np.zeros(len(cols))
            if plan.sampled:
                n_coalitions = eq.n_coalitions
                # residual degrees of freedom: distinct coalitions in the fit beyond its rank (a repeated draw adds
                # weight, not information); with none left the fit interpolates and its spread says nothing
                resid_dof = len(np.unique(ci)) - rank
                if n_coalitions >= 2 and resid_dof >= MIN_RESIDUAL_DOF:
                    cov_diag = self._jackknife(eq, ctl.delta, basis, full_rank=rank == len(cols) - 1)
                    cov_diag = cov_diag * t_factor(min(eq.groups - 1, resid_dof)) ** 2 + ctl.prior_var
                    # a player on one side of only a few distinct sampled coalitions: its coefficient rests on
                    # them alone and the jackknife cannot see how wrong they are
                    cov_diag[thin_sides(eq.n_in, n_coalitions)] = np.inf
                else:  # too few sampled units or distinct coalitions inform this target: no error estimate
                    cov_diag = np.full(len(cols), np.inf)
            cov_diag[~identified] = np.inf
            est[i, cols] = beta + ctl.prior
            se[i, cols] = np.sqrt(cov_diag)
        return est, se


def group_order(sel: np.ndarray, sampled: np.ndarray, coalition: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, int]:
    """Rows ``sel`` reordered: the exact ones first (in their order), then the sampled ones by jackknife group
    (distinct coalition number, in :func:`unique_rows`'s order, mod the groups; stable); returns them, the number of
    exact rows, the group of each sampled row and the number of groups."""
    s = sampled[sel]
    ex, sm = sel[~s], sel[s]
    local = np.asarray(np.unique(coalition[sm], return_inverse=True)[1]).ravel()
    groups = max(min(int(local.max(initial=-1)) + 1, JACKKNIFE_GROUPS), 1)
    gid = local % groups
    order = np.argsort(gid, kind="stable")
    return np.concatenate([ex, sm[order]]), len(ex), gid[order], groups


class NormalEquations:
    """One target's weighted normal equations a = Σ w z zᵀ, b = Σ w y z, split into the exact rows' part and the
    parts of the jackknife's groups of sampled coalitions, each part one symmetric BLAS product (zᵀz of the rows
    scaled by √w) over a contiguous slice of the rows, ordered by :func:`group_order` (``n_exact`` exact rows, then
    the sampled ones with their groups ``gid``)."""

    def __init__(self, z, w, y, unit, coalition, n_exact: int, gid: np.ndarray, groups: int):
        m = z.shape[1]
        sw = np.sqrt(w)
        zw = z * sw[:, None]
        swy = sw * y
        ze = zw[:n_exact]
        self.a_e = ze.T @ ze
        self.b_e = ze.T @ swy[:n_exact]
        first = np.unique(coalition[n_exact:], return_index=True)[1]
        self.n_coalitions = len(first)
        pick = np.zeros(len(z))
        pick[n_exact + first] = 1.0
        self.n_in = pick @ z  # players' counts over the distinct sampled coalitions
        self.groups = groups
        edges = n_exact + np.searchsorted(gid, np.arange(groups + 1))
        self.a_parts = np.empty((groups, m, m))
        self.b_parts = np.empty((groups, m))
        for g in range(groups):
            part = zw[int(edges[g]) : int(edges[g + 1])]
            self.a_parts[g] = part.T @ part
            self.b_parts[g] = part.T @ swy[int(edges[g]) : int(edges[g + 1])]
        # distinct units per group, and in all
        us = unit[n_exact:]
        top = int(us.max(initial=0)) + 1
        self.group_units = np.bincount(np.unique(gid * top + us) // top, minlength=groups).astype(np.float64)
        self.n_units = len(np.unique(us))
        self.a_s = self.a_parts.sum(axis=0)
        self.b_s = self.b_parts.sum(axis=0)
        self.a = self.a_e + self.a_s
        self.b = self.b_e + self.b_s


__all__ = ["Control", "Regression", "constrained_solve", "contrast_basis"]
