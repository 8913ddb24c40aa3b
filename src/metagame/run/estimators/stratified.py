"""``stratified`` (Shapley only): the Shapley value written per coalition size, with a Gaussian-process model of each
target's game as control variate, and error bars that stay honest from a handful of rows to full enumeration.

Per target game u (m players; u(∅), u(N) exact), with Δ_t(u)_j = mean_{|T|=t, j∈T} u(T) − mean_{|T|=t, j∉T} u(T),
the Shapley value is φ_j = (u(N) − u(∅))/m + (1/m) Σ_{t=1}^{m−1} Δ_t(u)_j, an identity that holds for any u − g.
g is the posterior mean of a Gaussian process with a prior on the game's interaction orders
(:mod:`.gaussian_process`; hyperparameters by marginal likelihood pooled over the run's targets), fitted to the
target's *distinct* coalitions (a repeated draw adds no information), so Shapley(g) is closed form, exact on
enumerated sizes, and

    φ̂_j = Shapley(g)_j + (1/m) Σ_{covered (t, j)} Δ̂_t(u − g)_j.

A cell (t, j) of a sampled size is *covered* when both of its sides hold ≥ ``MIN_CELL_ROWS`` out-of-fit residuals
(held-out rows beyond ``MAX_GP_ROWS``, and K-fold residuals of the rows g was fitted on) or no unseen coalition.
Its estimate is (1 − k/N)·(mean of the residuals) per side (g interpolates the k of N coalitions it was fitted on),
with design variance (1 − k/N)² s²/n (1 + n/(N − k)): a size that is fully seen contributes no variance, so
stderr → 0 only as strata are enumerated. The uncovered cells are left to the model. stderr² of an entry:

    v_design (covered cells, Student-t for their Welch–Satterthwaite degrees of freedom)
    + (uncovered share of the sampled sizes) × ``CALIBRATION`` × v_model,

v_model the posterior variance of φ_j, averaged over the hyperparameter posterior (Σ_k w_k [s²_k v_k + (μ_k − μ)²])
with each target's leave-one-out scale moderated towards the run's pooled scale by ``PRIOR_DOF`` pseudo-rows
(Student-t for n + PRIOR_DOF rows) — the bound that holds when rows are too few for any design variance (a few per
target at budget ≈ 2d). ``CALIBRATION`` inflates it for what the model cannot know about itself (its kernel family;
set with ``benchmarks/estimators.py --coverage`` on random MLPs and polynomials). A target that no sampled
coalition reached keeps the even split with stderr = inf. The row gap (rounding) is spread ∝ variance.
Memory O(budget·d); time O(d·min(n, ``MAX_GP_ROWS``)³) for n distinct rows per target.
"""

from __future__ import annotations

import numpy as np

from .base import StoredRows, distinct_rows, t_factor, t_factors, thin_sides
from .gaussian_process import GameGP, Kernel, fit_prior
from .plan import lcomb
from .tensor import sampled_tensor

#: at most this many distinct rows per target enter the Gaussian process (the others get out-of-sample residuals)
MAX_GP_ROWS = 1200
#: pseudo-rows of the pooled scale added to each target's own scale (variance moderation)
PRIOR_DOF = 2.0
#: relative numerical floor of a standard error where anything was sampled (the linear algebra is not exact)
NUMERICAL_FLOOR = 1e-8
#: at most this many rows enter the leave-one-out estimate of a target's scale
CV_ROWS = 300
#: inflation of the model's posterior variance (kernel misspecification); see benchmarks/estimators.py --coverage
CALIBRATION = 1.3
#: folds of the out-of-fit residuals of the rows the process is fitted on
FOLDS = 5
#: residuals needed on each side of a (size, player) cell before its design estimate is used
MIN_CELL_ROWS = 5


class TargetRows:
    """One target's distinct rows: coalitions of its game, values relative to u(∅), local sizes, sampled flag."""

    def __init__(self, z: np.ndarray, y: np.ndarray, t: np.ndarray, unit: np.ndarray):
        keep = distinct_rows(z)
        self.z, self.y, self.t, self.unit = z[keep], y[keep], t[keep], unit[keep]
        self.sampled = self.unit >= 0


class Stratified(StoredRows):
    """Stratified Shapley estimator with a Gaussian-process control variate (``stratified``); see the module text."""

    name = "stratified"
    calibrated = True
    supports_tensor = True

    @classmethod
    def share_power(cls, d: int, budget: int) -> float:
        return 0.0

    def __init__(self, plan):
        super().__init__(plan)
        self.prior = None
        self.targets: list[TargetRows] = []
        self.gps: list[GameGP | None] = []
        self.train: list[np.ndarray] = []

    # ------------------------------------------------------------------ data
    def target_rows(self, u_empty: np.ndarray) -> list[TargetRows]:
        """Every target's distinct rows (its game u_i relative to u_i(∅) on the stored coalitions)."""
        plan = self.plan
        d = plan.d
        rows, phi, t_all, _, unit = self.stacked()
        out = []
        for i in range(d):
            if plan.variant == "metagame":
                sel = rows[:, i] & (t_all >= 1)
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = t_all >= 1
                cols = np.arange(d)
            out.append(TargetRows(rows[sel][:, cols], phi[sel, i] - u_empty[i], t_all[sel], unit[sel]))
        return out

    # ------------------------------------------------------------------ per-size residual means
    def _correction(self, tg: TargetRows, exact: np.ndarray, proxy: np.ndarray, trained: np.ndarray,
                    sampled_t: list[int], enumerated_t: list[int]):
        """Σ_t Δ_t(u − g) per entry j: exact where every coalition of a size (side) is a row, else estimated.

        ``exact`` holds u − g at every row (≈ 0 on the rows g interpolates); ``proxy`` holds, for sampled rows, an
        out-of-fit residual (NaN elsewhere): a draw of g's error at a coalition it was not fitted on. On a sampled
        size the in-side mean of u − g is (1 − k_in/N_in) × the mean over the coalitions g was not fitted on
        (k_in of N_in were), estimated by the mean of n proxies with variance s²/n·(1 + n/(N − k)) (their mean and
        the unseen coalitions' mean both vary). A (t, j) cell counts where each side is complete or has
        ``MIN_CELL_ROWS`` proxies. Returns ``corr``, its design variance ``var``, Welch–Satterthwaite ``dof`` and
        ``uncovered`` (the fraction of sampled sizes whose cell does not count).
        """
        m = self.plan.m
        corr = np.zeros(m)
        var = np.zeros(m)
        wsum = np.zeros(m)
        missing = np.zeros(m)
        for s in enumerated_t:  # every coalition of this size is a row: the exact contrast
            k = tg.t == s
            zk, rk = tg.z[k], exact[k]
            n_in = zk.sum(axis=0)
            n_out = len(rk) - n_in
            s_in = rk @ zk
            corr += s_in / np.maximum(n_in, 1) - (rk.sum() - s_in) / np.maximum(n_out, 1)
        if sampled_t:  # every sampled size and side at once: [size, player] tables from one-hot products
            has_proxy = ~np.isnan(proxy)
            p0 = np.where(has_proxy, proxy, 0.0)
            sizes = np.asarray(sampled_t)
            onehot = tg.t[None, :] == sizes[:, None]  # [K, n]
            at = onehot.astype(np.float64)
            at_p = at * has_proxy
            at_tr = at * trained
            slot = np.where(onehot.any(axis=0), onehot.argmax(axis=0), len(sizes))  # row → its size (K: none)
            zf = tg.z.astype(np.float64)
            cell = np.zeros((len(sizes), m))
            covered = np.ones((len(sizes), m), dtype=bool)
            v_cell = np.zeros((len(sizes), m))
            w_cell = np.zeros((len(sizes), m))
            for side, big, sign in (
                (zf, np.exp([lcomb(m - 1, t - 1) for t in sampled_t]), 1.0),
                (1.0 - zf, np.exp([lcomb(m - 1, t) for t in sampled_t]), -1.0),
            ):
                big = big[:, None]
                n_obs = at @ side
                complete = n_obs >= big - 0.5
                n_p = at_p @ side
                k_fit = at_tr @ side
                share = np.clip(1.0 - k_fit / big, 0.0, 1.0)
                mean_p = ((at_p * p0) @ side) / np.maximum(n_p, 1)
                mean_exact = ((at * exact) @ side) / np.maximum(n_obs, 1)
                cell += sign * np.where(complete, mean_exact, share * mean_p)
                covered &= complete | (n_p >= MIN_CELL_ROWS)
                row_mean = np.concatenate([mean_p, np.zeros((1, m))])[slot]  # each row's size's proxy mean
                dev = at_p @ ((p0[:, None] - row_mean) ** 2 * side)
                # the proxies' mean stands for the mean error over the N − k coalitions g was not fitted on
                spread = 1.0 + n_p / np.maximum(big - k_fit, 1.0)
                v_k = np.where(complete, 0.0, share**2 * dev / np.maximum(n_p - 1, 1) / np.maximum(n_p, 1) * spread)
                v_cell += v_k
                w_cell += v_k**2 / np.maximum(n_p - 1, 1)
            corr += np.where(covered, cell, 0.0).sum(axis=0)
            var += np.where(covered, v_cell, 0.0).sum(axis=0)
            wsum += np.where(covered, w_cell, 0.0).sum(axis=0)
            missing += (~covered).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = np.where(wsum > 0, var**2 / wsum, np.inf)
        uncovered = missing / len(sampled_t) if sampled_t else np.zeros(m)
        return corr, var, dof, uncovered

    # ------------------------------------------------------------------ the model
    def _fit(self, u_empty: np.ndarray) -> None:
        """Distinct rows per target, the pooled prior and one Gaussian process per target (kept for the tensor)."""
        m = self.plan.m
        self.targets = self.target_rows(u_empty)
        self.prior, self.posterior = fit_prior([(tg.z, tg.y) for tg in self.targets], m)
        self._fits = None
        kernel = Kernel(m, self.prior)
        self.gps, self.train = [], []
        for tg in self.targets:
            n = len(tg.y)
            train = np.arange(n)
            if n > MAX_GP_ROWS:  # N (so that g(N) = u(N)), then rows evenly over the rest, up to the cap
                full = np.flatnonzero(tg.t == m)[:1]
                rest = np.setdiff1d(np.arange(n), full)
                pick = rest[np.linspace(0, len(rest) - 1, MAX_GP_ROWS - len(full)).round().astype(int)]
                train = np.sort(np.concatenate([full, pick]))
            self.train.append(train)
            self.gps.append(GameGP(tg.z[train], tg.y[train], kernel) if n else None)

    @staticmethod
    def _raw_scale(gp: GameGP) -> float:
        """A target's leave-one-out scale s² (on at most ``CV_ROWS`` of its rows)."""
        if gp.n < 3:
            return gp.s2
        small = gp
        if gp.n > CV_ROWS:
            pos = np.linspace(0, gp.n - 1, CV_ROWS).round().astype(int)
            sub = np.ix_(pos, pos)
            small = GameGP(gp.z[pos], gp.y[pos], gp.kernel, gp.inter[sub], gp.index[sub])
        return small.cv_scale()

    def _scales(self, raw: np.ndarray) -> np.ndarray:
        """Each target's scale s² (``raw``: leave-one-out), moderated towards the run's pooled scale (geometric mean)
        by ``PRIOR_DOF`` pseudo-rows."""
        ok = raw > 0
        pooled = float(np.exp(np.mean(np.log(raw[ok])))) if ok.any() else 0.0
        n = np.array([0.0 if gp is None else gp.n for gp in self.gps])
        return (n * raw + PRIOR_DOF * pooled) / np.maximum(n + PRIOR_DOF, 1e-300)

    def grid_gp(self, prior, i: int) -> GameGP | None:
        """Target ``i``'s process under another point of the hyperparameter posterior (the main fit at the mode)."""
        gp = self.gps[i]
        if gp is None or prior == self.prior:
            return gp
        return GameGP(gp.z, gp.y, Kernel(self.plan.m, prior), gp.inter, gp.index)

    def posterior_fits(self) -> list[tuple[float, object, list, np.ndarray]]:
        """(weight, prior, every target's Shapley posterior (mean, unit variance), moderated scales) for every point
        of the hyperparameter posterior (computed once; the mode reuses the main fits). The processes of the other
        grid points are not kept (one n × n factor at a time); :meth:`grid_gp` rebuilds one when needed."""
        if getattr(self, "_fits", None) is None:
            self._fits = []
            for prior, weight in self.posterior:
                shap: list = []
                raw = np.zeros(len(self.gps))
                for i, gp in enumerate(self.gps):
                    g = self.grid_gp(prior, i)
                    shap.append(None if g is None else g.shapley())
                    raw[i] = 0.0 if g is None else self._raw_scale(g)
                self._fits.append((weight, prior, shap, self._scales(raw)))
        return self._fits

    def reported_model_variance(self, i: int, var: np.ndarray) -> np.ndarray:
        """var · ``CALIBRATION`` · t_{0.975}(n_i + ``PRIOR_DOF``)²/z²: target ``i``'s model variance (scaled, from its
        process of n_i rows) as the estimate reports it."""
        return var * CALIBRATION * t_factor(self.gps[i].n + PRIOR_DOF) ** 2

    def _model_variances(self, means: list[np.ndarray | None]) -> list[np.ndarray | None]:
        """Posterior variance of every target's Shapley values around ``means``, averaged over the hyperparameter
        posterior: Σ_k w_k [s²_k v_k + (μ_k − mean)²] (hyperparameters integrated over, not plugged in), s²_k the
        target's moderated leave-one-out scale under grid point k."""
        m = self.plan.m
        out: list[np.ndarray | None] = [None if mu is None else np.zeros(m) for mu in means]
        for weight, _, shap, scales in self.posterior_fits():
            for i, (sh, mu) in enumerate(zip(shap, means)):
                if sh is None or mu is None:
                    continue
                mean_k, var_k = sh
                out[i] += weight * (var_k * scales[i] + (mean_k - mu) ** 2)
        return out

    # ------------------------------------------------------------------ the estimate
    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        d, m = plan.d, plan.m
        sampled_t = [a - plan.offset for a in plan.sampled if 1 <= a - plan.offset <= m - 1]
        enumerated_t = [t for t in range(1, m) if t not in sampled_t]
        est = np.zeros((d, d))
        se = np.zeros((d, d))
        cols_of = [np.flatnonzero(np.arange(d) != i) if plan.variant == "metagame" else np.arange(d) for i in range(d)]
        delta = u_full - u_empty
        if not sampled_t:  # every coalition seen: the size formula is exact with no surrogate
            for i, tg in enumerate(self.target_rows(u_empty)):
                none = np.zeros(len(tg.y), dtype=bool)
                corr = self._correction(tg, tg.y, none, none, [], enumerated_t)[0]
                est[i, cols_of[i]] = delta[i] / m + corr / m
            return est, se
        self._fit(u_empty)
        reached = [gp is not None and tg.sampled.any() for gp, tg in zip(self.gps, self.targets)]
        means = [gp.shapley()[0] if ok else None for gp, ok in zip(self.gps, reached)]
        model_var = self._model_variances(means)
        self.model_var = np.zeros((d, d))
        for i, (tg, gp, train) in enumerate(zip(self.targets, self.gps, self.train)):
            cols = cols_of[i]
            if not reached[i]:  # no sampled coalition reached this target
                est[i, cols] = delta[i] / m
                se[i, cols] = np.inf
                self.model_var[i, cols] = np.inf
                continue
            mean = means[i]
            trained = np.zeros(len(tg.y), dtype=bool)
            trained[train] = True
            exact = np.empty(len(tg.y))
            exact[train] = gp.jitter * gp.alpha  # y − g on the rows g interpolates
            exact[~trained] = tg.y[~trained] - gp.predict(tg.z[~trained])
            proxy = np.where(tg.sampled & ~trained, exact, np.nan)
            # sampled rows g was fitted on: residuals of the same fit without their fold (folds of units)
            samp = np.flatnonzero(tg.sampled[train])
            if len(samp) >= 2:
                k_folds = min(FOLDS, len(samp))
                fold_of = tg.unit[train][samp] % k_folds
                proxy[train[samp]] = gp.fold_residuals([samp[fold_of == f] for f in range(k_folds)])[samp]
                gp.drop_inverse()  # n × n; the tensor (order 3) recomputes it
            full = tg.t == m
            boundary = float(exact[full][0]) if full.any() else 0.0  # u(N) − g(N) (≈ 0: N is a row)
            corr, v_design, dof, uncovered = self._correction(tg, exact, proxy, trained, sampled_t, enumerated_t)
            v_design = v_design * t_factors(dof) ** 2 / m**2
            v_model = self.reported_model_variance(i, model_var[i])
            self.model_var[i, cols] = v_model
            row = mean + (boundary + corr) / m
            var = v_design + uncovered * v_model
            # a player on one side of fewer than MIN_SIDE_ROWS distinct sampled coalitions: the data cannot separate
            # its share, and the process's confidence there comes from its prior's shape (d = 10 at 2d calls: entries
            # 20σ off). Such an entry gets at least the row's widest bar; a row where every entry is thin has no data
            # to check the process against (d = 12 at 1.5d: 18σ under the widest bar) and gets stderr = inf
            z_s = tg.z[tg.sampled]
            thin = thin_sides(z_s.sum(axis=0), len(z_s))
            if thin.all():
                var = np.full(m, np.inf)
            elif thin.any():
                var = np.where(thin, np.maximum(var, var.max()), var)
            var = var + (NUMERICAL_FLOOR * max(float(np.abs(tg.y).max()), abs(delta[i]), 1e-300)) ** 2
            gap = row.sum() - delta[i]  # exact row sums: spread the gap in proportion to each entry's variance
            est[i, cols] = row - (gap * var / var.sum() if np.isfinite(var).all() else gap / m)
            se[i, cols] = np.sqrt(var)
        return est, se


    def tensor(self, u_empty: np.ndarray, u_full: np.ndarray, matrix: np.ndarray, stderr: np.ndarray):
        """T[i, j, k] and its standard errors from each target's process (:mod:`.tensor`)."""
        return sampled_tensor(self, u_empty, u_full, matrix, stderr)


__all__ = ["MAX_GP_ROWS", "Stratified", "TargetRows"]
