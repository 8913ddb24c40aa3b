"""``montecarlo``: the semivalue written term by term and estimated unit by unit.

M[i, j] = Σ_T c_j(|T|, j ∈ T) u_i(T) (c: Shapley or Banzhaf weights of the target's game): exact strata plus
Σ_units c·(u − g)/q with a per-target, per-size control variate g (the running stratum mean, fixed within a
batch). Every unit gives a complete unbiased estimate Y_k of M, so stderr = sd(Y)/√K (inf for an entry whose player
sits on one side of fewer than ``MIN_SIDE_ROWS`` sampled coalitions of the target's game). Each sample's weights sum
to zero over j, so Shapley rows sum to φ_i(x) exactly. Both outer values, both variants; memory O(batch·d + d²).
"""

from __future__ import annotations

import numpy as np

from .base import Estimator, Rows, coefficients, thin_sides
from .plan import Plan, semivalue_logweights, size_coefficients


class MonteCarlo(Estimator):
    """Running sums of the per-unit estimates Y_k (``montecarlo``)."""

    name = "montecarlo"
    values = ("shapley", "banzhaf")
    stores_rows = False

    def __init__(self, plan: Plan):
        super().__init__(plan)
        d, m = plan.d, plan.m
        self.lin, self.lout = semivalue_logweights(m, plan.value)
        self.kappa = size_coefficients(m, plan.value)
        self.exact = np.zeros((d, d))
        self.sum_y = np.zeros((d, d))
        self.sum_y2 = np.zeros((d, d))
        self.k = 0
        self.g_sum = np.zeros((d, m + 1))
        self.g_cnt = np.zeros((d, m + 1))
        self.sampled_t = np.array([a - plan.offset for a in plan.sampled], dtype=int)
        self.g = np.zeros((d, m + 1))
        self.n_rel = np.zeros(d)  # sampled rows that feed each target's game
        self.n_in = np.zeros((d, d))  # sampled rows that feed target i's game and hold player j

    def add_exact(self, block: Rows) -> None:
        c = coefficients(self.plan, block, self.lin, self.lout)
        self.exact += (np.where(block.relevant, block.phi, 0.0)).T @ c

    def before_batch(self, u_empty: np.ndarray, u_full: np.ndarray) -> None:
        """g_i(t): running stratum mean of u_i at local size t, linear interpolation where unseen."""
        m = self.plan.m
        interp = u_empty[:, None] + (u_full - u_empty)[:, None] * (np.arange(m + 1) / m)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.g_sum / self.g_cnt
        self.g = np.where(self.g_cnt > 0, mean, interp)

    def add_units(self, block: Rows, unit: np.ndarray, n_units: int) -> None:
        d = self.plan.d
        c = coefficients(self.plan, block, self.lin, self.lout)
        t = np.clip(block.t, 0, self.plan.m)
        x = np.where(block.relevant, block.phi - self.g[:, t].T, 0.0)
        base = self.exact + (self.g[:, self.sampled_t] @ self.kappa[self.sampled_t])[:, None]
        # split rows into the first and the second member of their unit
        first = np.ones(len(unit), dtype=bool)
        first[1:] = unit[1:] != unit[:-1]
        x1 = np.zeros((n_units, d))
        c1 = np.zeros((n_units, d))
        x2 = np.zeros((n_units, d))
        c2 = np.zeros((n_units, d))
        x1[unit[first]] = x[first]
        c1[unit[first]] = c[first]
        x2[unit[~first]] = x[~first]
        c2[unit[~first]] = c[~first]
        ht = x1.T @ c1 + x2.T @ c2
        sq = (x1**2).T @ (c1**2) + (x2**2).T @ (c2**2) + 2.0 * (x1 * x2).T @ (c1 * c2)
        self.sum_y += n_units * base + ht
        self.sum_y2 += n_units * base**2 + 2.0 * base * ht + sq
        self.k += n_units
        onehot = np.zeros((len(t), self.plan.m + 1))
        onehot[np.arange(len(t)), t] = 1.0
        self.g_sum += np.where(block.relevant, block.phi, 0.0).T @ onehot
        self.g_cnt += block.relevant.T.astype(np.float64) @ onehot
        self.n_rel += block.relevant.sum(axis=0)
        self.n_in += block.relevant.T.astype(np.float64) @ block.rows

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean of the unit estimates Y_k and sd(Y)/√K; ``inf`` where fewer than 2 units/rows inform a target."""
        d = self.plan.d
        if not self.plan.sampled:
            return self.exact.copy(), np.zeros((d, d))
        if self.k == 0:
            # no sampled size was reached: exact strata only (boundary terms give the even split δ/m)
            return self.exact.copy(), np.full((d, d), np.inf)
        mean = self.sum_y / self.k
        if self.k < 2:
            return mean, np.full((d, d), np.inf)
        var = np.maximum(self.sum_y2 - self.k * mean**2, 0.0) / (self.k - 1)
        se = np.sqrt(var / self.k)
        # an entry whose player sits on one side of fewer than MIN_SIDE_ROWS sampled coalitions of the target's game
        # is not pinned down: sd/√K of a handful of skewed Horvitz–Thompson terms can be 0 or tiny by chance
        thin = thin_sides(self.n_in, self.n_rel[:, None])
        if self.plan.variant == "metagame":  # M[i, i] = u_i(∅) is paid exactly (the driver sets it)
            np.fill_diagonal(thin, False)
        se[thin] = np.inf
        return mean, se




__all__ = ["MonteCarlo"]
