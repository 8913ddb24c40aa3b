"""``stratified`` (Shapley only): the Shapley value written per coalition size, with a fitted pairwise surrogate of
each target's game as control variate.

φ_j = (u(L) − u(∅))/m + (1/m) Σ_t [mean_{|T|=t, j∈T} u(T) − mean_{|T|=t, j∉T} u(T)]; a surrogate
g(T) = Σ β_k T_k + Σ γ_kl T_k T_l (one free constant per size; linear while a target has fewer than 1.5 rows per
parameter) is fitted per target by size-stratified Shapley-kernel least squares; φ = Shapley(g) (exact) + the
formula applied to r = u − g. stderr: per-size in/out sample variances of 5-fold cross-fitted residuals (with a
jackknife of the whole estimate when samples are few); the row gap is spread ∝ variance. Memory O(budget·d).
"""

from __future__ import annotations

import numpy as np

from .base import JACKKNIFE_GROUPS, StoredRows, jackknife_variance

#: the pairwise surrogate is fitted only when a target has at least this many rows per parameter
_PAIRWISE_ROWS_PER_PARAM = 1.5
#: folds of the stratified estimator's cross-fitted residuals (standard errors)
CROSSFIT_FOLDS = 5
#: below this many sampled units per surrogate parameter (a target's), the stderr is at least a delete-a-group
#: jackknife of the whole estimate (the surrogate's own sampling variability)
_SMALL_SAMPLE_ROWS_PER_PARAM = 4.0


class Stratified(StoredRows):
    """Stratified Shapley estimator with a fitted surrogate as control variate (``stratified``).

    Per target game u (m players, boundary values u(∅), u(L) exact), with Δ_t(u)_j = mean_{|T|=t, j∈T} u(T) −
    mean_{|T|=t, j∉T} u(T) the Shapley value is φ_j = (u(L) − u(∅))/m + (1/m) Σ_{t=1}^{m−1} Δ_t(u)_j. A surrogate
    g(T) = Σ_k β_k T_k + Σ_{k<l} γ_kl T_k T_l (plus a free constant per size) is fitted by least squares with the
    Shapley kernel weight of each size spread over that size's rows; its Shapley value β_j + ½Σ_l γ_jl is exact,
    and the residual r = u − g enters through the same formula, exactly on enumerated sizes and by per-size
    sample means on sampled sizes (independent samples within a size: one per unit and target).
    """

    name = "stratified"

    @staticmethod
    def _design(z: np.ndarray, pairwise: bool) -> np.ndarray:
        x = z.astype(np.float64)
        if not pairwise:
            return x
        iu = np.triu_indices(z.shape[1], 1)
        return np.concatenate([x, x[:, iu[0]] * x[:, iu[1]]], axis=1)

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Weighted least squares of y on x with one free intercept per size t (centering within sizes)."""
        xc, yc = x.copy(), y.copy()
        for s in np.unique(t):
            k = t == s
            xc[k] -= x[k].mean(axis=0)
            yc[k] -= y[k].mean()
        xw = xc * w[:, None]
        a = xw.T @ xc
        a[np.diag_indices_from(a)] += 1e-10 * max(np.trace(a) / len(a), 1e-300)
        try:
            return np.linalg.solve(a, xw.T @ yc)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(a, xw.T @ yc, rcond=None)[0]

    @staticmethod
    def _shapley_of(coef: np.ndarray, m: int, pairwise: bool) -> tuple[np.ndarray, float]:
        """Shapley values of the surrogate and its value g(L) on the full coalition."""
        sh = coef[:m].copy()
        total = float(coef.sum())
        if pairwise:
            iu = np.triu_indices(m, 1)
            g = np.zeros((m, m))
            g[iu] = coef[m:]
            sh += (g + g.T).sum(axis=1) / 2.0
        return sh, total

    @staticmethod
    def _deltas(
        r: np.ndarray, z: np.ndarray, t: np.ndarray, var: bool, sizes: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Σ_t Δ_t(r) over the sizes present, and the sampling variance of that sum (per-size sample means).

        With ``var``, every size in ``sizes`` (the sampled sizes) counts: where a size has fewer than 2 rows with
        j ∈ T or with j ∉ T (or none at all), the unseen Δ_t(r)_j is bounded by 2 s², s² the pooled within-size
        variance of the residuals (conservative: Δ_t(r) is a difference of means, not of single residuals).
        """
        m = z.shape[1]
        tot = np.zeros(m)
        v = np.zeros(m)
        present = np.unique(t)
        s2 = 0.0
        if var:
            ss, dof = 0.0, 0
            for s_ in present:
                k = t == s_
                if k.sum() >= 2:
                    ss += float(((r[k] - r[k].mean()) ** 2).sum())
                    dof += int(k.sum()) - 1
            if dof > 0:
                s2 = ss / dof
            elif len(r) >= 2:  # one row per size: the spread across sizes (levels included) bounds it
                s2 = float(np.var(r, ddof=1))
            else:
                s2 = float(np.mean(r**2)) if len(r) else 0.0
        for s in present:
            k = t == s
            rk = r[k] - r[k].mean()
            zk = z[k]
            n_in = zk.sum(axis=0)
            n_out = len(rk) - n_in
            s_in = rk @ zk
            m_in = np.where(n_in > 0, s_in / np.maximum(n_in, 1), 0.0)
            m_out = np.where(n_out > 0, -s_in / np.maximum(n_out, 1), 0.0)  # rk sums to zero within the size
            tot += m_in - m_out
            if var:
                dev_in = ((rk[:, None] - m_in[None, :]) ** 2 * zk).sum(axis=0)
                dev_out = ((rk[:, None] - m_out[None, :]) ** 2 * ~zk).sum(axis=0)
                v += dev_in / np.maximum(n_in - 1, 1) / np.maximum(n_in, 1)
                v += dev_out / np.maximum(n_out - 1, 1) / np.maximum(n_out, 1)
                v += np.where((n_in < 2) | (n_out < 2), 2.0 * s2, 0.0)  # too few rows: be conservative
        if var and sizes is not None:
            missing = len(set(int(a) for a in sizes) - set(int(a) for a in present))
            v += missing * 2.0 * s2  # sampled sizes that no row of this target reached
        return tot, v

    def _row(self, x, y, z, t, pairwise: bool, delta: float) -> np.ndarray:
        """The row estimate (before the gap is spread) from the given rows, gap spread evenly."""
        m = z.shape[1]
        cnt = np.bincount(t, minlength=m + 1).astype(np.float64)
        coef = self._fit(x, y, 1.0 / (t * (m - t) * cnt[t]), t)
        sh, g_full = self._shapley_of(coef, m, pairwise)
        corr, _ = self._deltas(y - x @ coef, z, t, var=False)
        row = sh + (delta - g_full) / m + corr / m
        return row - (row.sum() - delta) / m

    def _jackknife(self, x, y, z, t, un, sampled, pairwise: bool, delta: float) -> np.ndarray:
        """Delete-a-group jackknife variance of the row estimate over the sampled units (≤ 20 groups)."""
        units = np.unique(un[sampled])
        groups = min(len(units), JACKKNIFE_GROUPS)
        gid = np.searchsorted(units, un) % groups
        reps = np.stack([self._row(x[keep], y[keep], z[keep], t[keep], pairwise, delta)
                         for keep in (~(sampled & (gid == g)) for g in range(groups))])
        return jackknife_variance(reps)

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        d, m = plan.d, plan.m
        rows, phi, t_all, _, unit = self.stacked()
        inner = (t_all >= 1) & (t_all <= m - 1)
        sampled_t = [a - plan.offset for a in plan.sampled if 1 <= a - plan.offset <= m - 1]
        est = np.zeros((d, d))
        se = np.zeros((d, d))
        for i in range(d):
            if plan.variant == "metagame":
                sel = rows[:, i] & inner
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = inner
                cols = np.arange(d)
            z = rows[sel][:, cols]
            y = phi[sel, i]
            t = t_all[sel]
            un = unit[sel]
            delta = u_full[i] - u_empty[i]
            if len(y) == 0:  # no inner coalition: the even split, unknown error unless nothing was sampled
                est[i, cols] = delta / m
                se[i, cols] = np.inf if sampled_t else 0.0
                continue
            n_params = m + m * (m - 1) // 2
            pairwise = len(y) >= _PAIRWISE_ROWS_PER_PARAM * n_params
            x = self._design(z, pairwise)
            cnt = np.bincount(t, minlength=m + 1).astype(np.float64)
            w = 1.0 / (t * (m - t) * cnt[t])
            coef = self._fit(x, y, w, t)
            sh, g_full = self._shapley_of(coef, m, pairwise)
            r = y - x @ coef
            corr, _ = self._deltas(r, z, t, var=False)
            row = sh + (u_full[i] - g_full - u_empty[i]) / m + corr / m
            var = np.zeros(m)
            sampled = un >= 0
            if sampled_t and len(np.unique(un[sampled])) < 2:
                var = np.full(m, np.inf)  # fewer than 2 sampled units reached this target: no error estimate
            elif sampled.any():
                # honest residuals: each sampled row's residual from a surrogate fitted without its fold
                folds = min(CROSSFIT_FOLDS, self.k)
                fid = un % folds
                r_oof = np.empty(int(sampled.sum()))
                idx_s = np.flatnonzero(sampled)
                for f_ in range(folds):
                    out = sampled & (fid == f_)
                    if not out.any():
                        continue
                    keep = ~out
                    cnt_k = np.bincount(t[keep], minlength=m + 1).astype(np.float64)
                    w_k = 1.0 / (t[keep] * (m - t[keep]) * np.maximum(cnt_k[t[keep]], 1.0))
                    c_k = self._fit(x[keep], y[keep], w_k, t[keep])
                    r_oof[np.searchsorted(idx_s, np.flatnonzero(out))] = (y[out] - x[out] @ c_k)
                _, var = self._deltas(r_oof, z[sampled], t[sampled], var=True, sizes=sampled_t)
                var /= m**2
                n_units_i = len(np.unique(un[sampled]))
                if n_units_i < _SMALL_SAMPLE_ROWS_PER_PARAM * (x.shape[1] + len(sampled_t)):
                    # few rows per surrogate parameter: the surrogate itself varies with the sample, which the
                    # residual variance above ignores; a delete-a-group jackknife of the whole estimate sees it
                    var = np.maximum(var, self._jackknife(x, y, z, t, un, sampled, pairwise, u_full[i] - u_empty[i]))
            # exact row sums: spread the gap in proportion to each entry's variance (evenly over unknown ones)
            gap = row.sum() - delta
            if np.isinf(var).any():
                row = row - np.where(np.isinf(var), gap / np.isinf(var).sum(), 0.0)
            else:
                row = row - (gap * var / var.sum() if var.sum() > 0 else gap / m)
            est[i, cols] = row
            se[i, cols] = np.sqrt(var)
        return est, se


__all__ = ["Stratified"]
