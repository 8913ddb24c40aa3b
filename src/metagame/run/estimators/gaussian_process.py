"""A Gaussian-process model of a cooperative game with a prior on its interaction orders (Möbius coefficients).

A game v on m players is v(T) = v(∅) + Σ_{∅≠B⊆T} c(B) + h(|T|). The prior takes the Möbius coefficients c(B)
independent N(0, s²τ_{|B|}) with τ_1 = a, τ_k = ρ^{k−2} (k ≥ 2): main effects of their own size, interactions whose
variance changes geometrically with their order (ρ < 1: mostly low-order; ρ ≈ 0.3–0.5: the order-3–4 peak of a
saturating network), plus a size effect h(t) ~ N(0, s²η) shared by all coalitions of size t (h(0) = 0). Then

    cov(v(S), v(T)) = s² [P(|S∩T|) + η·1{|S| = |T|}],  P(q) = Σ_k τ_k C(q, k),

and every semivalue-type quantity is a linear functional of v with a closed-form covariance. The Shapley value
φ_j = Σ_{B∋j} c(B)/|B| + h(m)/m has cov(φ_j, v(T)) = s²[1{j∈T} Q(|T|) + η/m·1{T = N}], Q(t) = Σ_k τ_k C(t−1,k−1)/k,
var φ_j = s²[Σ_k τ_k C(m−1,k−1)/k² + η/m²]; the pair index I_jl = Σ_{B⊇{j,l}} c(B)/(|B|(|B|−1)) (half the
Shapley-Taylor interaction) and the singleton c({j}) likewise. Observed values are exact (a jitter of
``JITTER`` × the mean prior variance keeps the solve stable), so the posterior interpolates them, its variance
vanishes on a fully observed game, and a repeated coalition adds nothing (callers pass distinct coalitions).

(a, ρ, η) are chosen by maximising the marginal likelihood pooled over several games (the targets of one run) with
s² profiled out per game and a weak log-normal prior on each (it keeps the fit away from "no interactions at all"
when few rows cannot tell); :func:`fit_prior` also returns a grid posterior around them, which the callers average
over. Cost: O(n³) for n observed coalitions of a game (see ``MAX_GP_ROWS`` in the callers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg import cho_factor, cho_solve, lapack, solve_triangular
from scipy.optimize import minimize
from scipy.special import gammaln

#: relative jitter added to the kernel diagonal (numerical stability of an interpolating posterior)
JITTER = 1e-10
#: weak prior on (log a, log ρ, log η): means and standard deviations
HYPER_MEAN = np.array([1.0, np.log(0.3), -3.0])
HYPER_SD = np.array([1.5, 1.5, 3.0])
#: at most this many games and rows per game enter the hyperparameter fit
FIT_GAMES = 8
FIT_ROWS = 128


@lru_cache(maxsize=64)
def binomials(m: int) -> np.ndarray:
    """C(q, k) for q, k = 0..m as ``[m+1, m+1]`` (0 for k > q)."""
    q = np.arange(m + 1)[:, None]
    k = np.arange(m + 1)[None, :]
    out = np.exp(gammaln(q + 1) - gammaln(k + 1) - gammaln(np.maximum(q - k, 0) + 1))
    out[q < k] = 0.0
    return np.round(out) if m <= 50 else out


@dataclass(frozen=True)
class OrderPrior:
    """Prior of a game's Möbius coefficients: τ_1 = exp(log_main), τ_k = exp((k−2)·log_decay), η = exp(log_size)."""

    log_main: float = 1.0
    log_decay: float = float(np.log(0.3))
    log_size: float = -3.0

    def taus(self, m: int) -> np.ndarray:
        k = np.arange(m + 1)
        tau = np.exp(np.clip((k - 2) * self.log_decay, -700, 700))
        tau[0] = 0.0
        if m >= 1:
            tau[1] = np.exp(self.log_main)
        return tau

    @property
    def eta(self) -> float:
        return float(np.exp(self.log_size))


class Kernel:
    """The covariance tables of an m-player game under an :class:`OrderPrior` (unit scale s² = 1)."""

    def __init__(self, m: int, prior: OrderPrior):
        self.m, self.prior, self.eta = m, prior, prior.eta
        tau = prior.taus(m)
        self.tau = tau
        b = binomials(m)
        k = np.arange(m + 1)
        kk = np.maximum(k, 1)
        self.P = b @ tau  # P[q] = Σ_k τ_k C(q, k)
        shift1 = np.zeros((m + 1, m + 1))
        shift1[1:, 1:] = b[:-1, :-1]  # C(t−1, k−1)
        self.Q = shift1 @ (tau / kk)  # cov(φ_j, v(T)) for j ∈ T, |T| = t
        self.var_shapley = float((tau * shift1[m] / kk**2).sum()) + self.eta / m**2
        shift2 = np.zeros((m + 1, m + 1))
        if m >= 2:
            shift2[2:, 2:] = b[:-2, :-2]  # C(t−2, k−2)
        pair_w = np.where(k >= 2, tau / np.maximum(k * (k - 1), 1), 0.0)
        self.R = shift2 @ pair_w  # cov(I_jl, v(T)) for j, l ∈ T (Möbius part)
        # the size effect is a symmetric game: its I_jl = (h(m)/m − h(1))/(m − 1) for every pair (efficiency)
        self.pair_size = np.zeros(m + 1)
        if m >= 2:
            self.pair_size[m] += 1.0 / (m * (m - 1))
            self.pair_size[1] -= 1.0 / (m - 1)
        moeb = float((pair_w**2 / np.maximum(tau, 1e-300) * shift2[m]).sum()) if m >= 2 else 0.0
        self.var_pair = moeb + self.eta * float((self.pair_size**2).sum())
        self.var_single = float(tau[1]) + self.eta if m >= 1 else 0.0

    def gram(self, inter: np.ndarray, sizes_a: np.ndarray, sizes_b: np.ndarray) -> np.ndarray:
        """Prior covariance of v at two sets of coalitions from their intersection sizes and sizes."""
        return self.P[inter] + self.eta * (sizes_a[:, None] == sizes_b[None, :])

    def gram_indexed(self, index: np.ndarray) -> np.ndarray:
        """:meth:`gram` from :func:`kernel_index` (one gather from the table [P, P + η])."""
        return np.take(np.concatenate([self.P, self.P + self.eta]), index)

    def cov_shapley(self, z: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """``[n, m]``: cov(v(T_r), φ_j)."""
        return z * self.Q[sizes][:, None] + (self.eta / self.m) * (sizes == self.m)[:, None]


def _intersections(z: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """|T_r ∩ S_s| as the smallest integer type that holds m (uint8 up to 255 players: n² bytes, not 8n²)."""
    a = z.astype(np.float32)
    b = a if w is None else w.astype(np.float32)
    return np.rint(a @ b.T).astype(np.uint8 if z.shape[1] < 256 else np.int32)


def kernel_index(inter: np.ndarray, sizes: np.ndarray, m: int) -> np.ndarray:
    """|T_r ∩ T_s| + (m + 1)·1{|T_r| = |T_s|}: where each kernel entry sits in the table [P(0..m), P(0..m) + η] of
    :meth:`Kernel.gram_indexed` (the same for every prior, so the processes of a hyperparameter grid share it)."""
    dtype = np.uint8 if 2 * (m + 1) <= 256 else np.int32
    return inter.astype(dtype) + (sizes[:, None] == sizes[None, :]).astype(dtype) * dtype(m + 1)


class GameGP:
    """Posterior of one game given exact values at distinct non-empty coalitions ``z`` (``bool[n, m]``).

    ``y`` are the values relative to v(∅) (known exactly, so ∅ is not a row). Use :meth:`shapley`,
    :meth:`loo_residuals`, :meth:`predict`; all variances are per unit scale, multiply by :attr:`s2`.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, kernel: Kernel, inter: np.ndarray | None = None,
                 index: np.ndarray | None = None):
        self.z, self.y, self.kernel = z, np.asarray(y, dtype=np.float64), kernel
        self.sizes = z.sum(axis=1)
        self.n = len(y)
        #: |T_r ∩ T_s| for every pair of rows, and :func:`kernel_index` (pass them to refit the same rows under
        #: another prior)
        self.inter = _intersections(z) if inter is None else inter
        self.index = kernel_index(self.inter, self.sizes, kernel.m) if index is None else index
        k = kernel.gram_indexed(self.index)
        #: the jitter added to the diagonal (so y − fitted = jitter·α on the rows themselves)
        self.jitter = JITTER * max(float(np.trace(k)) / max(self.n, 1), 1e-300)
        k[np.diag_indices(self.n)] += self.jitter
        self.chol = cho_factor(k, lower=True, overwrite_a=True, check_finite=False)
        self.alpha = cho_solve(self.chol, self.y, check_finite=False)
        quad = float(self.y @ self.alpha)
        #: maximum-likelihood scale s² (per unit prior)
        self.s2 = max(quad, 0.0) / max(self.n, 1)
        self._linv: np.ndarray | None = None
        self._kinv: np.ndarray | None = None

    @property
    def linv(self) -> np.ndarray:
        """L⁻¹ for the Cholesky factor L of the kernel matrix (computed once)."""
        if self._linv is None:
            inv, info = lapack.dtrtri(self.chol[0], lower=1)
            if info != 0:  # pragma: no cover - the factor has a positive diagonal, so this does not happen
                inv = solve_triangular(self.chol[0], np.eye(self.n), lower=True, check_finite=False)
            self._linv = np.tril(inv)
        return self._linv

    def drop_inverse(self) -> None:
        """Free L⁻¹ (n × n floats); :attr:`linv` recomputes it when next asked."""
        self._linv = None

    def loo_residuals(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out residuals e_r = y_r − E[v(T_r) | other rows] = α_r / (K⁻¹)_rr and their unit-scale
        predictive variances 1/(K⁻¹)_rr."""
        diag = np.diag(self.kinv) if self._kinv is not None else (self.linv**2).sum(axis=0)
        return self.alpha / diag, 1.0 / diag

    def cv_scale(self) -> float:
        """Leave-one-out estimate of s²: the mean squared standardised leave-one-out residual."""
        e, v = self.loo_residuals()
        return float(np.mean(e**2 / v))

    @property
    def kinv(self) -> np.ndarray:
        """K⁻¹ from the Cholesky factor (LAPACK potri; computed once)."""
        if self._kinv is None:
            inv, info = lapack.dpotri(self.chol[0], lower=1)
            if info != 0:  # pragma: no cover - the factor exists, so this does not happen
                inv = self.linv.T @ self.linv
            self._kinv = np.tril(inv) + np.tril(inv, -1).T
        return self._kinv

    def fold_residuals(self, folds: list[np.ndarray]) -> np.ndarray:
        """Residuals y_R − E[v(T_R) | rows outside R] for each fold R of rows (block leave-out of the same fit:
        (K⁻¹_RR)⁻¹ α_R); rows in no fold get NaN. K⁻¹_RR = W_Rᵀ W_R for the columns R of W = L⁻¹ (one triangular
        inverse, n³/3, instead of the whole K⁻¹)."""
        w = self.linv
        out = np.full(self.n, np.nan)
        for rows in folds:
            if len(rows):
                wr = w[rows.min():, rows]  # W is lower triangular: rows above the fold's first row are 0
                out[rows] = np.linalg.solve(wr.T @ wr, self.alpha[rows])
        return out

    def predict(self, z_new: np.ndarray) -> np.ndarray:
        """Posterior mean of v(T) − v(∅) at other coalitions."""
        if len(z_new) == 0:
            return np.zeros(0)
        kx = self.kernel.gram(_intersections(z_new, self.z), z_new.sum(axis=1), self.sizes)
        return kx @ self.alpha

    def _solve_l(self, c: np.ndarray) -> np.ndarray:
        return solve_triangular(self.chol[0], c, lower=True, check_finite=False)

    def shapley(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and unit-scale variance of every player's Shapley value."""
        c = self.kernel.cov_shapley(self.z, self.sizes)
        mean = c.T @ self.alpha
        w = self._solve_l(c)
        var = self.kernel.var_shapley - (w**2).sum(axis=0)
        return mean, np.maximum(var, 0.0)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean and unit-scale variance of I_jl (j ≠ l) and of c({j}) (the diagonal), ``[m, m]`` each,
        packed as (mean_pairs, var_pairs, mean_single, var_single)."""
        m, kern = self.kernel.m, self.kernel
        zf = self.z.astype(np.float64)
        rvec = kern.R[self.sizes]
        svec = kern.eta * kern.pair_size[self.sizes]
        # cov(v(T_r), I_jl) = R(|T_r|) z_rj z_rl + η λ(|T_r|): posterior mean Σ_r α_r cov_r
        mean = (zf * (self.alpha * rvec)[:, None]).T @ zf + float(self.alpha @ svec)
        # variance: var_pair − c_jlᵀ K⁻¹ c_jl, through L⁻¹ (n × n) once
        linv = self.linv
        g = linv * rvec[None, :]  # L⁻¹ diag(R(|T_r|))
        e = linv @ svec
        var = np.empty((m, m))
        for j in range(m):
            prod = (g * zf[:, j][None, :]) @ zf + e[:, None]  # [n, m]: L⁻¹ c_{j·}
            var[j] = kern.var_pair - (prod**2).sum(axis=0)
        c1 = zf * kern.tau[1] + kern.eta * (self.sizes == 1)[:, None]
        mean1 = c1.T @ self.alpha
        w1 = linv @ c1
        var1 = kern.var_single - (w1**2).sum(axis=0)
        return mean, np.maximum(var, 0.0), mean1, np.maximum(var1, 0.0)


#: the bordered row's diagonal in :func:`_profile_nll` (any value larger than every yᵀK⁻¹y works: it only keeps the
#: last pivot positive; the row's other entries, L⁻¹y, do not depend on it)
_BORDER = 1e250


def _prepare_games(games: list[tuple[np.ndarray, np.ndarray]], m: int) -> dict[str, np.ndarray]:
    """The hyperparameter fit's games stacked for one batched factorisation, padded to the largest game (padding rows
    are identity rows with y = 0, so they add nothing to yᵀK⁻¹y or log det K). ``index`` ([g, n + 1, n + 1], the last
    row and column for the border) picks each kernel entry from the table [P(0..m), P(0..m) + η, 0]: intersection
    size, + m + 1 for equal sizes, 2(m + 1) for padding and border."""
    n = np.array([len(y) for _, y in games])
    big = int(n.max())
    g = len(games)
    index = np.full((g, big + 1, big + 1), 2 * (m + 1), dtype=np.uint8 if 2 * (m + 1) < 256 else np.int32)
    y = np.zeros((g, big))
    valid = np.zeros((g, big), dtype=bool)
    for k, (z, yk) in enumerate(games):
        nk = len(yk)
        sizes = z.sum(axis=1)
        index[k, :nk, :nk] = _intersections(z) + (m + 1) * (sizes[:, None] == sizes[None, :])
        y[k, :nk] = yk
        valid[k, :nk] = True
    flat_index = index[:, :big, :big].ravel().astype(np.intp)
    return {"index": index, "y": y, "n": n, "pad": ~valid, "flat_index": flat_index}


def _profile_nll(theta: np.ndarray, prepared: dict[str, np.ndarray], m: int, grad: bool = False):
    """−log marginal likelihood pooled over games (s² profiled out per game) − log prior of θ; with ``grad`` also
    its gradient in θ (then returns ``(value, gradient)``).

    One batched Cholesky factor of every game's kernel matrix bordered by its values, [[K, y], [yᵀ, ·]]: the last
    row of the factor is (L⁻¹y)ᵀ, so yᵀK⁻¹y and log det K come out of the same factorisation. The gradient of a
    game's term n/2·log(yᵀK⁻¹y/n) + ½ log det K is ½ Σ_rs W_rs ∂K_rs/∂θ with W = K⁻¹ − (n/q)ααᵀ (α = K⁻¹y,
    q = yᵀα); K_rs is an entry of a table of 2(m + 1) values picked by the kernel index, so the sum is the table's
    derivative dotted with W summed per index (one K⁻¹ per game, LAPACK potri; the jitter's dependence on θ,
    1e-10 relative, is left out)."""
    prior = OrderPrior(*map(float, theta))
    tau = prior.taus(m)
    b = binomials(m)
    p = b @ tau  # Kernel(m, prior).P without the Shapley and pair tables
    total = 0.5 * float((((theta - HYPER_MEAN) / HYPER_SD) ** 2).sum())
    n, y = prepared["n"], prepared["y"]
    g, big = y.shape
    fail = (1e300, np.zeros(3)) if grad else 1e300
    table = np.concatenate([p, p + prior.eta, [0.0]])
    a = np.take(table, prepared["index"])  # [g, big + 1, big + 1]: kernel, 0 on the padding and the border
    diag = np.einsum("gii->gi", a[:, :big, :big])
    jitter = JITTER * np.maximum(diag.sum(axis=1) / n, 1e-300)
    diag += np.where(prepared["pad"], 1.0, jitter[:, None])
    a[:, big, :big] = y
    a[:, :big, big] = y
    a[:, big, big] = _BORDER
    try:
        chol = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return fail
    quad = (chol[:, big, :big] ** 2).sum(axis=1)
    if not np.all(np.isfinite(quad)):
        return fail
    logdet = np.log(np.einsum("gii->gi", chol[:, :big, :big])).sum(axis=1)
    use = quad > 1e-300  # a game that is identically 0 on its rows says nothing about the shape
    total += float((0.5 * n[use] * np.log(quad[use] / n[use]) + logdet[use]).sum())
    if not grad:
        return total
    k = np.arange(m + 1)
    dtau_decay = np.where(k >= 2, (k - 2) * tau, 0.0)
    dtau_main = np.zeros(m + 1)
    dtau_main[1] = tau[1]
    zero = np.zeros(m + 1)
    dtable = np.stack([  # ∂table/∂θ for θ = (log a, log ρ, log η)
        np.concatenate([b @ dtau_main, b @ dtau_main, [0.0]]),
        np.concatenate([b @ dtau_decay, b @ dtau_decay, [0.0]]),
        np.concatenate([zero, zero + prior.eta, [0.0]]),
    ])
    inv = np.zeros((g, big, big))  # K⁻¹, lower triangle (potri leaves the factor's upper triangle: zeros)
    for j in np.flatnonzero(use):
        inv[j], info = lapack.dpotri(chol[j, :big, :big], lower=1)
        if info != 0:
            return fail
    inv_diag = np.einsum("gii->gi", inv).copy()
    alpha = np.matmul(inv, y[:, :, None])[..., 0] + np.matmul(y[:, None, :], inv)[:, 0] - inv_diag * y
    # W summed per index class: off-diagonal entries of the lower triangle count twice, ααᵀ is summed in full
    inv *= 2.0
    np.einsum("gii->gi", inv)[...] = inv_diag
    scale = np.where(use, n / np.where(use, quad, 1.0), 0.0)
    alpha_s = alpha * scale[:, None]
    inv -= alpha_s[:, :, None] * alpha[:, None, :]
    wsum = np.bincount(prepared["flat_index"], weights=inv.ravel(), minlength=len(table))
    gradient = 0.5 * dtable @ wsum + (theta - HYPER_MEAN) / HYPER_SD**2
    return total, gradient


#: the hyperparameter search stops where every component of the pooled objective's gradient is below this (the
#: objective is a sum over up to FIT_GAMES × FIT_ROWS rows; a step of 0.01 in θ changes it by far less than 1)
HYPER_GTOL = 1e-2
#: rows per game of the coarse search that picks the basin(s) the full search starts from
COARSE_ROWS = 32
#: coarse optima of the two starts closer than this in log a and log ρ are one basin (one full search)
COARSE_SAME = 0.5


def _spread(n: int, k: int) -> np.ndarray:
    """min(n, k) indices spread evenly over 0..n − 1."""
    return np.linspace(0, n - 1, min(n, k)).round().astype(int)


#: offsets of (log a, log ρ) around the fitted values over which the hyperparameter posterior is averaged
HYPER_GRID = (-2.0, -1.0, 0.0, 1.0, 2.0)
#: grid points whose posterior weight is below this are dropped
HYPER_MIN_WEIGHT = 0.01
#: the grid points kept are the heaviest that together hold this share of the posterior weight
HYPER_MASS = 0.95


def fit_prior(games: list[tuple[np.ndarray, np.ndarray]], m: int) -> tuple[OrderPrior, list[tuple[OrderPrior, float]]]:
    """Empirical-Bayes (a, ρ, η) for games on m players given as (``z`` bool[n, m], ``y``) pairs, and the
    hyperparameter posterior on a grid of (log a, log ρ) around it (the heaviest points holding ``HYPER_MASS`` of
    its weight, none below ``HYPER_MIN_WEIGHT``; weights renormalised over them).

    Pooled over at most ``FIT_GAMES`` games with at least 2 rows each (at most ``FIT_ROWS`` rows each); the weak
    prior alone when no game has 2 rows. The search: L-BFGS-B (bounded to the prior's ±4 sd, analytic gradient)
    from two starts on ``COARSE_ROWS`` rows per game, then on the full rows from the coarse optimum (from both
    when the two ended more than ``COARSE_SAME`` apart). The grid weights use one game's share of the pooled log-likelihood
    (divided by the number of games): they describe the hyperparameters of *one* target, which may differ from the
    run's typical target, rather than the pooled mean. With few rows they are broad (interactions or none cannot
    be told apart from 5 rows per game) and the caller averages over them; with many rows they are a point.
    """
    usable = [(z, y) for z, y in games if len(y) >= 2 and np.any(y != 0)]
    if not usable:
        return OrderPrior(), [(OrderPrior(), 1.0)]
    if len(usable) > FIT_GAMES:
        pick = np.linspace(0, len(usable) - 1, FIT_GAMES).round().astype(int)
        usable = [usable[p] for p in pick]
    fit_games = []
    for z, y in usable:
        if len(y) > FIT_ROWS:
            keep = np.linspace(0, len(y) - 1, FIT_ROWS).round().astype(int)
            z, y = z[keep], y[keep]
        fit_games.append((z, np.asarray(y, dtype=np.float64)))
    prepared = _prepare_games(fit_games, m)
    lo, hi = HYPER_MEAN - 4 * HYPER_SD, HYPER_MEAN + 4 * HYPER_SD
    bounds = list(zip(lo, hi))

    def search(start, data, gtol):
        return minimize(_profile_nll, start, args=(data, m, True), jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"gtol": gtol, "ftol": 1e-10, "maxfun": 60})

    # both starts on a coarse subsample (COARSE_ROWS rows per game: each evaluation ~30× cheaper), then the full
    # objective from the coarse optimum; from both when they ended in different places (two basins)
    coarse = _prepare_games([(z[_spread(len(y), COARSE_ROWS)], y[_spread(len(y), COARSE_ROWS)]) for z, y in fit_games],
                            m)
    ends = [search(start, coarse, 10 * HYPER_GTOL).x for start in (HYPER_MEAN, HYPER_MEAN + np.array([2.0, -2.5, 0.0]))]
    if np.abs(ends[0] - ends[1])[:2].max() <= COARSE_SAME:
        ends = ends[:1]
    best = None
    for start in ends:
        res = search(start, prepared, HYPER_GTOL)
        if best is None or res.fun < best.fun:
            best = res
    theta = np.clip(best.x, lo, hi)
    grid, nll = [], []
    for da in HYPER_GRID:
        for dr in HYPER_GRID:
            th = np.clip(theta + np.array([da, dr, 0.0]), lo, hi)
            grid.append(th)
            nll.append(_profile_nll(th, prepared, m))
    # one game's share of the pooled evidence: the spread of a single target's hyperparameters, not of their mean
    nll = np.array(nll) / len(fit_games)
    w = np.exp(-(nll - nll.min()))
    w /= w.sum()
    # the heaviest points holding HYPER_MASS of the posterior (each refit costs every target an n × n factor; a
    # point's share of the model variance is close to its weight), none below HYPER_MIN_WEIGHT
    order = np.argsort(-w, kind="stable")
    held = np.cumsum(w[order])
    keep = np.zeros(len(w), dtype=bool)
    keep[order[: int(np.searchsorted(held, HYPER_MASS)) + 1]] = True
    keep &= w >= HYPER_MIN_WEIGHT
    posterior = [(OrderPrior(*map(float, th)), float(wi / w[keep].sum())) for th, wi, k in zip(grid, w, keep) if k]
    return OrderPrior(*map(float, theta)), posterior


__all__ = ["GameGP", "Kernel", "OrderPrior", "binomials", "fit_prior", "kernel_index"]
